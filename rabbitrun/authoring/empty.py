"""EmptyOperator: a task that does nothing, used to shape a graph (joins, starts, ends).

As in Airflow it is still a task instance with a state; here the worker runs it
like any other task and its ``execute`` returns at once, so it succeeds.
"""

from __future__ import annotations

from rabbitrun.authoring.baseoperator import BaseOperator, Context

__all__ = ["EmptyOperator"]


class EmptyOperator(BaseOperator):
    """Does nothing and succeeds: a join point, a start or end marker (Airflow's EmptyOperator)."""

    def execute(self, context: Context) -> None:
        return None
