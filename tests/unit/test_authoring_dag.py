"""DAG and BaseOperator: attachment, default_args, dependencies, graph checks, retry delays."""

from __future__ import annotations

import logging
from datetime import UTC, timedelta
from typing import Any

import pytest

from rabbitrun.authoring import DAG, BaseOperator, PythonOperator, TriggerRule, get_current_dag
from rabbitrun.errors import DagDefinitionError, TaskNotFound


class Noop(BaseOperator):
    def execute(self, context: Any) -> None:
        return None


class WithOwnArg(BaseOperator):
    def __init__(self, task_id: str, *, color: str = "red", **kwargs: Any) -> None:
        super().__init__(task_id, **kwargs)
        self.color = color


def test_operators_created_inside_with_attach_in_definition_order() -> None:
    with DAG("d") as dag:
        b = Noop("b")
        a = Noop("a")
    assert dag.tasks == [b, a]
    assert dag.task_ids == ["b", "a"]
    assert dag.task_dict == {"b": b, "a": a}
    assert a.dag is dag


def test_current_dag_is_restored_after_nested_with() -> None:
    with DAG("outer") as outer:
        with DAG("inner") as inner:
            assert get_current_dag() is inner
        assert get_current_dag() is outer
    assert get_current_dag() is None


def test_explicit_dag_argument_wins_over_the_current_dag() -> None:
    other = DAG("other")
    with DAG("d") as dag:
        t = Noop("t", dag=other)
    assert t.dag is other and not dag.tasks


def test_get_task_unknown_raises_task_not_found() -> None:
    with DAG("d") as dag:
        Noop("a")
    with pytest.raises(TaskNotFound):
        dag.get_task("zzz")


def test_duplicate_task_id_is_a_definition_error() -> None:
    with DAG("d"):
        Noop("a")
        with pytest.raises(DagDefinitionError, match="already has a task"):
            Noop("a")


@pytest.mark.parametrize("bad", ["", "has space", "slash/no", "é", "semi;colon"])
def test_bad_ids_are_refused_with_a_clear_error(bad: str) -> None:
    with pytest.raises(DagDefinitionError, match="invalid dag_id"):
        DAG(bad)
    with DAG("d"), pytest.raises(DagDefinitionError, match="invalid task_id"):
        Noop(bad)


def test_default_args_fill_only_kwargs_not_given() -> None:
    defaults = {"retries": 3, "queue": "high_priority", "retry_delay": timedelta(seconds=7)}
    with DAG("d", default_args=defaults):
        a = Noop("a")
        b = Noop("b", retries=0)
    assert (a.retries, a.queue, a.retry_delay) == (3, "high_priority", timedelta(seconds=7))
    assert (b.retries, b.queue) == (0, "high_priority")


def test_default_args_reach_subclass_kwargs_and_ignore_unknown_keys() -> None:
    with DAG("d", default_args={"color": "blue", "not_an_argument": 1}):
        t = WithOwnArg("t")
        u = WithOwnArg("u", color="green")
    assert (t.color, u.color) == ("blue", "green")


def test_default_args_reach_python_operator() -> None:
    with DAG("d", default_args={"retries": 2, "op_kwargs": {"x": 1}}):
        t = PythonOperator(task_id="t", python_callable=lambda x: x)
    assert t.retries == 2 and t.op_kwargs == {"x": 1}


def test_queue_none_means_configured_default_and_stays_none() -> None:
    with DAG("d"):
        t = Noop("t")
    assert t.queue is None


def test_task_params_override_dag_params() -> None:
    with DAG("d", params={"a": 1, "b": 2}):
        t = Noop("t", params={"b": 3})
    assert t.params == {"a": 1, "b": 3}


def test_unknown_trigger_rule_is_refused_and_known_one_is_an_enum() -> None:
    with DAG("d"):
        assert Noop("a", trigger_rule="all_done").trigger_rule is TriggerRule.ALL_DONE
        with pytest.raises(DagDefinitionError, match="trigger_rule"):
            Noop("b", trigger_rule="most_success")


def test_base_execute_is_not_implemented() -> None:
    with pytest.raises(NotImplementedError, match="must implement execute"):
        BaseOperator("t").execute({})


def test_a_sensor_without_poke_names_the_method_to_write() -> None:
    """As in Airflow, poke() is the one method a sensor subclass must write."""
    from rabbitrun.authoring.sensors import BaseSensorOperator

    class Half(BaseSensorOperator):
        pass

    with DAG("d"), pytest.raises(NotImplementedError, match="Half must implement poke"):
        Half(task_id="s").poke({})


def test_log_is_the_task_logger() -> None:
    assert Noop("t").log is logging.getLogger("rabbitrun.task")


def test_rshift_chain_returns_right_operand_and_links_both_ways() -> None:
    with DAG("d"):
        a, b, c = Noop("a"), Noop("b"), Noop("c")
    assert (a >> b >> c) is c
    assert a.downstream_task_ids == {"b"} and b.upstream_task_ids == {"a"}
    assert c.upstream_task_ids == {"b"}


def test_lshift_links_the_other_way() -> None:
    with DAG("d"):
        a, b = Noop("a"), Noop("b")
    assert (a << b) is b
    assert a.upstream_task_ids == {"b"}


