"""A helper module beside the DAGs: graph_dags.py imports it by its bare name (dags folder on sys.path)."""


def double(x: int) -> int:
    return 2 * x
