"""AMQP names are a contract: exchanges, queues, connection names and consumer tags, with and without prefix."""

from __future__ import annotations

import pytest

from rabbitrun import names
from rabbitrun.names import Names, connection_name, consumer_tag


def test_unprefixed_names_match_the_design() -> None:
    n = Names()
    assert n.tasks_exchange == "rabbitrun.tasks"
    assert n.control_exchange == "rabbitrun.control"
    assert n.events_exchange == "rabbitrun.events"
    assert n.dead_letter_exchange == "rabbitrun.dlx"
    assert n.dead_letter_queue == "rabbitrun.dead"
    assert n.task_queue("default") == "rabbitrun.q.default"
    assert n.task_queue("high_priority") == "rabbitrun.q.high_priority"
    assert n.reply_queue("sched-1") == "rabbitrun.replies.sched-1"
    assert n.control_queue("w1@host") == "rabbitrun.control.w1@host"


def test_prefix_goes_in_front_of_every_name() -> None:
    n = Names(prefix="staging")
    assert n.tasks_exchange == "staging.rabbitrun.tasks"
    assert n.control_exchange == "staging.rabbitrun.control"
    assert n.events_exchange == "staging.rabbitrun.events"
    assert n.dead_letter_exchange == "staging.rabbitrun.dlx"
    assert n.dead_letter_queue == "staging.rabbitrun.dead"
    assert n.task_queue("default") == "staging.rabbitrun.q.default"
    assert n.reply_queue("s1") == "staging.rabbitrun.replies.s1"
    assert n.control_queue("w1@host") == "staging.rabbitrun.control.w1@host"


def test_empty_prefix_is_the_same_as_no_prefix() -> None:
    assert Names(prefix="") == Names()
    assert Names(prefix="").task_queue("x") == "rabbitrun.q.x"


@pytest.mark.parametrize("prefix", ["", "staging", "team.a"])
@pytest.mark.parametrize("queue", ["default", "high_priority", "with.dots", "q-1"])
def test_logical_queue_is_the_inverse_of_task_queue(prefix: str, queue: str) -> None:
    n = Names(prefix=prefix)
    assert n.logical_queue(n.task_queue(queue)) == queue


@pytest.mark.parametrize(
    "prefix,amqp_queue",
    [
        ("", "rabbitrun.dead"),
        ("", "rabbitrun.replies.s1"),
        ("", "other.q.default"),
        ("", "default"),
        ("staging", "rabbitrun.q.default"),
        ("", "staging.rabbitrun.q.default"),
        ("staging", "prod.rabbitrun.q.default"),
        ("", "rabbitrun.q."),
        ("staging", "staging.rabbitrun.q."),  # the bare head names no queue
    ],
)
def test_logical_queue_is_none_for_names_that_are_not_this_installations_task_queues(
    prefix: str, amqp_queue: str
) -> None:
    assert Names(prefix=prefix).logical_queue(amqp_queue) is None


def test_connection_name_reads_role_then_who() -> None:
    assert connection_name("worker", "w1@host") == "rabbitrun-worker w1@host"
    assert connection_name("scheduler", "sched1") == "rabbitrun-scheduler sched1"


def test_consumer_tag_names_the_worker_and_the_queue() -> None:
    assert consumer_tag("worker", "w1@host", "default") == "rabbitrun-worker w1@host default"
    assert consumer_tag("worker", "w1@host", "high_priority") == "rabbitrun-worker w1@host high_priority"


def test_message_constants_are_the_documented_spellings() -> None:
    assert names.APP_ID == "rabbitrun"
    assert names.TASK_MESSAGE_TYPE == "rabbitrun.task"
    assert names.RESULT_MESSAGE_TYPE == "rabbitrun.result"
    assert names.REASON_HEADER == "x-rabbitrun-reason"


def test_routing_keys_replace_dots_so_a_name_stays_one_topic_word() -> None:
    assert names.control_key("w1@host.example") == "worker.w1@host_example"
    assert names.heartbeat_key("w1@h.x") == "worker.w1@h_x.heartbeat"
    assert names.task_event_key("my.dag", "t.1", "succeeded") == "task.my_dag.t_1.succeeded"
    assert names.log_key("d", "t") == "log.d.t"
    assert names.task_events_pattern("my.dag") == "task.my_dag.#"
    assert names.task_events_pattern(None) == "task.#"
