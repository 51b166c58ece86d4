"""Which ready task instances get a slot now: pools, ``max_active_tasks`` per DAG and the
global ``parallelism``, in ``priority_weight`` order. Pure: no DB, no clock.

The scheduler counts what QUEUED and RUNNING task instances hold (the
occupancy), reads the limits, and asks :func:`admit` which of the ready
candidates to queue. A candidate that does not fit waits (and says why); one
that names a pool that does not exist cannot ever run and is reported apart,
so the scheduler fails it instead of leaving it silently waiting.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True, slots=True)
class Candidate:
    """A ready task instance, as far as admission cares."""

    ref: Hashable  # whatever the caller needs to find the row again
    dag_id: str
    pool: str
    pool_slots: int
    priority_weight: int
    logical_date: datetime
    map_index: int = -1


@dataclass(frozen=True, slots=True)
class Limits:
    parallelism: int  # task instances queued or running at once in the installation; 0: unlimited
    pools: Mapping[str, int]  # pool -> slots; -1: unlimited
    max_active_tasks: Mapping[str, int]  # dag_id -> task instances queued or running at once; absent: unlimited


@dataclass(frozen=True, slots=True)
class Occupancy:
    """What QUEUED and RUNNING task instances hold right now."""

    total: int = 0  # task instances
    pool_slots: Mapping[str, int] = field(default_factory=dict)  # pool -> slots held
    by_dag: Mapping[str, int] = field(default_factory=dict)  # dag_id -> task instances


@dataclass(frozen=True, slots=True)
class Admission:
    admitted: list[Candidate]  # in priority order: queue (and publish) them in this order
    waiting: list[tuple[Candidate, str]]  # with the limit that holds each back
    unknown_pool: list[Candidate]


def priority_order(candidates: Iterable[Candidate]) -> list[Candidate]:
    """Airflow's order: higher ``priority_weight`` first, then older runs, then lower map index."""
    return sorted(candidates, key=lambda c: (-c.priority_weight, c.logical_date, c.map_index))


def admit(candidates: Iterable[Candidate], limits: Limits, occupancy: Occupancy) -> Admission:
    """Walk the candidates in priority order and admit each one every limit still has room for.

    A candidate held back by its pool or its DAG does not stop lower-priority
    candidates of other pools or DAGs: slots are never left idle behind it.
    """
    total = occupancy.total
    in_pool: Counter[str] = Counter(occupancy.pool_slots)
    in_dag: Counter[str] = Counter(occupancy.by_dag)
    admitted: list[Candidate] = []
    waiting: list[tuple[Candidate, str]] = []
    unknown: list[Candidate] = []
    for c in priority_order(candidates):
        size = limits.pools.get(c.pool)
        if size is None:
            unknown.append(c)
            continue
        reason = _held_back(c, size, limits, total, in_pool[c.pool], in_dag[c.dag_id])
        if reason:
            waiting.append((c, reason))
            continue
        admitted.append(c)
        total += 1
        in_pool[c.pool] += c.pool_slots
        in_dag[c.dag_id] += 1
    return Admission(admitted, waiting, unknown)


def _held_back(c: Candidate, size: int, limits: Limits, total: int, pool_used: int, dag_active: int) -> str:
    """The limit without room for ``c``, in words for `tasks states`; empty when all have room."""
    if limits.parallelism > 0 and total >= limits.parallelism:
        return f"waiting: parallelism ({limits.parallelism}) reached"
    dag_limit = limits.max_active_tasks.get(c.dag_id)
    if dag_limit is not None and dag_active >= dag_limit:
        return f"waiting: max_active_tasks ({dag_limit}) of DAG {c.dag_id} reached"
    if size < 0:
        return ""  # an unlimited pool
    if c.pool_slots > size:
        return (
            f"waiting: needs {c.pool_slots} slots of pool {c.pool!r}, which has {size}; "
            f"it runs once the pool is resized"
        )
    if pool_used + c.pool_slots > size:
        return f"waiting: no free slot in pool {c.pool!r} ({size} slots)"
    return ""


def unknown_pool_reason(pool: str) -> str:
    return f"pool {pool!r} does not exist: create it with `rabbitrun pools set {pool} SLOTS` and clear the task"
