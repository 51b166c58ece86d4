"""The wheel a release builds works without the source tree: it carries the package data (the
packaged topology, the migrations, ``py.typed``, the license), installs with its dependencies in a
fresh virtualenv, and its ``rabbitrun`` command exports the topology from there.

The build runs on a copy of the files a wheel is built from, so that it never writes ``build/``
or ``*.egg-info`` into the checkout. ``python -m build`` isolates the build, as a release does:
pyproject.toml's build requirements (setuptools >= 77 for ``license = "Apache-2.0"``) come from
the package index, like the runtime dependencies of the install.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
BUILD_INPUTS = ("pyproject.toml", "setup.cfg", "README.md", "LICENSE")


def _clean_env(home: Path) -> dict[str, str]:
    """This environment without anything that points at the checkout or configures rabbitrun."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP") and not k.startswith("RABBITRUN")
    }
    env["RABBITRUN_HOME"] = str(home)
    return env


def _run(args: list[str | Path], *, cwd: Path, env: dict[str, str], timeout_s: float) -> str:
    proc = subprocess.run(
        [str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout_s, check=False
    )
    assert proc.returncode == 0, f"{' '.join(map(str, args))} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def _source_copy(dest: Path) -> Path:
    for name in BUILD_INPUTS:
        shutil.copy2(ROOT / name, dest / name)
    shutil.copytree(ROOT / "rabbitrun", dest / "rabbitrun", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return dest


def _queues(definitions: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {q["name"]: q["arguments"] for q in definitions["queues"]}


def test_wheel_installs_in_a_fresh_venv_and_exports_the_packaged_topology(tmp_path: Path) -> None:
    src, dist, outside, home = (tmp_path / d for d in ("src", "dist", "outside", "home"))
    for d in (src, outside):
        d.mkdir()
    env = _clean_env(home)

    _run(
        [sys.executable, "-m", "build", "--wheel", "--outdir", dist, _source_copy(src)],
        cwd=outside,
        env=env,
        timeout_s=240,
    )
    (wheel,) = dist.glob("rabbitrun-*-py3-none-any.whl")
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        dist_info = next(n.split("/")[0] for n in names if n.endswith(".dist-info/METADATA"))
        metadata = zf.read(f"{dist_info}/METADATA").decode()
    for data_file in (
        "rabbitrun/broker/default.toml",
        "rabbitrun/py.typed",
        "rabbitrun/models/migrations/script.py.mako",
        "rabbitrun/models/migrations/env.py",
        f"{dist_info}/licenses/LICENSE",
    ):
        assert data_file in names
    assert any(n.startswith("rabbitrun/models/migrations/versions/0001_") for n in names)
    assert "License-Expression: Apache-2.0" in metadata

    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", venv], cwd=outside, env=env, timeout_s=120)
    _run([venv / "bin" / "python", "-m", "pip", "install", "--quiet", wheel], cwd=outside, env=env, timeout_s=600)

    # the installed package, not the checkout: nothing on sys.path leads back to ROOT
    where = _run(
        [venv / "bin" / "python", "-c", "import rabbitrun, sys; print(rabbitrun.__file__); print(sys.path)"],
        cwd=outside,
        env=env,
        timeout_s=60,
    ).splitlines()
    package_file = Path(where[0]).resolve()
    assert package_file.is_relative_to(venv.resolve()), package_file
    assert str(ROOT) not in where[1], where[1]

    # no topology setting: the default that ships inside the package, read through importlib.resources
    definitions = json.loads(
        _run([venv / "bin" / "rabbitrun", "topology", "export"], cwd=outside, env=env, timeout_s=60)
    )
    assert {e["name"]: e["type"] for e in definitions["exchanges"]} == {
        "rabbitrun.tasks": "direct",
        "rabbitrun.control": "topic",
        "rabbitrun.events": "topic",
        "rabbitrun.dlx": "fanout",
    }
    queues = _queues(definitions)
    assert queues["rabbitrun.q.default"]["x-queue-type"] == "classic"
    assert queues["rabbitrun.q.default"]["x-max-priority"] == 10
    assert "rabbitrun.q.high_priority" in queues and "rabbitrun.dead" in queues
    assert any(
        b["source"] == "rabbitrun.tasks" and b["destination"] == "rabbitrun.q.default" and b["routing_key"] == "default"
        for b in definitions["bindings"]
    )

    # --file: a topology file of the operator's, here the quorum one of the checkout's topology/
    quorum = shutil.copy(ROOT / "topology" / "quorum.toml", outside / "quorum.toml")
    quorum_defs = json.loads(
        _run([venv / "bin" / "rabbitrun", "topology", "export", "--file", quorum], cwd=outside, env=env, timeout_s=60)
    )
    assert _queues(quorum_defs)["rabbitrun.q.default"]["x-queue-type"] == "quorum"
