"""Slot pools: create, resize, list and delete them, and read their sizes for admission.

A pool is a number of slots shared by the task instances that name it; how
many are in use is not stored but counted from QUEUED and RUNNING task
instances, so a pool can never leak a slot.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from rabbitrun.errors import PoolError
from rabbitrun.models.tables import POOL_LEN, SlotPool, TaskInstance
from rabbitrun.names import DEFAULT_POOL
from rabbitrun.states import TaskState

#: Slots of a pool without a limit (Airflow's spelling); the default pool starts so, which keeps
#: DAGs that use no pool exactly as fast as without pools. `pools set default_pool 128` is Airflow's size.
UNLIMITED = -1

#: States whose task instances hold their pool slots (Airflow counts queued and running too).
OCCUPYING_STATES = (TaskState.QUEUED.value, TaskState.RUNNING.value)


@dataclass(frozen=True, slots=True)
class PoolInfo:
    pool: str
    slots: int
    description: str | None
    occupied: int  # slots held by queued and running task instances
    queued: int
    running: int


def set_pool(session: Session, pool: str, slots: int, description: str | None = None) -> None:
    """Create or resize a pool; a ``description`` of None keeps the current one. Commits."""
    if not pool.strip() or len(pool) > POOL_LEN:
        raise PoolError(pool, f"a pool name must have 1 to {POOL_LEN} characters")
    if slots < UNLIMITED:
        raise PoolError(pool, f"slots must be >= 0, or -1 for unlimited, got {slots}")
    row = session.get(SlotPool, pool)
    if row is None:
        session.add(SlotPool(pool=pool, slots=slots, description=description))
    else:
        row.slots = slots
        if description is not None:
            row.description = description
    session.commit()


def delete_pool(session: Session, pool: str) -> None:
    """Delete a pool; the default pool cannot go (every task without a pool uses it). Commits."""
    if pool == DEFAULT_POOL:
        raise PoolError(pool, "the default pool cannot be deleted (resize it with `pools set` instead)")
    row = session.get(SlotPool, pool)
    if row is None:
        raise PoolError(pool, "no such pool")
    session.delete(row)
    session.commit()


def list_pools(session: Session) -> list[PoolInfo]:
    """Every pool with its size and what its queued and running task instances hold right now."""
    usage: dict[str, dict[str, tuple[int, int]]] = {}
    rows = session.execute(
        select(TaskInstance.pool, TaskInstance.state, func.count(), func.sum(TaskInstance.pool_slots))
        .where(TaskInstance.state.in_(OCCUPYING_STATES))
        .group_by(TaskInstance.pool, TaskInstance.state)
    ).all()
    for pool, state, count, slots in rows:
        usage.setdefault(pool, {})[state] = (int(count), int(slots or 0))
    out = []
    for row in session.execute(select(SlotPool).order_by(SlotPool.pool)).scalars():
        by_state = usage.get(row.pool, {})
        queued, running = by_state.get(TaskState.QUEUED.value, (0, 0)), by_state.get(TaskState.RUNNING.value, (0, 0))
        out.append(PoolInfo(row.pool, row.slots, row.description, queued[1] + running[1], queued[0], running[0]))
    return out


def pool_sizes(session: Session, *, lock: bool = False) -> dict[str, int]:
    """Slots per pool. ``lock`` takes a row lock on every pool (PostgreSQL): the critical section in
    which one scheduler at a time counts free slots and queues, so two schedulers never overfill."""
    query = select(SlotPool.pool, SlotPool.slots).order_by(SlotPool.pool)
    if lock:
        query = query.with_for_update()
    return {pool: slots for pool, slots in session.execute(query).all()}
