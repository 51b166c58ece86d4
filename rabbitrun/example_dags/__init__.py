"""Example DAGs shipped with rabbitrun; the DagBag loads them as ``@examples/<name>.py``."""