def test_lists_work_on_either_side_of_shift_operators() -> None:
    with DAG("d") as dag:
        a, b, c, d, e = (Noop(x) for x in "abcde")
    result = a >> [b, c]
    assert result == [b, c]
    assert ([b, c] >> d) is d
    assert ([d] << e) is e
    assert d.upstream_task_ids == {"b", "c", "e"}
    assert e.downstream_task_ids == {"d"}
    assert [t.task_id for t in dag.roots] == ["a", "e"]
    assert [t.task_id for t in dag.leaves] == ["d"]


def test_set_upstream_and_downstream_accept_lists() -> None:
    with DAG("d"):
        a, b, c = Noop("a"), Noop("b"), Noop("c")
    c.set_upstream([a, b])
    a.set_downstream(b)
    assert c.upstream_task_ids == {"a", "b"} and b.upstream_task_ids == {"a"}


def test_dependency_across_dags_is_refused() -> None:
    a = Noop("a", dag=DAG("one"))
    b = Noop("b", dag=DAG("two"))
    with pytest.raises(DagDefinitionError, match="different DAGs"):
        a >> b


def test_dagless_task_joins_its_partners_dag() -> None:
    with DAG("d") as dag:
        a = Noop("a")
    loose = Noop("loose")
    a >> loose
    assert loose.dag is dag and dag.has_task("loose")


def test_self_dependency_is_refused() -> None:
    with DAG("d"):
        a = Noop("a")
    with pytest.raises(DagDefinitionError, match="itself"):
        a >> a


def test_topological_sort_puts_upstream_first_and_prefers_earlier_defined_ready_tasks() -> None:
    with DAG("d") as dag:
        c, b, a, _z = Noop("c"), Noop("b"), Noop("a"), Noop("z")
    a >> c
    b >> c
    assert [t.task_id for t in dag.topological_sort()] == ["b", "a", "c", "z"]


def test_cycle_is_reported_with_its_path() -> None:
    with DAG("d") as dag:
        start, a, b, c, below = Noop("start"), Noop("a"), Noop("b"), Noop("c"), Noop("below")
    start >> a >> b >> c >> a
    c >> below
    with pytest.raises(DagDefinitionError, match=r"cycle: a -> b -> c -> a"):
        dag.topological_sort()
    with pytest.raises(DagDefinitionError, match="cycle"):
        dag.validate()


def test_validate_accepts_a_well_formed_dag() -> None:
    with DAG("d") as dag:
        Noop("a") >> Noop("b")
    dag.validate()


def test_end_date_before_start_date_is_refused() -> None:
    from datetime import datetime

    with pytest.raises(DagDefinitionError, match="before start_date"):
        DAG(
            "d",
            start_date=datetime(2026, 2, 1, tzinfo=UTC),
            end_date=datetime(2026, 1, 1, tzinfo=UTC),
        )


def test_retry_delay_without_backoff_is_constant() -> None:
    t = Noop("t", retry_delay=timedelta(seconds=10))
    assert [t.retry_delay_for(n) for n in (1, 2, 5)] == [timedelta(seconds=10)] * 3


def test_retry_delay_with_backoff_doubles_per_try() -> None:
    t = Noop("t", retry_delay=timedelta(seconds=10), retry_exponential_backoff=True)
    assert [t.retry_delay_for(n).total_seconds() for n in (1, 2, 3, 4)] == [10, 20, 40, 80]


def test_retry_delay_with_backoff_is_capped_by_max_retry_delay() -> None:
    t = Noop(
        "t", retry_delay=timedelta(seconds=10), retry_exponential_backoff=True, max_retry_delay=timedelta(seconds=30)
    )
    assert [t.retry_delay_for(n).total_seconds() for n in (1, 2, 3, 10, 10_000)] == [10, 20, 30, 30, 30]


def test_retry_delay_backoff_without_cap_does_not_overflow() -> None:
    t = Noop("t", retry_delay=timedelta(seconds=1), retry_exponential_backoff=True)
    assert t.retry_delay_for(10_000) == timedelta.max


def test_retry_delay_accepts_seconds_as_numbers() -> None:
    assert Noop("t", retry_delay=1.5).retry_delay_for(1) == timedelta(seconds=1.5)


def test_try_number_starts_at_one() -> None:
    with pytest.raises(ValueError):
        Noop("t").retry_delay_for(0)


def test_max_tries_counts_retries_after_the_first_try() -> None:
    assert Noop("t", retries=4).max_tries == 4


def test_negative_retries_are_refused() -> None:
    with pytest.raises(DagDefinitionError, match="retries"):
        Noop("t", retries=-1)


def test_xcom_pull_from_takes_dag_ids_and_defaults_to_none() -> None:
    assert DAG("reads_nothing_else").xcom_pull_from == ()
    assert DAG("reads_one", xcom_pull_from="upstream").xcom_pull_from == ("upstream",)
    assert DAG("reads_all", xcom_pull_from=["a", "*"]).xcom_pull_from == ("a", "*")
    for bad in ([""], [3]):
        with pytest.raises(DagDefinitionError, match="xcom_pull_from"):
            DAG("bad", xcom_pull_from=bad)  # type: ignore[arg-type]
