"""Context names, template files, macros, get_current_context and the XCom rules around execute."""

from rabbitrun import DAG, BashOperator, PythonOperator, get_current_context, task


def _names(**context):
    run = context["dag_run"]
    keys = [
        "execution_date",
        "ts_nodash",
        "ts_nodash_with_tz",
        "prev_ds",
        "next_ds",
        "prev_ds_nodash",
        "next_ds_nodash",
        "yesterday_ds",
        "tomorrow_ds",
        "yesterday_ds_nodash",
        "tomorrow_ds_nodash",
        "task_instance_key_str",
        "test_mode",
        "expanded_ti_count",
        "prev_start_date_success",
    ]
    out = {k: context[k] if isinstance(context[k], (str, bool, int, type(None))) else str(context[k]) for k in keys}
    out["conf_who"] = run.conf.get("who")
    out["dags_folder"] = context["conf"].get("core", "dags_folder")
    out["same_context"] = get_current_context() is not None and get_current_context()["ti"] is context["ti"]
    out["macro"] = context["macros"].ds_add(context["ds"], -1)
    out["logical_type"] = type(context["logical_date"]).__module__.split(".")[0]
    return out


class Hooked(BashOperator):
    def pre_execute(self, context):
        context["ti"].xcom_push(key="pre", value="before")

    def post_execute(self, context, result=None):
        context["ti"].xcom_push(key="post", value=f"after:{result}")


with DAG("runtime_context") as dag:
    # set as attributes: the DAG/operator constructor arguments arrive with the graph work (wt-graph)
    dag.user_defined_macros = {"team": "blue"}
    dag.user_defined_filters = {"shout": str.upper}
    PythonOperator(task_id="names", python_callable=_names)
    BashOperator(task_id="from_file", bash_command="runtime_templates/greet.sh", params={"who": "ann"})
    BashOperator(task_id="macros", bash_command="echo {{ team | shout }}-{{ dag_run.conf.get('who', 'nobody') }}")
    BashOperator(task_id="no_push", bash_command="echo hidden").do_xcom_push = False
    PythonOperator(task_id="split", python_callable=lambda: {"a": 1, "b": "two"}).multiple_outputs = True
    Hooked(task_id="hooked", bash_command="echo body")

    @task
    def current():
        ctx = get_current_context()
        return ctx["task_instance_key_str"]

    current()


with DAG("runtime_native") as native_dag:
    native_dag.render_template_as_native_obj = True

    def _kind(value):
        return type(value).__name__

    PythonOperator(task_id="native", python_callable=_kind, op_args=["{{ [1, 2, 3] }}"])


with DAG("runtime_sensors") as sensors_dag:
    from datetime import timedelta

    from rabbitrun import (
        BashSensor,
        DateTimeSensor,
        DayOfWeekSensor,
        PokeReturnValue,
        PythonSensor,
        TimeDeltaSensor,
    )

    PythonSensor(
        task_id="py_ready",
        python_callable=lambda params: params.get("ready") == "yes",
        poke_interval=0.1,
        timeout=0.3,
        soft_fail=True,
    )
    BashSensor(task_id="bash_ready", bash_command="test -n '{{ params.ready }}'", poke_interval=0.1, timeout=5)
    BashSensor(task_id="bash_fails", bash_command="exit 3", retry_exit_code=1, poke_interval=0.1, timeout=5)
    TimeDeltaSensor(task_id="delta_past", delta=timedelta(seconds=-1), poke_interval=0.1)
    DateTimeSensor(
        task_id="far_future", target_time="{{ macros.ds_add(ds, 3650) }}T00:00:00", mode="reschedule", poke_interval=30
    )
    DayOfWeekSensor(
        task_id="any_day",
        week_day={"Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"},
        use_task_logical_date=True,
    )

    @task.sensor(poke_interval=0.1, timeout=5)
    def decorated_sensor(word):
        return PokeReturnValue(is_done=True, xcom_value=f"sensed-{word}")

    @task.bash
    def say(word, ds=None):
        return f"echo {word}-{{{{ ds }}}}-{ds}"

    say(decorated_sensor("hi"))


with DAG("runtime_bash") as bash_dag:
    import json as _json

    BashOperator(
        task_id="processed",
        bash_command='echo "{\\"n\\": $N, \\"where\\": \\"$(pwd)\\"}"',
        env={"N": "7"},
        append_env=False,
        cwd="/tmp",
        output_processor=_json.loads,
    )
    BashOperator(task_id="bad_cwd", bash_command="true", cwd="/nonexistent/dir")


with DAG("runtime_venv") as venv_dag:
    from rabbitrun import ExternalPythonOperator

    @task
    def seed():
        return 20

    @task.virtualenv(system_site_packages=True, serializer="json", venv_cache_path="{{ params.out_dir }}/venvs")
    def in_venv(n):
        import sys

        return {"prefix": sys.prefix, "base": sys.base_prefix, "doubled": n * 2}

    in_venv(seed())

    def _where(word):
        import sys

        return f"{word}@{sys.executable}"

    ExternalPythonOperator(task_id="external", python="/usr/bin/python3", python_callable=_where, op_args=["hi"])
