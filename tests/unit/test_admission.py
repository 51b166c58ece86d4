"""The pure admission decision: pools, max_active_tasks, parallelism, priority order, unknown pools."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from rabbitrun.scheduler.admission import Candidate, Limits, Occupancy, admit, priority_order

T0 = datetime(2026, 5, 1, tzinfo=UTC)


def c(
    ref: str,
    *,
    dag: str = "d",
    pool: str = "default_pool",
    slots: int = 1,
    weight: int = 1,
    age_s: int = 0,
    map_index: int = -1,
) -> Candidate:
    return Candidate(ref, dag, pool, slots, weight, T0 - timedelta(seconds=age_s), map_index)


def limits(pools: dict[str, int] | None = None, parallelism: int = 0, dags: dict[str, int] | None = None) -> Limits:
    return Limits(parallelism, pools if pools is not None else {"default_pool": 128}, dags or {})


def refs(candidates: list[Candidate]) -> list[object]:
    return [x.ref for x in candidates]


def test_everything_fits_when_no_limit_is_reached() -> None:
    got = admit([c("a"), c("b")], limits(), Occupancy())
    assert refs(got.admitted) == ["a", "b"] and not got.waiting and not got.unknown_pool


def test_pool_admits_only_its_free_slots_highest_priority_first() -> None:
    got = admit(
        [c("low", pool="p", weight=1), c("high", pool="p", weight=9), c("mid", pool="p", weight=5)],
        limits({"p": 3}),
        Occupancy(1, {"p": 1}, {"d": 1}),
    )
    assert refs(got.admitted) == ["high", "mid"]
    assert [(x.ref, reason) for x, reason in got.waiting] == [("low", "waiting: no free slot in pool 'p' (3 slots)")]


def test_pool_slots_count_as_many_slots() -> None:
    got = admit([c("big", pool="p", slots=2, weight=5), c("small", pool="p", weight=1)], limits({"p": 2}), Occupancy())
    assert refs(got.admitted) == ["big"] and refs([x for x, _ in got.waiting]) == ["small"]


def test_a_full_pool_does_not_hold_back_tasks_of_other_pools() -> None:
    got = admit(
        [c("in_full", pool="full", weight=10), c("elsewhere", pool="free", weight=1)],
        limits({"full": 1, "free": 1}),
        Occupancy(1, {"full": 1}, {"d": 1}),
    )
    assert refs(got.admitted) == ["elsewhere"]


def test_task_needing_more_slots_than_the_pool_has_waits_saying_so() -> None:
    got = admit([c("huge", pool="p", slots=5)], limits({"p": 2}), Occupancy())
    ((waiting, reason),) = got.waiting
    assert waiting.ref == "huge" and "needs 5 slots of pool 'p', which has 2" in reason


def test_unlimited_pool_admits_everything_else_allows() -> None:
    got = admit(
        [c(str(i), pool="open", slots=3) for i in range(50)],
        limits({"open": -1}, parallelism=40),
        Occupancy(5, {"open": 900}),
    )
    assert len(got.admitted) == 35


def test_zero_slot_pool_admits_nothing() -> None:
    got = admit([c("a", pool="closed")], limits({"closed": 0}), Occupancy())
    assert not got.admitted and len(got.waiting) == 1


def test_unknown_pool_is_reported_apart_and_takes_no_slot() -> None:
    got = admit([c("lost", pool="nope", weight=9), c("ok", weight=1)], limits(parallelism=1), Occupancy())
    assert refs(got.unknown_pool) == ["lost"] and refs(got.admitted) == ["ok"]


def test_max_active_tasks_counts_queued_and_running_of_the_dag_across_runs() -> None:
    got = admit(
        [c("a", dag="capped"), c("b", dag="capped"), c("c", dag="other")],
        limits(dags={"capped": 2, "other": 2}),
        Occupancy(1, {"default_pool": 1}, {"capped": 1}),
    )
    assert refs(got.admitted) == ["a", "c"]
    assert got.waiting[0][1] == "waiting: max_active_tasks (2) of DAG capped reached"


def test_parallelism_caps_all_dags_and_pools_together() -> None:
    got = admit(
        [c("a", pool="p"), c("b", dag="e"), c("c")], limits({"p": 9, "default_pool": 9}, parallelism=3), Occupancy(1)
    )
    assert refs(got.admitted) == ["a", "b"]
    assert got.waiting[0][1] == "waiting: parallelism (3) reached"


def test_equal_priority_goes_to_the_older_run_then_the_lower_map_index() -> None:
    order = priority_order(
        [c("new", age_s=0), c("old_1", age_s=60, map_index=1), c("old_0", age_s=60, map_index=0), c("urgent", weight=2)]
    )
    assert refs(order) == ["urgent", "old_0", "old_1", "new"]
