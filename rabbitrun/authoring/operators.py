"""The two operators most DAGs need: PythonOperator and BashOperator.

BashOperator is the only place in authoring that does I/O (a child process);
it owns that child and kills it on any exception, including the TaskTimeout
that the soft time limit raises while we wait on the pipe.
"""

from __future__ import annotations

import inspect
import os
import signal
import subprocess
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from rabbitrun.authoring.baseoperator import BaseOperator, Context
from rabbitrun.authoring.signals import SkipTask
from rabbitrun.errors import DagDefinitionError

__all__ = ["BashCommandFailed", "BashOperator", "PythonOperator", "context_kwargs"]

#: How long a terminated bash gets to exit before it is killed.
_TERMINATE_GRACE_S = 5.0


class BashCommandFailed(RuntimeError):
    """A bash command exited non-zero: a task failure (retries apply), not a library error."""

    def __init__(self, exit_code: int) -> None:
        super().__init__(f"Bash command failed. The command returned a non-zero exit code {exit_code}.")
        self.exit_code = exit_code

    @classmethod
    def no_cwd(cls, cwd: str) -> BashCommandFailed:
        failed = cls(-1)
        failed.args = (f"Can not find the cwd: {cwd} (it must be an existing directory)",)
        return failed


def context_kwargs(
    func: Callable[..., Any],
    context: Context,
    n_positional: int = 0,
    explicit: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Keyword arguments for ``func``: the context entries it asks for, then ``explicit``.

    Airflow behaviour: every context entry when ``func`` takes ``**kwargs``,
    otherwise only those named by its parameters. Parameters already filled by
    the ``n_positional`` positional arguments are left out, and ``explicit``
    (op_kwargs) wins over the context.
    """
    params = list(inspect.signature(func).parameters.values())
    if any(p.kind is p.VAR_KEYWORD for p in params):
        kwargs = dict(context)
    else:
        positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        filled = {p.name for p in positional[:n_positional]}
        wanted = {
            p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name not in filled
        }
        kwargs = {k: v for k, v in context.items() if k in wanted}
    kwargs.update(explicit or {})
    return kwargs


class PythonOperator(BaseOperator):
    """Call ``python_callable(*op_args, **op_kwargs, **wanted context)``; its result is the XCom."""

    template_fields: tuple[str, ...] = ("templates_dict", "op_args", "op_kwargs")

    def __init__(
        self,
        task_id: str,
        python_callable: Callable[..., Any],
        op_args: Sequence[Any] = (),
        op_kwargs: Mapping[str, Any] | None = None,
        templates_dict: Mapping[str, Any] | None = None,
        templates_exts: Sequence[str] | None = None,
        show_return_value_in_logs: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(task_id, **kwargs)
        # rendered like the other fields, then handed to the callable as context["templates_dict"]
        self.templates_dict: dict[str, Any] | None = dict(templates_dict) if templates_dict is not None else None
        if templates_exts:  # values of templates_dict ending with these name template files
            self.template_ext = tuple(templates_exts)
        self.show_return_value_in_logs = show_return_value_in_logs
        if not callable(python_callable):
            raise DagDefinitionError(f"task {task_id!r}: python_callable must be callable, got {python_callable!r}")
        self.python_callable = python_callable
        self.op_args: list[Any] = list(op_args)
        self.op_kwargs: dict[str, Any] = dict(op_kwargs or {})

    def execute(self, context: Context) -> Any:
        return self.execute_callable(self.op_args, self.op_kwargs, context)

    def execute_callable(self, args: Sequence[Any], kwargs: Mapping[str, Any], context: Context) -> Any:
        """Call the callable with resolved arguments; subclasses resolve, this calls."""
        if getattr(self, "templates_dict", None) is not None:  # the runner's context has it as None otherwise
            context = {**context, "templates_dict": self.templates_dict}
        call_kwargs = context_kwargs(self.python_callable, context, len(args), kwargs)
        result = self.python_callable(*args, **call_kwargs)
        if getattr(self, "show_return_value_in_logs", True):
            self.log.info("Done. Returned value was: %s", result)
        return result


class BashOperator(BaseOperator):
    """Run ``bash -c bash_command``; the last output line is the XCom (as in Airflow).

    Exit code ``skip_on_exit_code`` (99 by default) means "skip this task".
    """

    template_fields: tuple[str, ...] = ("bash_command", "env", "cwd")
    template_ext = (".sh", ".bash")
    template_fields_renderers = {"bash_command": "bash", "env": "json"}

    def __init__(
        self,
        task_id: str,
        bash_command: str,
        env: Mapping[str, str] | None = None,
        append_env: bool = True,
        cwd: str | Path | None = None,
        skip_on_exit_code: int | None = 99,
        output_encoding: str = "utf-8",
        output_processor: Callable[[str], Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(task_id, **kwargs)
        self.bash_command = bash_command
        self.output_encoding = output_encoding
        #: turns the last output line into the XCom value (Airflow's output_processor), e.g. json.loads
        self.output_processor = output_processor
        self.env = dict(env) if env is not None else None
        self.append_env = append_env
        self.cwd = str(cwd) if cwd is not None else None
        self.skip_on_exit_code = skip_on_exit_code

    def execute(self, context: Context) -> Any:
        if self.cwd is not None and not os.path.isdir(self.cwd):
            raise BashCommandFailed.no_cwd(self.cwd)
        proc = subprocess.Popen(
            ["bash", "-c", self.bash_command],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=self._child_env(),
            cwd=self.cwd,
            start_new_session=True,  # its own process group, so we can kill bash's children too
        )
        try:
            last_line = self._relay_output(proc)
            exit_code = proc.wait()
        finally:
            _stop(proc)
        if exit_code == 0:
            processor = getattr(self, "output_processor", None)
            return processor(last_line) if processor is not None else last_line
        if self.skip_on_exit_code is not None and exit_code == self.skip_on_exit_code:
            raise SkipTask(f"Bash command returned exit code {exit_code}. Skipping.")
        raise BashCommandFailed(exit_code)

    def _child_env(self) -> dict[str, str] | None:
        """None inherits our environment; ``env`` replaces it unless ``append_env``."""
        if self.env is None:
            return None
        if self.append_env:
            return {**os.environ, **self.env}
        return dict(self.env)

    def _relay_output(self, proc: subprocess.Popen[bytes]) -> str:
        """Log each output line as it comes and return the last one."""
        assert proc.stdout is not None  # stdout=PIPE above
        last_line = ""
        for raw in iter(proc.stdout.readline, b""):
            last_line = raw.decode(getattr(self, "output_encoding", "utf-8"), errors="replace").rstrip("\r\n")
            self.log.info("%s", last_line)
        return last_line


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """Terminate, then kill, the child's process group if it is still running."""
    try:
        if proc.poll() is None:
            _signal_group(proc, signal.SIGTERM)
            try:
                proc.wait(timeout=_TERMINATE_GRACE_S)
            except subprocess.TimeoutExpired:
                _signal_group(proc, signal.SIGKILL)
                proc.wait()
    finally:
        if proc.stdout is not None:
            proc.stdout.close()


def _signal_group(proc: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass  # it exited between poll() and the signal
