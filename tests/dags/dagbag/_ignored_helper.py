"""Names starting with an underscore are not DAG files; importing this would fail."""

raise RuntimeError("the DagBag must not import _ files")
