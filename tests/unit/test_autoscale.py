"""The autoscaler's decision and the resizable slots."""

from __future__ import annotations

import asyncio

import pytest

from rabbitrun.errors import ConfigError
from rabbitrun.worker.pool import AutoscaleLimits, Slots, next_capacity

LIMITS = AutoscaleLimits(maximum=8, minimum=2, idle_before_shrink_s=5)


def test_grows_by_the_backlog_when_every_slot_is_busy_up_to_max() -> None:
    assert next_capacity(LIMITS, capacity=2, busy=2, backlog=3, idle_s=0) == 5
    assert next_capacity(LIMITS, capacity=6, busy=6, backlog=10, idle_s=0) == 8


def test_does_not_grow_while_slots_are_free() -> None:
    assert next_capacity(LIMITS, capacity=4, busy=1, backlog=3, idle_s=0) == 4


def test_shrinks_to_busy_but_not_below_min_after_a_quiet_spell() -> None:
    assert next_capacity(LIMITS, capacity=8, busy=3, backlog=0, idle_s=6) == 3
    assert next_capacity(LIMITS, capacity=8, busy=0, backlog=0, idle_s=6) == 2
    assert next_capacity(LIMITS, capacity=8, busy=0, backlog=0, idle_s=1) == 8


@pytest.mark.parametrize("text", ["8", "a,b", "2,8", "0,0"])
def test_bad_autoscale_values_name_the_option(text: str) -> None:
    with pytest.raises(ConfigError, match="autoscale"):
        AutoscaleLimits.parse(text)


def test_slots_bound_concurrency_and_resize_wakes_waiters() -> None:
    async def scenario() -> list[int]:
        slots = Slots(1)
        peak: list[int] = []

        async def job() -> None:
            assert await slots.acquire()
            peak.append(slots.busy)
            await asyncio.sleep(0.05)
            await slots.release()

        jobs = [asyncio.ensure_future(job()) for _ in range(4)]
        await asyncio.sleep(0.01)
        assert slots.waiting == 3
        await slots.resize(3)
        await asyncio.gather(*jobs)
        return peak

    peak = asyncio.run(scenario())
    assert max(peak) <= 3 and peak[0] == 1


def test_prefetch_looks_one_delivery_ahead_up_to_max() -> None:
    from rabbitrun.worker.pool import lookahead_prefetch

    assert lookahead_prefetch(LIMITS, 2) == 3
    assert lookahead_prefetch(LIMITS, 8) == 8


def test_closed_slots_turn_away_waiting_and_later_deliveries() -> None:
    async def scenario() -> list[bool]:
        slots = Slots(1)
        assert await slots.acquire()
        waiting = asyncio.ensure_future(slots.acquire())
        await asyncio.sleep(0.01)
        assert slots.waiting == 1
        await slots.close()
        await slots.release()  # the running one ends: its slot must not go to the waiting one
        return [await waiting, await slots.acquire(), slots.busy == 0]

    assert asyncio.run(scenario()) == [False, False, True]
