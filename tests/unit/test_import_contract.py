"""The import contract of pyproject.toml ([tool.importlinter]) holds for the package, and it
really fails on an upward import: a copy of the package with one added import of a higher layer
is refused, naming the import. scripts/test runs the same contract before pytest."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _lint_imports(tree: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"PYTHONPATH": str(tree)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", str(tree / "pyproject.toml")],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def _copy_of_the_package(tmp_path: Path) -> Path:
    tree = tmp_path / "tree"
    shutil.copytree(ROOT / "rabbitrun", tree / "rabbitrun", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tree / "pyproject.toml")
    return tree


def test_the_package_keeps_its_import_contract(tmp_path: Path) -> None:
    out = _lint_imports(_copy_of_the_package(tmp_path))
    assert out.returncode == 0, out.stdout + out.stderr
    assert "BROKEN" not in out.stdout


def test_an_import_of_a_higher_layer_breaks_the_contract(tmp_path: Path) -> None:
    tree = _copy_of_the_package(tmp_path)
    keys = tree / "rabbitrun" / "keys.py"  # the foundation reaching up into the scheduler
    keys.write_text(
        keys.read_text() + "\n\ndef _upward() -> object:\n    from rabbitrun.scheduler import loop\n\n    return loop\n"
    )
    out = _lint_imports(tree)
    assert out.returncode != 0
    assert "rabbitrun.keys -> rabbitrun.scheduler.loop" in out.stdout, out.stdout


def test_an_import_circle_inside_a_package_breaks_the_contract(tmp_path: Path) -> None:
    tree = _copy_of_the_package(tmp_path)
    names = tree / "rabbitrun" / "broker" / "backoff.py"  # backoff <-> connection
    names.write_text(
        names.read_text() + "\n\ndef _circle() -> object:\n    from rabbitrun.broker import connection\n\n"
        "    return connection\n"
    )
    out = _lint_imports(tree)
    assert out.returncode != 0
    assert "No cycles are allowed in rabbitrun.broker" in out.stdout, out.stdout
