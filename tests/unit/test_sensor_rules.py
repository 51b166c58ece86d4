"""Sensors' own decisions (pure: poke loop, timeout, soft_fail, backoff) and the scheduler's handling of
up_for_reschedule (same try when queued again, due time, reschedule history) against a migrated SQLite file."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from rabbitrun import DAG, BaseSensorOperator, FileSensor, PokeReturnValue
from rabbitrun.authoring.signals import RescheduleTask, SensorTimeout, SkipTask
from rabbitrun.errors import DagDefinitionError
from rabbitrun.models import attempts
from rabbitrun.scheduler import readiness, runs
from rabbitrun.states import TaskState
from tests.support.world import NOW, World, attempt_key, queued_root, set_ti, start_run, ti_row


class _CountingSensor(BaseSensorOperator):
    def __init__(self, *, done_after: int, value: Any = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.done_after, self.value, self.pokes = done_after, value, 0

    def poke(self, context: Any) -> bool | PokeReturnValue:
        self.pokes += 1
        if self.value is not None:
            return PokeReturnValue(self.pokes >= self.done_after, self.value)
        return self.pokes >= self.done_after


class _History:
    def __init__(self, first: datetime | None, count: int) -> None:
        self.first_started_at, self.reschedules = first, count


class _TI:
    def __init__(self, first: datetime | None, count: int) -> None:
        self.history = _History(first, count)

    def reschedule_history(self) -> _History:
        return self.history


def test_poke_mode_pokes_in_process_until_done_and_returns_the_pokes_xcom_value() -> None:
    with DAG("s"):
        sensor = _CountingSensor(task_id="c", done_after=3, value={"found": 1}, poke_interval=0)
    assert sensor.execute({"ti": _TI(None, 0)}) == {"found": 1}
    assert sensor.pokes == 3


def test_reschedule_mode_ends_the_attempt_with_the_next_poke_time() -> None:
    with DAG("s"):
        sensor = _CountingSensor(task_id="c", done_after=99, mode="reschedule", poke_interval=30)
    before = datetime.now(UTC)
    with pytest.raises(RescheduleTask) as caught:
        sensor.execute({"ti": _TI(None, 0)})
    assert sensor.pokes == 1
    assert before + timedelta(seconds=30) <= caught.value.reschedule_at <= datetime.now(UTC) + timedelta(seconds=30)


def test_reschedule_timeout_counts_from_the_first_poke_of_the_try() -> None:
    with DAG("s"):
        hard = _CountingSensor(task_id="h", done_after=99, mode="reschedule", poke_interval=1, timeout=60)
        soft = _CountingSensor(
            task_id="s", done_after=99, mode="reschedule", poke_interval=1, timeout=60, soft_fail=True
        )
    long_ago = datetime.now(UTC) - timedelta(minutes=2)
    with pytest.raises(SensorTimeout, match="timed out"):
        hard.execute({"ti": _TI(long_ago, 5)})
    with pytest.raises(SkipTask, match="timed out"):
        soft.execute({"ti": _TI(long_ago, 5)})
    with pytest.raises(RescheduleTask):  # a poke mode sensor would count from now: reschedule keeps waiting
        hard.execute({"ti": _TI(datetime.now(UTC) - timedelta(seconds=30), 5)})


def test_poke_mode_times_out_as_a_failure_that_does_not_retry() -> None:
    with DAG("s"):
        sensor = _CountingSensor(task_id="c", done_after=99, poke_interval=0, timeout=0)
    with pytest.raises(SensorTimeout) as caught:
        sensor.execute({})
    from rabbitrun.authoring.signals import FailTask

    assert isinstance(caught.value, FailTask)


def test_exponential_backoff_doubles_and_is_capped_by_max_wait_and_the_time_left() -> None:
    with DAG("s"):
        plain = _CountingSensor(task_id="p", done_after=1, poke_interval=5)
        backoff = _CountingSensor(
            task_id="b",
            done_after=1,
            poke_interval=5,
            exponential_backoff=True,
            max_wait=timedelta(seconds=30),
            timeout=100,
        )
    assert [plain.next_poke_interval_s(n, 0) for n in (1, 2, 3)] == [5, 5, 5]
    assert [backoff.next_poke_interval_s(n, 0) for n in (1, 2, 3, 4, 5)] == [5, 10, 20, 30, 30]
    assert backoff.next_poke_interval_s(5, 90) == 10  # never past the timeout
    assert backoff.next_poke_interval_s(200, 0) == 30  # huge poke counts do not overflow


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"mode": "sometimes"}, "mode must be one of"),
        ({"poke_interval": -1}, "poke_interval"),
        ({"timeout": "soon"}, "timeout"),
    ],
)
def test_bad_sensor_arguments_are_definition_errors(kwargs: dict[str, Any], message: str) -> None:
    with DAG("s"), pytest.raises(DagDefinitionError, match=message):
        _CountingSensor(task_id="c", done_after=1, **kwargs)


def test_file_sensor_matches_globs_files_and_non_empty_directories(tmp_path: Path) -> None:
    with DAG("s"):
        sensor = FileSensor(task_id="f", filepath=str(tmp_path / "data_*"))
    assert not sensor.poke({})
    (tmp_path / "data_dir").mkdir()
    assert not sensor.poke({}), "an empty directory is not there yet"
    (tmp_path / "data_dir" / "part-0").write_text("x")
    assert sensor.poke({})


# --- the scheduler's side ---------------------------------------------------------------------------


def test_reschedule_is_recorded_with_its_history_and_due_time(world: World) -> None:
    queued_root(world)
    key = attempt_key("chain", "root")
    assert attempts.claim(world.session, key, hostname="w1", pid=1, now=NOW, envelope_id="e1").won
    due = NOW + timedelta(minutes=1)
    outcome = attempts.Finish(TaskState.UP_FOR_RESCHEDULE, NOW + timedelta(seconds=1), "rescheduled", due)
    end = attempts.EndRecord(key, outcome, NOW, envelope_id="e1", hostname="w1")
    assert attempts.record_ends(world.session, [end], max_xcom_bytes=0) == [(outcome, True)]
    ti = ti_row(world, "chain", "root")
    assert (ti.state, ti.try_number, ti.next_retry_at) == ("up_for_reschedule", 1, due)
    assert attempts.reschedule_history(world.session, key) == attempts.RescheduleHistory(NOW, 1)
    assert attempts.reschedule_history(world.session, attempt_key("chain", "root", 2)) == attempts.RescheduleHistory(
        None, 0
    )
    assert runs.next_due_at(world.session) == due
    assert runs.due_runs(world.session, NOW) == set()
    assert runs.due_runs(world.session, due) == {("chain", "r1")}


def test_rescheduled_sensor_not_yet_due_is_not_queued_and_its_run_is_not_finished(world: World) -> None:
    queued_root(world)
    set_ti(world, "chain", "root", state="up_for_reschedule", next_retry_at=NOW + timedelta(seconds=5))
    assert readiness.schedule(world.session, world.dagbag, world.settings, NOW) == []
    assert ti_row(world, "chain", "root").state == "up_for_reschedule"


def test_rescheduled_sensor_that_is_due_is_queued_again_with_the_same_try(world: World) -> None:
    first = queued_root(world)
    set_ti(world, "chain", "root", state="up_for_reschedule", next_retry_at=NOW - timedelta(seconds=1))
    (envelope,) = readiness.schedule(world.session, world.dagbag, world.settings, NOW)
    assert envelope.key.try_number == 1 and envelope.id != first.id
    root = ti_row(world, "chain", "root")
    assert (root.state, root.try_number, root.envelope_id) == ("queued", 1, envelope.id)
    assert attempts.claim(world.session, envelope.key, hostname="w1", pid=1, now=NOW).won


def test_a_pass_that_finishes_a_run_reports_it_for_the_dag_callbacks(world: World) -> None:
    start_run(world, "leaf_rule")
    set_ti(world, "leaf_rule", "first", state="success")
    set_ti(world, "leaf_rule", "last", state="failed")
    finished: list[runs.FinishedRun] = []
    readiness.schedule(world.session, world.dagbag, world.settings, NOW, finished=finished)
    assert finished == [runs.FinishedRun("leaf_rule", "r1", "failed")]
    again: list[runs.FinishedRun] = []
    readiness.schedule(world.session, world.dagbag, world.settings, NOW, finished=again)
    runs.finish_runs_if_done(world.session, world.dagbag, [("leaf_rule", "r1")], NOW, again)
    assert again == [], "a finished run is reported once"
