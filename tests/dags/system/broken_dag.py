"""A DAG file that raises on import: the scheduler and `dags list` must survive it."""

from rabbitrun import DAG

with DAG("never_loads") as dag:
    raise ZeroDivisionError("broken on purpose at import time")
