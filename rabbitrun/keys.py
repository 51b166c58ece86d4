"""Values that identify a task instance and an attempt, shared by every layer."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class TaskInstanceKey:
    """One attempt of one task instance: the unit the broker carries and the DB claims."""

    dag_id: str
    task_id: str
    run_id: str
    map_index: int = -1
    try_number: int = 1

    def __str__(self) -> str:
        mapped = f" map={self.map_index}" if self.map_index >= 0 else ""
        return f"{self.dag_id}.{self.task_id} run={self.run_id}{mapped} try={self.try_number}"

    def with_try(self, try_number: int) -> TaskInstanceKey:
        return TaskInstanceKey(self.dag_id, self.task_id, self.run_id, self.map_index, try_number)


def log_relpath(key: TaskInstanceKey) -> str:
    """Where one attempt's log lives under the base log folder (Airflow's layout)."""
    mapped = f"map_index={key.map_index}/" if key.map_index >= 0 else ""
    return f"{key.dag_id}/{key.task_id}/{key.run_id}/{mapped}{key.try_number}.log"
