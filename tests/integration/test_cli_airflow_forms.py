"""Airflow's spellings of the commands rabbitrun has, against the real DB (SQLite and PostgreSQL):
pools set with a positional description, dags list -o, dags list-import-errors, dags trigger -c -r -e,
dags test with a logical date, dags state and tasks state by run id or logical date, tasks list
[--tree], tasks clear -s -e -y."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.env import Env

FORMS_DAG = """\
from rabbitrun import DAG, BashOperator

with DAG("forms", schedule=None) as dag:
    a = BashOperator(task_id="a", bash_command="true")
    b = BashOperator(task_id="b", bash_command="true")
    c = BashOperator(task_id="c", bash_command="true")
    a >> [b, c]
    date = BashOperator(task_id="date", bash_command="echo logical={{ ds }}")

with DAG("forms_fails", schedule=None) as failing:  # retries: `tasks test` must still run it once
    BashOperator(task_id="fails", bash_command="exit 3", retries=2)
"""


@pytest.fixture
def forms(env: Env, tmp_path: Path) -> Env:
    folder = tmp_path / "forms_dags"
    folder.mkdir()
    (folder / "forms.py").write_text(FORMS_DAG)
    (folder / "broken.py").write_text("x = 1\nraise ValueError('broken on purpose')\n")
    env.vars["RABBITRUN__CORE__DAGS_FOLDER"] = str(folder)
    env.vars["RABBITRUN__CORE__LOAD_EXAMPLES"] = "false"
    return env


def _ok(env: Env, *args: str) -> str:
    done = env.cli(*args)
    assert done.returncode == 0, (args, done.stdout, done.stderr)
    return done.stdout


def test_pools_set_takes_the_description_as_a_third_argument(forms: Env) -> None:
    _ok(forms, "pools", "set", "etl", "3", "nightly loads")
    assert "etl\t3\t0\t0\t0\tnightly loads" in _ok(forms, "pools", "list")
    clash = forms.cli("pools", "set", "etl", "3", "one", "--description", "two")
    assert clash.returncode == 2 and "two descriptions given" in clash.stderr


def test_dags_list_output_formats_and_list_import_errors(forms: Env) -> None:
    as_json = forms.cli("dags", "list", "-o", "json")
    assert "broken.py:2: ValueError: broken on purpose" in as_json.stderr  # errors still shown, apart
    assert json.loads(_ok(forms, "dags", "list", "-o", "json")) == [
        {"dag_id": "forms", "fileloc": "forms.py", "schedule": "None"},
        {"dag_id": "forms_fails", "fileloc": "forms.py", "schedule": "None"},
    ]
    assert _ok(forms, "dags", "list", "-o", "yaml").splitlines()[:4] == [
        '- dag_id: "forms"',
        '  fileloc: "forms.py"',
        '  schedule: "None"',
        '- dag_id: "forms_fails"',
    ]
    table = _ok(forms, "dags", "list", "-o", "table").splitlines()
    assert table[0].split(" | ")[0].strip() == "dag_id" and table[2].startswith("forms ")
    assert _ok(forms, "dags", "list-import-errors").strip() == "broken.py:2: ValueError: broken on purpose"
    [row] = json.loads(_ok(forms, "dags", "list-import-errors", "-o", "json"))
    assert row == {"filepath": "broken.py", "line": 2, "error": "ValueError: broken on purpose"}


def test_trigger_with_short_options_and_a_logical_date_then_state_by_either_name(forms: Env) -> None:
    out = _ok(forms, "dags", "trigger", "forms", "-c", '{"x": 1}', "-r", "my_run", "-e", "2024-01-02")
    assert "run_id=my_run" in out
    assert _ok(forms, "dags", "state", "forms", "my_run").strip() == "queued"
    assert _ok(forms, "dags", "state", "forms", "2024-01-02T00:00:00+00:00").strip() == "queued"
    assert _ok(forms, "tasks", "state", "forms", "a", "2024-01-02").strip() == "none"
    missing = forms.cli("dags", "state", "forms", "2030-01-01")
    assert missing.returncode == 2 and "not found" in missing.stderr
    unknown_task = forms.cli("tasks", "state", "forms", "nope", "my_run")
    assert unknown_task.returncode == 2 and "'nope' not found" in unknown_task.stderr


def test_dags_test_with_a_logical_date_then_tasks_clear_by_date_range(forms: Env) -> None:
    assert _ok(forms, "dags", "test", "forms", "2024-03-04").rstrip().endswith(": success")
    _ok(forms, "dags", "test", "forms", "2024-05-06")
    assert _ok(forms, "dags", "state", "forms", "2024-03-04").strip() == "success"
    assert _ok(forms, "tasks", "state", "forms", "b", "2024-05-06").strip() == "success"
    cleared = _ok(forms, "tasks", "clear", "forms", "-t", "^a$", "-s", "2024-03-01", "-e", "2024-03-31", "-y")
    assert cleared.strip().endswith("1 task instance(s)") and "cleared forms.a" in cleared
    assert _ok(forms, "tasks", "state", "forms", "a", "2024-05-06").strip() == "success"  # outside the range
    assert _ok(forms, "tasks", "state", "forms", "a", "2024-03-04").strip() != "success"


def test_tasks_list_flat_and_as_a_tree(forms: Env) -> None:
    assert _ok(forms, "tasks", "list", "forms").split() == ["a", "b", "c", "date"]
    assert _ok(forms, "tasks", "list", "forms", "--tree").splitlines() == ["a", "    b", "    c", "date"]


def _rows(env: Env) -> dict[str, int]:
    from sqlalchemy import text

    from rabbitrun.models.engine import make_engine

    engine = make_engine(env.settings().database, pooled=False)
    with engine.connect() as conn:
        counts = {t: conn.execute(text(f"SELECT count(*) FROM {t}")).scalar_one() for t in ("dag_run", "task_instance")}
    engine.dispose()
    return counts


def test_tasks_test_runs_one_task_with_its_logical_date_and_leaves_no_state(forms: Env) -> None:
    out = _ok(forms, "tasks", "test", "forms", "date", "2024-03-04")
    assert "logical=2024-03-04" in out and out.rstrip().endswith("forms.date: success")
    assert _rows(forms) == {"dag_run": 0, "task_instance": 0}
    failed = forms.cli("tasks", "test", "forms_fails", "fails")
    assert failed.returncode == 1 and "forms_fails.fails: failed" in failed.stdout  # one try: no retry
    assert _rows(forms) == {"dag_run": 0, "task_instance": 0}
    unknown = forms.cli("tasks", "test", "forms", "nope")
    assert unknown.returncode == 2 and "'nope' not found" in unknown.stderr
