"""Plain values read from the metadata DB, importable without SQLAlchemy (the CLI's lean paths)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class TaskStateRow:
    task_id: str
    map_index: int
    state: str
    try_number: int
    start_date: datetime | None
    end_date: datetime | None
    duration: float | None
    hostname: str | None
    reason: str | None
