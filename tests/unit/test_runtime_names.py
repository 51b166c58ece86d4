"""Pure parts of what a task sees: macros, the configuration view, the date names, week days,
template files and native rendering, deferrable sensors falling back to reschedule."""

from __future__ import annotations

import warnings
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pendulum
import pytest

from rabbitrun import DAG, PythonSensor, macros
from rabbitrun.authoring import templating
from rabbitrun.authoring.standard_sensors import week_day_numbers
from rabbitrun.errors import ConfigError, DagDefinitionError
from rabbitrun.runner.configview import TaskConfig
from rabbitrun.runner.dates import as_pendulum, date_names
from rabbitrun.settings import load_settings


def test_macros_ds_add_and_ds_format() -> None:
    assert macros.ds_add("2015-01-06", -5) == "2015-01-01"
    assert macros.ds_add("2015-01-06", 0) == "2015-01-06"
    assert macros.ds_format("2015-01-05", "%Y-%m-%d", "%m-%d-%y") == "01-05-15"
    assert macros.datetime is datetime and macros.timedelta is timedelta
    assert macros.dateutil.relativedelta.relativedelta(months=1)


def test_config_view_reads_settings_as_strings_and_never_secrets(tmp_path: Path) -> None:
    settings = load_settings(env={"RABBITRUN_HOME": str(tmp_path), "RABBITRUN__CORE__FERNET_KEY": "k" * 44})
    conf = TaskConfig(settings)
    assert conf.get("core", "default_queue") == "default"
    assert conf.getboolean("core", "load_examples") is True
    assert conf.getint("worker", "concurrency") >= 1
    assert not conf.has_option("core", "fernet_key") and not conf.has_option("database", "url")
    with pytest.raises(ConfigError, match="not found"):
        conf.get("core", "fernet_key")
    assert conf.get("core", "fernet_key", fallback="none") == "none"
    assert "k" * 44 not in repr(conf.as_dict())


def test_date_names_for_manual_and_scheduled_runs() -> None:
    start = as_pendulum(datetime(2026, 1, 1, tzinfo=UTC))
    end = start + timedelta(days=1)
    scheduled = date_names(start, start, end, manual=False)
    assert isinstance(scheduled["logical_date"], pendulum.DateTime)
    assert (scheduled["prev_ds"], scheduled["next_ds"]) == ("2025-12-31", "2026-01-02")
    assert (scheduled["ts_nodash"], scheduled["ts_nodash_with_tz"]) == ("20260101T000000", "20260101T000000+0000")
    assert (scheduled["yesterday_ds_nodash"], scheduled["tomorrow_ds"]) == ("20251231", "2026-01-02")
    manual = date_names(start, start, end, manual=True)
    assert manual["prev_ds"] == manual["next_ds"] == manual["ds"] == "2026-01-01"


def test_week_days_by_name_number_and_bad_value() -> None:
    assert week_day_numbers("monday") == {1}
    assert week_day_numbers({"Saturday", 7}) == {6, 7}
    with pytest.raises(DagDefinitionError, match="unknown week day"):
        week_day_numbers("someday")


def test_template_file_is_read_from_the_dag_folder_and_native_rendering(tmp_path: Path) -> None:
    (tmp_path / "q.sql").write_text("select '{{ ds }}'")
    dag = SimpleNamespace(user_defined_filters={"twice": lambda v: v * 2}, user_defined_macros={"n": 3})
    env = templating.environment(dag, tmp_path)
    values = templating.template_context({"ds": "2026-01-01"}, dag)
    assert templating.render("q.sql", values, "t.sql", env, (".sql",)) == "select '2026-01-01'"
    assert templating.render("{{ n | twice }}", values, "t.x", env) == "6"
    with pytest.raises(DagDefinitionError, match="template file 'nope.sql' not found"):
        templating.render("nope.sql", values, "t.sql", env, (".sql",))
    native = templating.environment(SimpleNamespace(render_template_as_native_obj=True))
    assert templating.render("{{ [1, n] }}", values, "t.x", native) == [1, 3]


def test_deferrable_sensor_falls_back_to_reschedule_with_a_warning() -> None:
    with DAG("deferring"), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sensor = PythonSensor(task_id="s", python_callable=lambda: True, deferrable=True)
    assert sensor.mode == "reschedule"
    assert any("deferrable=True" in str(w.message) for w in caught)


def test_callable_source_drops_decorators_and_refuses_lambdas() -> None:
    from rabbitrun import PythonVirtualenvOperator, is_venv_installed, task
    from rabbitrun.authoring.process_python import callable_source

    @task.virtualenv(
        requirements=["six"],
    )
    def decorated(x):
        return x + 1

    assert callable_source(decorated.function).startswith("def decorated(x):")
    with DAG("venv_defs"), pytest.raises(DagDefinitionError, match="lambda"):
        PythonVirtualenvOperator(task_id="lam", python_callable=lambda: 1)
    with DAG("venv_defs2"), pytest.raises(DagDefinitionError, match="serializer"):
        PythonVirtualenvOperator(task_id="bad", python_callable=test_macros_ds_add_and_ds_format, serializer="x")
    assert is_venv_installed() is True


def test_python_operator_passes_templates_dict_in_the_context() -> None:
    from rabbitrun import PythonOperator

    with DAG("tdict"):
        op = PythonOperator(
            task_id="t", python_callable=lambda templates_dict: templates_dict["q"], templates_dict={"q": "x"}
        )
        plain = PythonOperator(task_id="p", python_callable=lambda **ctx: ctx.get("templates_dict"))
    assert op.execute({"templates_dict": None}) == "x"
    assert plain.execute({"templates_dict": None}) is None


def test_pre_and_post_execute_run_whether_given_as_arguments_or_overridden_as_methods() -> None:
    from rabbitrun import DAG, PythonOperator
    from rabbitrun.runner.execution import execute

    calls: list[str] = []

    class Overridden(PythonOperator):
        def pre_execute(self, context: Any) -> None:
            calls.append("method pre")

        def post_execute(self, context: Any, result: Any = None) -> None:
            calls.append(f"method post {result}")

    with DAG("hooks"):
        given = PythonOperator(
            task_id="given",
            python_callable=lambda: "r1",
            pre_execute=lambda context: calls.append("arg pre"),
            post_execute=lambda context, result: calls.append(f"arg post {result}"),
        )
        overridden = Overridden(task_id="overridden", python_callable=lambda: "r2")
    assert execute(given, {}) == "r1" and execute(overridden, {}) == "r2"
    assert calls == ["arg pre", "arg post r1", "method pre", "method post r2"]
