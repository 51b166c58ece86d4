"""ExternalTaskMarker: the end of a cross-DAG dependency that clearing follows into the other DAG.

At run time it does nothing (an EmptyOperator). Its meaning is for ``tasks clear``: clearing it
(directly or as a downstream task) also clears ``external_task_id`` of ``external_dag_id`` in the
run of that DAG whose logical date is ``logical_date`` (by default the marker's own run's), and
from there whatever that clear reaches, up to ``recursion_depth`` DAGs deep, as in Airflow. The
clearing itself is rabbitrun.client.runs.clear_tasks's.
"""

from __future__ import annotations

from typing import Any

from rabbitrun.authoring.empty import EmptyOperator
from rabbitrun.errors import DagDefinitionError

__all__ = ["ExternalTaskMarker"]


class ExternalTaskMarker(EmptyOperator):
    """Clearing this task also clears ``external_dag_id.external_task_id`` of the matching run."""

    template_fields = ("external_dag_id", "external_task_id", "logical_date")

    def __init__(
        self,
        *,
        external_dag_id: str,
        external_task_id: str,
        logical_date: str | None = "{{ logical_date.isoformat() }}",
        execution_date: str | None = None,
        recursion_depth: int = 10,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if not isinstance(recursion_depth, int) or isinstance(recursion_depth, bool) or recursion_depth < 1:
            raise DagDefinitionError(f"ExternalTaskMarker {self.task_id!r}: recursion_depth must be >= 1")
        self.external_dag_id = external_dag_id
        self.external_task_id = external_task_id
        # execution_date is Airflow 2's name of the same template
        self.logical_date = execution_date if execution_date is not None else logical_date
        self.recursion_depth = recursion_depth
