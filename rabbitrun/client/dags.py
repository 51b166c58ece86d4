"""The DAGs as the operator handles them: parsing the dags folder, listing, triggering a run,
pausing, deleting, backfilling."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rabbitrun.client.db import sessions_for
from rabbitrun.errors import DagError, DagNotFound
from rabbitrun.keys import validate_run_id
from rabbitrun.settings import Settings


def dagbag(settings: Settings) -> Any:
    from rabbitrun.authoring import DagBag

    return DagBag(
        Path(settings.core.dags_folder),
        include_examples=settings.core.load_examples,
        airflow_compat=settings.core.airflow_compat,
        plugins_folder=Path(settings.core.plugins_folder) if settings.core.plugins_folder else None,
    )


@dataclass(frozen=True, slots=True)
class DagListing:
    dags: list[tuple[str, str, str]]  # dag_id, file ref, schedule
    import_errors: list[tuple[str, int | None, str]]  # file, line, exception


def list_dags(settings: Settings) -> DagListing:
    bag = dagbag(settings)
    dags = [(d, bag.file_ref(d), str(bag.dags[d].schedule)) for d in sorted(bag.dags)]
    errors = [(ref, e.lineno, e.exception) for ref, e in sorted(bag.import_errors.items())]
    return DagListing(dags, errors)


def known_dag(settings: Settings, dag_id: str) -> None:
    """Accept a DAG the scheduler has registered, else parse the dags folder to be sure."""
    from rabbitrun.models import dags as dag_rows

    with sessions_for(settings)() as session:
        if dag_rows.is_registered(session, dag_id):
            return
    bag = dagbag(settings)
    if dag_id not in bag.dags:
        raise DagNotFound(dag_id)


def trigger(
    settings: Settings,
    dag_id: str,
    *,
    run_id: str | None = None,
    conf: dict[str, Any] | None = None,
    logical_date: datetime | None = None,
) -> str:
    """Create a QUEUED DAG run the scheduler will start; returns its run id.

    ``logical_date`` (Airflow's ``dags trigger -e``) sets the run's logical date and data
    interval start; by default both are the time of the trigger. A ``conf`` that violates one of
    the DAG's Params is refused here (ParamValidationError), before any run exists; checking it
    means parsing the dags folder, so only a trigger with a conf pays for it (a conf-less run uses
    the defaults, which the DAG file itself checks). A ``run_id`` outside Airflow's character rules
    raises :class:`~rabbitrun.errors.InvalidRunId` before the DB is opened.
    """
    from rabbitrun.models.lean import LeanDB

    if run_id is not None:
        validate_run_id(run_id)
    if conf:
        check_conf(settings, dag_id, conf)
    if logical_date is not None:
        now = datetime.now(UTC)
        return _trigger_orm(settings, dag_id, run_id or _manual_run_id(logical_date), conf or {}, now, logical_date)
    lean = LeanDB.open(settings.database)  # a DAG the scheduler registered: no SQLAlchemy import (W1)
    if lean is not None:
        try:
            if lean.dag_registered(dag_id):
                now = datetime.now(UTC)  # queued_at: when the row is written, not before the driver loaded
                run_id = run_id or _manual_run_id(now)
                lean.insert_queued_run(dag_id, run_id, conf or {}, now)
                return run_id
        finally:
            lean.close()
    now = datetime.now(UTC)
    return _trigger_orm(settings, dag_id, run_id or _manual_run_id(now), conf or {}, now)


def check_conf(settings: Settings, dag_id: str, conf: dict[str, Any]) -> None:
    """Raise ParamValidationError if ``conf`` violates a Param of ``dag_id`` (no-op for a DAG not parsed)."""
    from rabbitrun.authoring import resolve_params

    dag = dagbag(settings).dags.get(dag_id)
    if dag is not None:
        resolve_params(dag.params, conf)


def _manual_run_id(now: datetime) -> str:
    return f"manual__{now.isoformat(timespec='microseconds')}"


def _trigger_orm(
    settings: Settings,
    dag_id: str,
    run_id: str,
    conf: dict[str, Any],
    now: datetime,
    logical_date: datetime | None = None,
) -> str:
    from sqlalchemy.exc import IntegrityError

    from rabbitrun.authoring.timetables import Interval
    from rabbitrun.models import runs
    from rabbitrun.models.engine import db_errors, make_engine, session_factory

    engine = make_engine(settings.database, pooled=False)
    with db_errors(engine):
        known_dag(settings, dag_id)
        try:
            with session_factory(engine)() as session:
                interval = Interval(logical_date, logical_date) if logical_date is not None else None
                runs.create_run(session, dag_id, run_id, conf, now, interval=interval)
        except IntegrityError as exc:
            raise DagError(f"DAG run {run_id!r} of {dag_id!r} already exists") from exc
        _nudge_scheduler(engine, str(settings.database.url))
    return run_id


def _nudge_scheduler(engine: Any, url: str) -> None:
    """Wake the scheduler now rather than at its next poll (best effort, rabbitrun.models.wakeup)."""
    from sqlalchemy.exc import DBAPIError

    from rabbitrun.models import wakeup

    if engine.dialect.name == "postgresql":
        try:
            with engine.connect() as connection:
                connection.exec_driver_sql(wakeup.NOTIFY_SQL)
                connection.commit()
        except DBAPIError:  # the run is written; the poll finds it
            pass
    else:
        wakeup.nudge_sqlite(url)


# --- run management (issue 7) -------------------------------------------------------------------


def set_paused(settings: Settings, dag_id: str, paused: bool) -> None:
    """Paused DAGs keep their runs but start no new ones until unpaused (as in Airflow)."""
    from rabbitrun.models import dags as dag_rows

    with sessions_for(settings)() as session:
        if not dag_rows.set_paused(session, dag_id, paused):
            bag = dagbag(settings)
            if dag_id not in bag.dags:
                raise DagNotFound(dag_id)
            dag_rows.set_paused(session, dag_id, paused, fileloc=bag.file_ref(dag_id))


def delete_dag(settings: Settings, dag_id: str) -> int:
    """Delete a DAG's runs, task instances, attempts and XComs from the metadata DB."""
    from rabbitrun.models import dags as dag_rows

    with sessions_for(settings)() as session:
        return dag_rows.delete_dag(session, dag_id)


def backfill(settings: Settings, dag_id: str, start: datetime, end: datetime) -> list[str]:
    """Create a run per data interval of the DAG's schedule between ``start`` and ``end`` (existing
    ones are kept); the scheduler runs them, max_active_runs at a time. Returns the run ids."""
    from rabbitrun.authoring import timetables
    from rabbitrun.models import runs

    dag = dagbag(settings).get_dag(dag_id)
    if dag.schedule is None or dag.schedule == "@once":
        raise DagError(f"DAG {dag_id!r} has no periodic schedule to backfill")
    intervals = timetables.intervals_after(dag.schedule, dag.start_date or start, start, end)
    run_ids = []
    with sessions_for(settings)() as session:
        existing = runs.run_ids(session, dag_id)
        now = datetime.now(UTC)
        for interval in intervals:
            run_id = f"backfill__{interval.start.isoformat()}"
            scheduled = f"scheduled__{interval.start.isoformat()}"
            if scheduled in existing:  # the scheduler already made this interval's run
                run_id = scheduled
            elif run_id not in existing:
                runs.create_run(session, dag_id, run_id, {}, now, run_type="backfill", interval=interval, commit=False)
            run_ids.append(run_id)
        session.commit()
    return run_ids
