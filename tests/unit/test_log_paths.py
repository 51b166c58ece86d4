"""A task instance key names exactly one log file inside the log folder (issue 17, findings 1 and 14):
``..``, absolute ids, separators and symlinks out of the folder are refused, on the wire too."""

from __future__ import annotations

from pathlib import Path

import pytest

from rabbitrun import protocol
from rabbitrun.errors import InvalidEnvelope, InvalidRunId, UnsafeLogPath
from rabbitrun.keys import TaskInstanceKey, attempt_log_path, log_relpath, validate_run_id


@pytest.mark.parametrize(
    "run_id",
    ["manual__2026-12-07T10:00:00.123456+00:00", "scheduled__2026-01-01T00:00:00+00:00", "r1", "a.b~c:d+e-f_g"],
)
def test_airflow_style_run_ids_are_accepted(run_id: str) -> None:
    assert validate_run_id(run_id) == run_id


@pytest.mark.parametrize("run_id", ["../../etc", "..", "a/b", "/abs", "", "a b", "x\n", "r" * 251, "a\\b", "ok..x"])
def test_run_ids_that_could_leave_the_log_folder_are_refused(run_id: str) -> None:
    with pytest.raises(InvalidRunId):
        validate_run_id(run_id)


@pytest.mark.parametrize(
    "key",
    [
        TaskInstanceKey("/etc", "passwd", "r1"),
        TaskInstanceKey("..", "..", "r1"),
        TaskInstanceKey("d", "t", "../../../rabbitrun.toml"),
        TaskInstanceKey("d", "t/../../x", "r1"),
    ],
)
def test_a_key_that_escapes_the_log_folder_names_no_path(key: TaskInstanceKey, tmp_path: Path) -> None:
    with pytest.raises(UnsafeLogPath):
        log_relpath(key)
    with pytest.raises(UnsafeLogPath):
        attempt_log_path(tmp_path, key)


def test_a_symlink_out_of_the_log_folder_is_refused(tmp_path: Path) -> None:
    secret = tmp_path / "rabbitrun.toml"
    secret.write_text('fernet_key = "x"\n')
    logs = tmp_path / "logs"
    key = TaskInstanceKey("d", "t", "r1")
    target = logs / log_relpath(key)
    target.parent.mkdir(parents=True)
    target.symlink_to(secret)
    with pytest.raises(UnsafeLogPath, match="outside the log folder"):
        attempt_log_path(logs, key)
    (logs / "d").rename(logs / "d_real")  # a symlinked folder on the way out is refused too
    (logs / "d").symlink_to(tmp_path)
    with pytest.raises(UnsafeLogPath):
        attempt_log_path(logs, TaskInstanceKey("d", "t", "r1"))  # -> tmp_path/t/r1/1.log


def test_a_key_inside_the_folder_resolves_there(tmp_path: Path) -> None:
    key = TaskInstanceKey("d", "t", "manual__2026-12-07T10:00:00+00:00", 3, 2)
    assert (
        attempt_log_path(tmp_path, key)
        == tmp_path.resolve() / "d/t/manual__2026-12-07T10:00:00+00:00/map_index=3/2.log"
    )


@pytest.mark.parametrize(
    "args",
    [
        {"dag_id": "/etc", "task_id": "passwd", "run_id": "r", "try_number": 1},
        {"dag_id": "d", "task_id": "t", "run_id": "../../x", "try_number": 1},
    ],
)
def test_a_control_request_with_a_path_in_its_key_does_not_decode(args: dict[str, object]) -> None:
    with pytest.raises(InvalidEnvelope, match="bad task instance key"):
        protocol.ControlRequest.of("read_log", args)
