"""PythonOperator context passing and BashOperator outcomes (success, failure, skip, last line, kill)."""

from __future__ import annotations

import logging
import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from rabbitrun.authoring import BashCommandFailed, BashOperator, PythonOperator, SkipTask, TaskTimeout


def _context(**extra: Any) -> dict[str, Any]:
    return {"ti": object(), "ds": "2026-01-01", "run_id": "manual__1", "params": {}, **extra}


def test_python_operator_returns_the_callables_value() -> None:
    op = PythonOperator(task_id="t", python_callable=lambda a, b: a + b, op_args=[1], op_kwargs={"b": 2})
    assert op.execute(_context()) == 3


def test_python_operator_passes_only_context_keys_the_callable_names() -> None:
    seen: dict[str, Any] = {}

    def fn(x: int, ds: str, run_id: str) -> None:
        seen.update(x=x, ds=ds, run_id=run_id)

    PythonOperator(task_id="t", python_callable=fn, op_args=[5]).execute(_context())
    assert seen == {"x": 5, "ds": "2026-01-01", "run_id": "manual__1"}


def test_python_operator_passes_whole_context_to_var_keyword() -> None:
    seen: dict[str, Any] = {}
    PythonOperator(task_id="t", python_callable=lambda **kw: seen.update(kw)).execute(_context())
    assert set(seen) == {"ti", "ds", "run_id", "params"}


def test_op_kwargs_win_over_context_entries() -> None:
    op = PythonOperator(task_id="t", python_callable=lambda ds: ds, op_kwargs={"ds": "mine"})
    assert op.execute(_context()) == "mine"


def test_positional_op_args_are_not_overridden_by_context() -> None:
    op = PythonOperator(task_id="t", python_callable=lambda ds: ds, op_args=["positional"])
    assert op.execute(_context()) == "positional"


def test_python_operator_refuses_a_non_callable() -> None:
    from rabbitrun.errors import DagDefinitionError

    with pytest.raises(DagDefinitionError, match="callable"):
        PythonOperator(task_id="t", python_callable="nope")  # type: ignore[arg-type]


def test_bash_success_returns_last_line_and_logs_every_line(caplog: pytest.LogCaptureFixture) -> None:
    op = BashOperator(task_id="b", bash_command="echo one; echo two >&2; echo three")
    with caplog.at_level(logging.INFO, logger="rabbitrun.task"):
        assert op.execute({}) == "three"
    assert [r.getMessage() for r in caplog.records] == ["one", "two", "three"]


def test_bash_without_output_returns_empty_string() -> None:
    assert BashOperator(task_id="b", bash_command="true").execute({}) == ""


def test_bash_non_zero_exit_raises_with_airflows_message() -> None:
    with pytest.raises(
        BashCommandFailed, match=r"^Bash command failed\. The command returned a non-zero exit code 3\.$"
    ) as info:
        BashOperator(task_id="b", bash_command="exit 3").execute({})
    assert info.value.exit_code == 3


def test_bash_skip_exit_code_skips_the_task() -> None:
    with pytest.raises(SkipTask):
        BashOperator(task_id="b", bash_command="exit 99").execute({})


def test_bash_custom_skip_exit_code() -> None:
    with pytest.raises(SkipTask):
        BashOperator(task_id="b", bash_command="exit 7", skip_on_exit_code=7).execute({})
    with pytest.raises(BashCommandFailed):
        BashOperator(task_id="c", bash_command="exit 99", skip_on_exit_code=None).execute({})


def test_bash_env_is_appended_to_the_inherited_environment() -> None:
    op = BashOperator(task_id="b", bash_command='echo "$FOO:${PATH:+has-path}"', env={"FOO": "bar"})
    assert op.execute({}) == "bar:has-path"


def test_bash_env_replaces_environment_without_append_env() -> None:
    op = BashOperator(task_id="b", bash_command='echo "$FOO:${HOME:-no-home}"', env={"FOO": "bar"}, append_env=False)
    assert op.execute({}) == "bar:no-home"


def test_bash_runs_in_cwd(tmp_path: Path) -> None:
    assert BashOperator(task_id="b", bash_command="pwd", cwd=tmp_path).execute({}) == str(tmp_path.resolve())


def _raise_timeout(signum: int, frame: object) -> None:
    raise TaskTimeout("soft time limit")


def test_bash_child_is_killed_when_the_task_gets_an_exception(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    op = BashOperator(task_id="b", bash_command=f"echo $$ > {pid_file}; sleep 30")
    previous = signal.signal(signal.SIGALRM, _raise_timeout)
    signal.setitimer(signal.ITIMER_REAL, 0.5)
    try:
        started = time.monotonic()
        with pytest.raises(TaskTimeout):
            op.execute({})
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert time.monotonic() - started < 10
    pid = int(pid_file.read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
