"""The metadata tables: DAGs, runs, task instances and their attempts, XCom, Variables, Connections.

The database is the source of truth for every state (DESIGN.md); messages only
notify. Column names follow Airflow's where Airflow users query them by hand.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, Float, ForeignKeyConstraint, Index, Integer, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from rabbitrun.models.base import Base, UTCDateTime, utcnow
from rabbitrun.names import DEFAULT_POOL

ID_LEN = 250
POOL_LEN = 256


class DagModel(Base):
    """A DAG the scheduler has parsed, with the file that defines it."""

    __tablename__ = "dag"
    dag_id: Mapped[str] = mapped_column(String(ID_LEN), primary_key=True)
    fileloc: Mapped[str] = mapped_column(String(2000))
    is_paused: Mapped[bool] = mapped_column(Boolean, default=False)
    description: Mapped[str | None] = mapped_column(Text)
    last_parsed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class DagImportErrorRow(Base):
    """A DAG file that failed to import on the last parse, as `dags list` reports it."""

    __tablename__ = "import_error"
    filename: Mapped[str] = mapped_column(String(2000), primary_key=True)
    lineno: Mapped[int | None] = mapped_column(Integer)
    exception: Mapped[str] = mapped_column(Text)
    stacktrace: Mapped[str] = mapped_column(Text, default="")
    timestamp: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class DagRun(Base):
    __tablename__ = "dag_run"
    __table_args__ = (
        UniqueConstraint("dag_id", "run_id", name="uq_dag_run_dag_id_run_id"),
        Index("ix_dag_run_state", "state"),
        Index("ix_dag_run_dag_id_interval_end", "dag_id", "data_interval_end"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    dag_id: Mapped[str] = mapped_column(String(ID_LEN))
    run_id: Mapped[str] = mapped_column(String(ID_LEN))
    state: Mapped[str] = mapped_column(String(20))
    run_type: Mapped[str] = mapped_column(String(20), default="manual")
    logical_date: Mapped[datetime] = mapped_column(UTCDateTime)
    conf: Mapped[str] = mapped_column(Text, default="{}")  # JSON
    data_interval_start: Mapped[datetime | None] = mapped_column(UTCDateTime)
    data_interval_end: Mapped[datetime | None] = mapped_column(UTCDateTime)
    queued_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    start_date: Mapped[datetime | None] = mapped_column(UTCDateTime)
    end_date: Mapped[datetime | None] = mapped_column(UTCDateTime)


class TaskInstance(Base):
    """The current state of one task in one run; ``try_number`` is its latest attempt."""

    __tablename__ = "task_instance"
    __table_args__ = (
        ForeignKeyConstraint(
            ["dag_id", "run_id"],
            ["dag_run.dag_id", "dag_run.run_id"],
            ondelete="CASCADE",
            name="fk_task_instance_dag_run",
        ),
        Index("ix_task_instance_state", "state"),
        Index("ix_task_instance_dag_run_state", "dag_id", "run_id", "state"),  # "any unfinished in this run?"
    )
    dag_id: Mapped[str] = mapped_column(String(ID_LEN), primary_key=True)
    task_id: Mapped[str] = mapped_column(String(ID_LEN), primary_key=True)
    run_id: Mapped[str] = mapped_column(String(ID_LEN), primary_key=True)
    map_index: Mapped[int] = mapped_column(Integer, primary_key=True, default=-1)
    state: Mapped[str] = mapped_column(String(20))
    try_number: Mapped[int] = mapped_column(Integer, default=0)
    max_tries: Mapped[int] = mapped_column(Integer, default=0)
    queue: Mapped[str] = mapped_column(String(ID_LEN))
    priority_weight: Mapped[int] = mapped_column(Integer, default=1)
    pool: Mapped[str] = mapped_column(String(POOL_LEN), default=DEFAULT_POOL)
    pool_slots: Mapped[int] = mapped_column(Integer, default=1)
    operator: Mapped[str | None] = mapped_column(String(ID_LEN))
    queued_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    start_date: Mapped[datetime | None] = mapped_column(UTCDateTime)
    end_date: Mapped[datetime | None] = mapped_column(UTCDateTime)
    duration: Mapped[float | None] = mapped_column(Float)
    hostname: Mapped[str | None] = mapped_column(String(ID_LEN))
    pid: Mapped[int | None] = mapped_column(Integer)
    envelope_id: Mapped[str | None] = mapped_column(String(64))
    last_heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # the lease: renewed by its worker
    # re-queued (same try) because its lease expired: bounded by core.max_infra_retries
    infra_retries: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    next_retry_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    reason: Mapped[str | None] = mapped_column(Text)  # why it failed or is stuck, for `tasks states`


class SlotPool(Base):
    """A named number of slots; queued and running task instances of the pool hold ``pool_slots`` each."""

    __tablename__ = "slot_pool"
    pool: Mapped[str] = mapped_column(String(POOL_LEN), primary_key=True)
    slots: Mapped[int] = mapped_column(Integer)
    description: Mapped[str | None] = mapped_column(Text)


class TaskAttempt(Base):
    """One row per finished (or abandoned) attempt, so killed tries stay visible."""

    __tablename__ = "task_attempt"
    dag_id: Mapped[str] = mapped_column(String(ID_LEN), primary_key=True)
    task_id: Mapped[str] = mapped_column(String(ID_LEN), primary_key=True)
    run_id: Mapped[str] = mapped_column(String(ID_LEN), primary_key=True)
    map_index: Mapped[int] = mapped_column(Integer, primary_key=True)
    try_number: Mapped[int] = mapped_column(Integer, primary_key=True)
    state: Mapped[str] = mapped_column(String(20))
    start_date: Mapped[datetime | None] = mapped_column(UTCDateTime)
    end_date: Mapped[datetime | None] = mapped_column(UTCDateTime)
    hostname: Mapped[str | None] = mapped_column(String(ID_LEN))
    pid: Mapped[int | None] = mapped_column(Integer)
    reason: Mapped[str | None] = mapped_column(Text)


class TaskReschedule(Base):
    """One row per reschedule of a sensor's try: its first row is when the sensor's wait began,
    which its ``timeout`` counts from across reschedules (Airflow's task_reschedule)."""

    __tablename__ = "task_reschedule"
    __table_args__ = (
        ForeignKeyConstraint(
            ["dag_id", "run_id"],
            ["dag_run.dag_id", "dag_run.run_id"],
            ondelete="CASCADE",
            name="fk_task_reschedule_dag_run",
        ),
        Index("ix_task_reschedule_ti_try", "dag_id", "task_id", "run_id", "map_index", "try_number"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    dag_id: Mapped[str] = mapped_column(String(ID_LEN))
    task_id: Mapped[str] = mapped_column(String(ID_LEN))
    run_id: Mapped[str] = mapped_column(String(ID_LEN))
    map_index: Mapped[int] = mapped_column(Integer, default=-1)
    try_number: Mapped[int] = mapped_column(Integer)
    start_date: Mapped[datetime] = mapped_column(UTCDateTime)
    end_date: Mapped[datetime] = mapped_column(UTCDateTime)
    reschedule_date: Mapped[datetime] = mapped_column(UTCDateTime)


class XComRow(Base):
    __tablename__ = "xcom"
    __table_args__ = (
        UniqueConstraint("dag_id", "run_id", "task_id", "map_index", "key", name="uq_xcom_entry"),
        Index("ix_xcom_timestamp", "timestamp"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    dag_id: Mapped[str] = mapped_column(String(ID_LEN))
    task_id: Mapped[str] = mapped_column(String(ID_LEN))
    run_id: Mapped[str] = mapped_column(String(ID_LEN))
    map_index: Mapped[int] = mapped_column(Integer, default=-1)
    key: Mapped[str] = mapped_column(String(512))
    value: Mapped[bytes] = mapped_column(LargeBinary)
    value_type: Mapped[str] = mapped_column(String(20), default="json")  # json | pickle | ref
    timestamp: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class VariableRow(Base):
    __tablename__ = "variable"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(ID_LEN), unique=True)
    val: Mapped[str] = mapped_column(Text)
    description: Mapped[str | None] = mapped_column(Text)
    is_encrypted: Mapped[bool] = mapped_column(Boolean, default=False)


class ConnectionRow(Base):
    __tablename__ = "connection"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    conn_id: Mapped[str] = mapped_column(String(ID_LEN), unique=True)
    conn_type: Mapped[str] = mapped_column(String(500))
    description: Mapped[str | None] = mapped_column(Text)
    host: Mapped[str | None] = mapped_column(String(500))
    schema: Mapped[str | None] = mapped_column(String(500))
    login: Mapped[str | None] = mapped_column(Text)
    password: Mapped[str | None] = mapped_column(Text)
    port: Mapped[int | None] = mapped_column(Integer)
    extra: Mapped[str | None] = mapped_column(Text)
    is_encrypted: Mapped[bool] = mapped_column(Boolean, default=False)
    is_extra_encrypted: Mapped[bool] = mapped_column(Boolean, default=False)
