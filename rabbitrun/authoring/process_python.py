"""PythonVirtualenvOperator and ExternalPythonOperator: a callable run by another Python interpreter.

The callable's source is written to a script (so it must be self-contained: imports inside the
function, as in Airflow), its ``op_args``/``op_kwargs`` go in a file in the ``serializer``'s format
("pickle" as in Airflow, or "json"), and its return value comes back the same way. The child
interpreter gets exactly the task process's environment, nothing more: the task process holds no
secrets (DESIGN "Task process boundary"), so neither does the child.

Virtualenvs are cached by a hash of (python, requirements, system_site_packages, pip options)
under ``venv_cache_path`` (default ``~/.cache/rabbitrun/venvs``), built in a temporary folder and
renamed into place, so concurrent tasks never see a half-built environment. ``uv`` builds them
when it is on PATH, else ``python -m venv`` and pip (pip uses the machine's configured index).
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import pickle
import shutil
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from rabbitrun.authoring.baseoperator import Context
from rabbitrun.authoring.operators import PythonOperator
from rabbitrun.errors import DagDefinitionError

__all__ = ["ExternalPythonOperator", "PythonVirtualenvOperator", "is_venv_installed"]

SERIALIZERS = ("pickle", "json")

_RUNNER = """
import json, pickle, sys
serializer, args_path, out_path = sys.argv[1], sys.argv[2], sys.argv[3]
mode = "b" if serializer == "pickle" else ""
with open(args_path, "r" + mode) as fh:
    data = pickle.load(fh) if serializer == "pickle" else json.load(fh)
{source}
result = {name}(*data["args"], **data["kwargs"])
with open(out_path, "w" + mode) as fh:
    pickle.dump(result, fh) if serializer == "pickle" else json.dump(result, fh)
"""


def is_venv_installed() -> bool:
    """Whether virtualenvs can be made here: ``uv`` on PATH or the standard ``venv`` module."""
    import importlib.util

    return shutil.which("uv") is not None or importlib.util.find_spec("venv") is not None


def callable_source(function: Callable[..., Any]) -> str:
    """The function's source without its decorators: what the child interpreter defines."""
    try:
        source = textwrap.dedent(inspect.getsource(function))
    except (OSError, TypeError) as exc:
        raise DagDefinitionError(f"cannot read the source of {function!r}: {exc}") from exc
    lines = source.splitlines()
    while lines and not lines[0].lstrip().startswith(("def ", "async def ")):
        lines.pop(0)  # decorators (possibly spanning lines) before the def
    if not lines:
        raise DagDefinitionError(f"{function!r} is not a plain def (a lambda cannot run in another interpreter)")
    return "\n".join(lines)


class _ProcessPythonOperator(PythonOperator):
    """Shared by both: run the callable in ``python`` and bring its result back."""

    def __init__(self, task_id: str, python_callable: Callable[..., Any], serializer: str = "pickle", **kwargs: Any):
        super().__init__(task_id, python_callable, **kwargs)
        if serializer not in SERIALIZERS:
            raise DagDefinitionError(f"task {task_id!r}: serializer must be one of {SERIALIZERS}, got {serializer!r}")
        self.serializer = serializer
        callable_source(python_callable)  # a lambda or a builtin is a DAG definition error, early

    def python_path(self) -> str:
        raise NotImplementedError

    def execute_callable(self, args: Sequence[Any], kwargs: Mapping[str, Any], context: Context) -> Any:
        python = self.python_path()
        with tempfile.TemporaryDirectory(prefix="rabbitrun-py-") as tmp:
            folder = Path(tmp)
            script, args_path, out_path = folder / "script.py", folder / "args", folder / "result"
            name = self.python_callable.__name__
            script.write_text(_RUNNER.format(source=callable_source(self.python_callable), name=name))
            data = {"args": list(args), "kwargs": dict(kwargs)}
            if self.serializer == "pickle":
                args_path.write_bytes(pickle.dumps(data))
            else:
                args_path.write_text(json.dumps(data))
            self.log.info("Running %s with %s", name, python)
            done = subprocess.run(
                [python, str(script), self.serializer, str(args_path), str(out_path)],
                stdin=subprocess.DEVNULL,
                capture_output=True,
                env=dict(os.environ),  # the task's own environment, nothing added
                check=False,
            )
            for line in (done.stdout + done.stderr).decode("utf-8", errors="replace").splitlines():
                self.log.info("%s", line)
            if done.returncode != 0:
                raise RuntimeError(f"{name} failed in {python} with exit code {done.returncode}")
            if self.serializer == "pickle":
                return pickle.loads(out_path.read_bytes())  # noqa: S301 - our own child's file, as in Airflow
            return json.loads(out_path.read_text())


