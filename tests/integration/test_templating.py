"""Jinja templating of operator fields with the task context, params overridden by dag_run.conf."""

from __future__ import annotations

import json

import pytest

from rabbitrun.authoring.templating import render, template_context
from rabbitrun.errors import DagDefinitionError
from rabbitrun.models.engine import make_engine, session_factory
from rabbitrun.models.tables import XComRow
from rabbitrun.scheduler.inprocess import run_dag_in_process
from tests.support.env import Env


def test_bash_command_and_env_are_rendered_with_the_context(env: Env) -> None:
    assert env.cli("variables", "set", "color", "teal").returncode == 0
    assert env.cli("connections", "add", "tdb", "--conn-uri", "postgresql://u:p@db.internal:5432/x").returncode == 0
    settings = env.settings()
    run_id, rows = run_dag_in_process(settings, "templated", conf={"who": "operator-7"})
    assert all(r.state == "success" for r in rows), rows
    with session_factory(make_engine(settings.database, pooled=False))() as session:
        said = json.loads(session.query(XComRow).filter_by(run_id=run_id, task_id="say").one().value)
    ds = said.split("|")[0]
    assert said == f"{ds}|operator-7|teal|db.internal|made-42|{run_id}"


def test_undefined_names_fail_clearly() -> None:
    with pytest.raises(DagDefinitionError, match="cannot render t.bash_command: UndefinedError"):
        render("{{ nope }}", template_context({}), "t.bash_command")
    assert render(["{{ a }}", {"k": "{{ a }}"}, 3], {"a": "x"}, "w") == ["x", {"k": "x"}, 3]


def test_shell_quote_keeps_a_conf_value_one_word_and_never_shell_syntax(tmp_path: object) -> None:
    """Issue 17, finding 7: ``{{ params.x | shell_quote }}`` in bash_command cannot inject commands."""
    import subprocess

    evil = "x; touch /tmp/rabbitrun-pwned-$$; echo `id` $(id)"
    command = render("printf '%s' {{ params.x | shell_quote }}", {"params": {"x": evil}}, "bash_command")
    out = subprocess.run(["bash", "-c", command], capture_output=True, text=True, check=True)
    assert out.stdout == evil  # printed as data, nothing run
