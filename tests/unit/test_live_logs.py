"""Live log lines: what the worker ships of a per-try log file, and what a follower prints of it.
Nothing may be lost at the end of an attempt and identical lines must all arrive."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from rabbitrun.client.logs import LogCursor, _final_kind
from rabbitrun.keys import TaskInstanceKey, log_relpath
from rabbitrun.protocol import Event, TaskEnded, TaskEnvelope, TaskRevoked, TaskStarted
from rabbitrun.states import TaskState
from rabbitrun.worker.livelogs import LiveLogs


class Recorder:
    """Stands in for the EventPublisher: keeps what would be published."""

    hostname = "w1"

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def emit(self, routing_key: str, event: Event) -> None:
        self.events.append({"routing_key": routing_key, **event.to_wire()})


def _setup(tmp_path: Path) -> tuple[LiveLogs, Recorder, TaskEnvelope, Path]:
    recorder = Recorder()
    envelope = TaskEnvelope(id="e1", key=TaskInstanceKey("d", "t", "r", -1, 2), dag_file="f.py", queue="default")
    path = tmp_path / log_relpath(envelope.key)
    path.parent.mkdir(parents=True)
    return LiveLogs(recorder, tmp_path), recorder, envelope, path  # type: ignore[arg-type]


def _replay(events: list[dict[str, Any]], cursor: LogCursor | None = None) -> str:
    cursor = cursor or LogCursor()
    return "".join(cursor.take(e["offset"], e["lines"]) for e in events)


def test_lines_written_just_before_the_process_exits_are_still_shipped(tmp_path: Path) -> None:
    live, recorder, envelope, path = _setup(tmp_path)
    path.write_text("one\n")
    live.ship_round([(envelope, 123)])
    with path.open("a") as fh:
        fh.write("two\nthree\nno newline at the end")
    live.ship_round([])  # the process exited before the next round: the rest is shipped once
    live.ship_round([])
    assert _replay(recorder.events) == "one\ntwo\nthree\nno newline at the end\n"
    assert [e["offset"] for e in recorder.events] == [0, 4]
    assert recorder.events[0]["try_number"] == 2 and recorder.events[0]["routing_key"] == "log.d.t"


def test_flush_ships_the_lines_so_far_before_the_final_event_and_never_twice(tmp_path: Path) -> None:
    live, recorder, envelope, path = _setup(tmp_path)
    path.write_text("a\nb\n")
    live.flush(envelope)  # the consumer's call just before the final task event
    assert _replay(recorder.events) == "a\nb\n"
    live.ship_round([(envelope, 1)])  # still running (outcome reported before exit): nothing new
    with path.open("a") as fh:
        fh.write("callback line\n")
    live.ship_round([])
    assert _replay(recorder.events) == "a\nb\ncallback line\n"


def test_identical_repeated_lines_all_arrive(tmp_path: Path) -> None:
    live, recorder, envelope, path = _setup(tmp_path)
    path.write_text("same\nsame\n")
    live.ship_round([(envelope, 1)])
    with path.open("a") as fh:
        fh.write("same\nsame\n")
    live.ship_round([(envelope, 1)])
    assert _replay(recorder.events).splitlines() == ["same"] * 4


def test_cursor_skips_exactly_what_was_printed_from_the_file() -> None:
    cursor = LogCursor()
    assert cursor.after("same\nsame\nhal") == "same\nsame\nhal"  # read while a line was being written
    # a live event that starts before the printed end: only the unseen bytes are printed
    assert cursor.take(0, ["same", "same", "half"]) == "f\n"
    assert cursor.take(15, ["same", "same"]) == "same\nsame\n"
    assert cursor.take(5, ["same"]) == ""  # an old event, already printed
    assert cursor.after("same\nsame\nhalf\nsame\nsame\nlast\n") == "last\n"


def test_cursor_counts_bytes_of_non_ascii_lines() -> None:
    cursor = LogCursor()
    cursor.after("é\n")
    assert cursor.take(0, ["é", "ü"]) == "ü\n"


def test_follow_ends_only_on_the_final_event_of_the_asked_try_and_map_index() -> None:
    key = TaskInstanceKey("d", "t", "r", 3, 2)
    assert _final_kind(TaskEnded("w1", key, "e1", TaskState.SUCCESS), key) == "succeeded"
    assert _final_kind(TaskRevoked("w1", key, "e1", "shutdown"), key) == "revoked"
    for other in (
        dataclasses.replace(key, try_number=1),
        dataclasses.replace(key, map_index=-1),
        dataclasses.replace(key, run_id="other"),
    ):
        assert _final_kind(TaskEnded("w1", other, "e1", TaskState.FAILED), key) is None
    # a sensor's reschedule keeps writing the same log; a start is not an end
    assert _final_kind(TaskEnded("w1", key, "e1", TaskState.UP_FOR_RESCHEDULE), key) is None
    assert _final_kind(TaskStarted("w1", key, "e1"), key) is None
