"""Unchanged `from airflow ...` DAG files with `[core] airflow_compat` on, against the real DB and broker:
`dags test`, a scheduler and worker run (zygote and task process load the file the same way), the
setting off, a real `airflow` package refused; and scripts/airflow-examples on one example file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.env import Env
from tests.support.services import REPO

AIRFLOW_DAG = """\
from datetime import datetime

from airflow.decorators import dag, task
from airflow.operators.bash import BashOperator
from airflow.utils.trigger_rule import TriggerRule


with __import__("airflow").DAG("af_classic", schedule=None, start_date=datetime(2024, 1, 1)) as classic:
    hello = BashOperator(task_id="hello", bash_command="echo hello-from-bash")

    @task(trigger_rule=TriggerRule.ALL_SUCCESS)
    def after(out_dir: str) -> int:
        from airflow.operators.python import PythonOperator  # a task body importing at run time

        assert PythonOperator.__module__.startswith("rabbitrun.")
        with open(out_dir + "/af_classic.txt", "w") as f:
            f.write("ran")
        return 1

    hello >> after(OUT)
"""


def _dags(env: Env, tmp_path: Path, *, compat: bool) -> Path:
    folder = tmp_path / "af_dags"
    folder.mkdir(exist_ok=True)
    (folder / "af.py").write_text(AIRFLOW_DAG.replace("OUT", repr(str(tmp_path / "out"))))
    env.vars["RABBITRUN__CORE__DAGS_FOLDER"] = str(folder)
    env.vars["RABBITRUN__CORE__LOAD_EXAMPLES"] = "false"
    env.vars["RABBITRUN__CORE__AIRFLOW_COMPAT"] = "true" if compat else "false"
    return folder


def test_unchanged_airflow_file_runs_with_dags_test_when_the_setting_is_on(env: Env, tmp_path: Path) -> None:
    _dags(env, tmp_path, compat=True)
    done = env.cli("dags", "test", "af_classic")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "af_classic test__" in done.stdout and done.stdout.rstrip().endswith(": success")
    assert (tmp_path / "out" / "af_classic.txt").read_text() == "ran"


def test_unchanged_airflow_file_runs_through_scheduler_and_worker(env: Env, tmp_path: Path) -> None:
    _dags(env, tmp_path, compat=True)
    assert env.cli("topology", "declare").returncode == 0
    env.scheduler()
    env.worker()
    done = env.cli("dags", "trigger", "af_classic", "--wait", "--timeout", "90")
    assert done.returncode == 0, done.stdout + done.stderr + env.logs()
    assert (tmp_path / "out" / "af_classic.txt").read_text() == "ran"


def test_unchanged_airflow_file_is_an_import_error_with_the_setting_off(env: Env, tmp_path: Path) -> None:
    _dags(env, tmp_path, compat=False)
    listing = env.cli("dags", "list")
    assert "af_classic" not in listing.stdout
    assert "af.py:3: ModuleNotFoundError: No module named 'airflow'" in listing.stderr
    assert env.cli("dags", "test", "af_classic").returncode != 0


def test_a_real_airflow_package_on_the_path_is_refused_with_the_setting_on(env: Env, tmp_path: Path) -> None:
    _dags(env, tmp_path, compat=True)
    fake = tmp_path / "site" / "airflow"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise RuntimeError('the fake airflow must never be imported')\n")
    env.vars["PYTHONPATH"] = str(tmp_path / "site")
    done = env.cli("dags", "test", "af_classic")
    assert done.returncode != 0
    assert "a real 'airflow' package is installed" in done.stderr and "never be imported" not in done.stderr


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_airflow_examples_script_measures_one_example_file(tmp_path: Path, env: Env) -> None:
    """Uses the cached 2.10.5 wheel if there (or /tmp/afwheels), else pip downloads it."""
    cache = Path(os.environ.get("RABBITRUN_AIRFLOW_CACHE", Path.home() / ".cache/rabbitrun-airflow-examples"))
    if not any(cache.glob("apache_airflow-2.10.5-*.whl")) and any(
        Path("/tmp/afwheels").glob("apache_airflow-2.10.5-*.whl")
    ):
        cache = Path("/tmp/afwheels")
    args = ["--only", "example_xcomargs", "--json", "--cache", str(cache)]
    cmd = [sys.executable, str(REPO / "scripts" / "airflow_examples.py"), *args]
    for shim in (False, True):
        done = subprocess.run(cmd + (["--shim"] if shim else []), capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr
        report = json.loads(done.stdout)
        assert report["shim"] is shim and report["files"] == 1
        [result] = report["results"]
        assert result["file"] == "core/example_xcomargs.py" and result["imports"] is True, result
        assert result["dags"] == {"example_xcom_args": "success", "example_xcom_args_with_operators": "success"}
        assert report["files_importing"] == 1 and report["dags_succeeding"] == 2
