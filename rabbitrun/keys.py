"""Values that identify a task instance and an attempt, shared by every layer."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from rabbitrun.errors import InvalidRunId, UnsafeLogPath

#: Airflow's default ``allowed_run_id_pattern``: letters, digits and ``_ . ~ : + -``. A run_id names a
#: folder of the log tree, so ``/`` is out and ``..`` is refused on top of the pattern.
RUN_ID_PATTERN = re.compile(r"[A-Za-z0-9_.~:+\-]{1,250}")
#: dag_id / task_id (Airflow's KEY_REGEX, as the authoring layer checks them).
ID_PATTERN = re.compile(r"[A-Za-z0-9_.\-]{1,250}")


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


def validate_run_id(run_id: str) -> str:
    """``run_id`` if it keeps Airflow's character rules, else :class:`InvalidRunId`.

    Checked wherever a run is created (trigger, backfill, the scheduler) and again at the log path,
    because a run_id is a folder name there: ``../..`` would write and read outside the log folder.
    """
    if not isinstance(run_id, str) or not RUN_ID_PATTERN.fullmatch(run_id):
        raise InvalidRunId(
            str(run_id), "use only letters, digits and '_', '.', '~', ':', '+', '-' (1 to 250 characters)"
        )
    if ".." in run_id:
        raise InvalidRunId(run_id, "'..' is not allowed")
    return run_id


def key_problem(key: TaskInstanceKey) -> str | None:
    """Why ``key`` cannot name a log file inside the log folder, or None when it can. Wire decoders
    refuse such a key too, so a forged envelope or control request never reaches a path."""
    for kind, value in (("dag_id", key.dag_id), ("task_id", key.task_id)):
        if not isinstance(value, str) or not ID_PATTERN.fullmatch(value) or value in (".", ".."):
            return f"{kind} {value!r} is not a valid id (letters, digits, '_', '.', '-')"
    try:
        validate_run_id(key.run_id)
    except InvalidRunId as exc:
        return str(exc)
    if key.map_index < -1 or key.try_number < 0:
        return "map_index or try_number out of range"
    return None


def attempt_log_path(base_log_folder: str | Path, key: TaskInstanceKey) -> Path:
    """The one file an attempt's log may be read from: built from the key alone, resolved (symlinks
    followed) and checked to stay inside the resolved log folder, else :class:`UnsafeLogPath`."""
    base = Path(base_log_folder).resolve()
    path = (base / log_relpath(key)).resolve()
    if not path.is_relative_to(base):
        raise UnsafeLogPath(str(key), "it resolves outside the log folder (a symlink out of it)")
    return path


def log_relpath(key: TaskInstanceKey) -> str:
    """Where one attempt's log lives under the base log folder (Airflow's layout); a key whose ids
    could leave that folder (``/``, ``..``, an absolute path) raises :class:`UnsafeLogPath`."""
    problem = key_problem(key)
    if problem is not None:
        raise UnsafeLogPath(str(key), problem)
    mapped = f"map_index={key.map_index}/" if key.map_index >= 0 else ""
    return f"{key.dag_id}/{key.task_id}/{key.run_id}/{mapped}{key.try_number}.log"