class ExternalPythonOperator(_ProcessPythonOperator):
    """Run the callable with an existing interpreter: ``python="/opt/venvs/x/bin/python"``."""

    template_fields = ("templates_dict", "op_args", "op_kwargs", "python")

    def __init__(self, task_id: str, python: str, python_callable: Callable[..., Any], **kwargs: Any) -> None:
        super().__init__(task_id, python_callable, **kwargs)
        if not python:
            raise DagDefinitionError(f"task {task_id!r}: python must be the path of an interpreter")
        self.python = python

    def python_path(self) -> str:
        if not os.access(self.python, os.X_OK):
            raise RuntimeError(f"python {self.python!r} is not an executable interpreter")
        return self.python


class PythonVirtualenvOperator(_ProcessPythonOperator):
    """Run the callable in a virtualenv with ``requirements`` (a list, or one string per line)."""

    template_fields = ("templates_dict", "op_args", "op_kwargs", "requirements", "venv_cache_path")

    def __init__(
        self,
        task_id: str,
        python_callable: Callable[..., Any],
        requirements: Sequence[str] | str | None = None,
        python_version: str | None = None,
        system_site_packages: bool = True,
        pip_install_options: Sequence[str] | None = None,
        index_urls: Sequence[str] | None = None,
        venv_cache_path: str | os.PathLike[str] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(task_id, python_callable, **kwargs)
        if isinstance(requirements, str):
            requirements = [r for r in requirements.splitlines() if r.strip() and not r.strip().startswith("#")]
        self.requirements = list(requirements or [])
        self.python_version = python_version
        self.system_site_packages = system_site_packages
        self.pip_install_options = list(pip_install_options or [])
        self.index_urls = list(index_urls or [])
        self.venv_cache_path = venv_cache_path

    def python_path(self) -> str:
        base = self._base_python()
        spec = json.dumps(
            [base, sorted(self.requirements), self.system_site_packages, self.pip_install_options, self.index_urls]
        )
        cache = Path(self.venv_cache_path or Path.home() / ".cache" / "rabbitrun" / "venvs")
        venv = cache / f"venv-{hashlib.sha256(spec.encode()).hexdigest()[:16]}"
        python = venv / "bin" / "python"
        if python.exists():
            self.log.info("Reusing the cached virtualenv %s", venv)
            return str(python)
        cache.mkdir(parents=True, exist_ok=True)
        building = Path(tempfile.mkdtemp(prefix=venv.name + ".", dir=cache))
        try:
            self._build(base, building)
            try:
                building.rename(venv)  # atomic: another task that built it first wins, ours is dropped
            except OSError:
                if not python.exists():
                    raise
        finally:
            shutil.rmtree(building, ignore_errors=True)
        return str(python)

    def _base_python(self) -> str:
        if not self.python_version:
            return sys.executable
        wanted = f"python{self.python_version}"
        found = shutil.which(wanted)
        if found is None:
            raise RuntimeError(f"python_version={self.python_version!r}: {wanted} is not installed on this worker")
        return found

    def _build(self, base: str, folder: Path) -> None:
        uv = shutil.which("uv")
        site = ["--system-site-packages"] if self.system_site_packages else []
        if uv is not None:
            _run([uv, "venv", "--quiet", "--python", base, *site, str(folder)])
        else:
            _run([base, "-m", "venv", *site, *([] if self.requirements else ["--without-pip"]), str(folder)])
        if not self.requirements:
            return
        index = [a for url in self.index_urls for a in ("--extra-index-url", url)]
        python = str(folder / "bin" / "python")
        if uv is not None:
            _run([uv, "pip", "install", "--python", python, *index, *self.pip_install_options, *self.requirements])
        else:
            pip = [python, "-m", "pip", "install", "--quiet", *index, *self.pip_install_options, *self.requirements]
            _run(pip)


def _run(command: list[str]) -> None:
    done = subprocess.run(command, stdin=subprocess.DEVNULL, capture_output=True, check=False)
    if done.returncode != 0:
        output = (done.stdout + done.stderr).decode("utf-8", errors="replace").strip()[-2000:]
        raise RuntimeError(f"creating the virtualenv failed ({' '.join(command[:3])} ...): {output}")
