"""A DAG file that raises while being imported (line 8), for import error tests."""

from rabbitrun.authoring import DAG


def compute() -> float:
    """The deepest frame of the failure is here."""
    return 1 / 0


with DAG("test_broken") as dag:
    compute()
