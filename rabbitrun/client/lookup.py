"""Runs and tasks named the way Airflow's CLI names them: by run id or by logical date.

Airflow's ``dags state DAG_ID LOGICAL_DATE`` and ``tasks state DAG_ID TASK_ID LOGICAL_DATE``
name a run by its logical date, rabbitrun's commands by its run id; here either one is
accepted (a run id first, since a run id can look like a date). Also the structure a DAG
prints for ``tasks list --tree`` and the listing ``dags list -o`` renders.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from rabbitrun.client.db import sessions_for
from rabbitrun.errors import DagError, DagRunNotFound, TaskNotFound
from rabbitrun.settings import Settings


@dataclass(frozen=True, slots=True)
class RunRef:
    run_id: str
    state: str
    logical_date: datetime


def parse_date(text: str) -> datetime:
    """An ISO date or date-time; UTC if it names no zone (Airflow's CLI takes the same forms)."""
    try:
        value = datetime.fromisoformat(text)
    except ValueError as exc:
        raise DagError(f"{text!r} is not an ISO date") from exc
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def find_run(settings: Settings, dag_id: str, run_id_or_date: str) -> RunRef:
    """The run whose run id is ``run_id_or_date``, else the one with that logical date."""
    from sqlalchemy import select

    from rabbitrun.models.tables import DagRun

    with sessions_for(settings)() as session:
        row = session.scalars(select(DagRun).where(DagRun.dag_id == dag_id, DagRun.run_id == run_id_or_date)).first()
        if row is None:
            try:
                when = parse_date(run_id_or_date)
            except DagError:
                raise DagRunNotFound(dag_id, run_id_or_date) from None
            row = session.scalars(
                select(DagRun).where(DagRun.dag_id == dag_id, DagRun.logical_date == when).order_by(DagRun.id)
            ).first()
        if row is None:
            raise DagRunNotFound(dag_id, run_id_or_date)
        return RunRef(row.run_id, row.state, row.logical_date)


def run_ids_between(settings: Settings, dag_id: str, start: datetime | None, end: datetime | None) -> list[str]:
    """Run ids of ``dag_id`` whose logical date is within [start, end] (either end open)."""
    from sqlalchemy import select

    from rabbitrun.models.tables import DagRun

    query = select(DagRun.run_id).where(DagRun.dag_id == dag_id)
    if start is not None:
        query = query.where(DagRun.logical_date >= start)
    if end is not None:
        query = query.where(DagRun.logical_date <= end)
    with sessions_for(settings)() as session:
        return list(session.scalars(query.order_by(DagRun.logical_date, DagRun.id)))


def task_state(settings: Settings, dag_id: str, task_id: str, run_id_or_date: str, map_index: int = -1) -> str:
    """The state of one task instance; ``none`` for a task the run has not reached (as Airflow prints)."""
    from rabbitrun.client.dags import dagbag
    from rabbitrun.models import runs

    run = find_run(settings, dag_id, run_id_or_date)
    with sessions_for(settings)() as session:
        rows = runs.task_state_rows(session, dag_id, run.run_id)
    for row in rows:
        if row.task_id == task_id and row.map_index == map_index:
            return row.state
    if task_id not in dagbag(settings).get_dag(dag_id).task_ids:
        raise TaskNotFound(dag_id, task_id)
    return "none"


def task_tree(dag: Any) -> list[tuple[int, str]]:
    """(depth, task_id) in Airflow's ``tasks list --tree`` order: each root, then its downstream, indented."""
    lines: list[tuple[int, str]] = []

    def walk(task_id: str, depth: int) -> None:
        lines.append((depth, task_id))
        for child in sorted(dag.get_task(task_id).downstream_task_ids):
            walk(child, depth + 1)

    for root in sorted(t.task_id for t in dag.tasks if not t.upstream_task_ids):
        walk(root, 0)
    return lines


def render(rows: list[dict[str, Any]], output: str, columns: list[str]) -> str:
    """Rows as Airflow's ``-o table|json|yaml|plain`` render them (yaml without a YAML library: flat values)."""
    import json

    if output == "json":
        return json.dumps(rows, indent=2, default=str)
    if output == "yaml":
        if not rows:
            return "[]"
        return "\n".join(
            "\n".join(
                ("- " if i == 0 else "  ") + f"{c}: {json.dumps(r.get(c), default=str)}" for i, c in enumerate(columns)
            )
            for r in rows
        )
    widths = {c: max([len(c), *(len(str(r.get(c, ""))) for r in rows)]) for c in columns}
    sep = "\t" if output == "plain" else " | "
    head = sep.join(c.ljust(widths[c]) for c in columns)
    body = [sep.join(str(r.get(c, "")).ljust(widths[c]) for c in columns) for r in rows]
    if output == "plain":
        return "\n".join([head, *body])
    return "\n".join([head, "=+=".join("=" * widths[c] for c in columns), *body])
