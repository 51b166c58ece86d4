"""Topology without a broker: loading and validating the file, the one object list, the
definitions export, and RabbitMQ's PRECONDITION_FAILED text turned into plain words."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rabbitrun.broker.management import ManagementClient, vhost_of
from rabbitrun.broker.topology import (
    BindingObj,
    DeclareReport,
    ExchangeObj,
    QueueObj,
    Topology,
    default_topology_path,
    export_definitions,
    load_topology,
    mismatch_from,
    object_specs,
)
from rabbitrun.errors import ConfigError, TopologyMismatch
from rabbitrun.names import Names
from rabbitrun.settings import BrokerSettings

CLASSIC = BrokerSettings()
QUORUM = BrokerSettings(queue_type="quorum")


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "topology.toml"
    path.write_text(text)
    return path


def load_error(tmp_path: Path, text: str, settings: BrokerSettings = CLASSIC) -> ConfigError:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_topology(path, settings)
    assert str(path) in str(info.value)  # every error names the file
    assert info.value.source == str(path)
    return info.value


# --- loading ---------------------------------------------------------------------------------


def test_shipped_file_has_default_and_high_priority_classic_queues_with_priorities() -> None:
    topology = load_topology(None, CLASSIC)
    assert topology.queue_names()[:2] == ["default", "high_priority"]
    assert all(q.queue_type == "classic" and q.max_priority == 10 for q in topology.queues)
    assert topology.dead_lettering is True
    assert topology.source == str(default_topology_path())


def test_empty_path_means_the_shipped_file() -> None:
    assert load_topology(Path(""), CLASSIC) == load_topology(None, CLASSIC)


def test_shipped_file_follows_the_quorum_setting_without_priorities() -> None:
    topology = load_topology(None, QUORUM)
    assert {(q.queue_type, q.max_priority) for q in topology.queues} == {("quorum", 0)}


def test_queue_options_override_defaults_which_override_settings(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        [defaults]
        max_priority = 5
        message_ttl_ms = 60000
        [queues.default]
        [queues.bulk]
        max_priority = 0
        max_length = 1000
        [queues.ha]
        queue_type = "quorum"
        max_priority = 0
    """,
    )
    queues = {q.name: q for q in load_topology(path, BrokerSettings(max_priority=9)).queues}
    assert (queues["default"].max_priority, queues["default"].message_ttl_ms) == (5, 60000)
    assert (queues["bulk"].max_priority, queues["bulk"].max_length) == (0, 1000)
    assert queues["ha"].queue_type == "quorum"


def test_unknown_top_level_key_is_an_error_naming_it(tmp_path: Path) -> None:
    error = load_error(tmp_path, "[default]\n[queues.default]\n")
    assert error.key == "default" and "did you mean 'defaults'" in str(error)


def test_misspelt_queue_option_is_an_error_naming_the_key_and_the_fix(tmp_path: Path) -> None:
    error = load_error(tmp_path, "[queues.default]\nmax_priorty = 3\n")
    assert error.key == "queues.default.max_priorty"
    assert "did you mean 'max_priority'" in str(error)


def test_unknown_defaults_key_is_an_error(tmp_path: Path) -> None:
    assert load_error(tmp_path, "[defaults]\ndurable = true\n[queues.default]\n").key == "defaults.durable"


def test_dead_lettering_is_not_a_per_queue_option(tmp_path: Path) -> None:
    error = load_error(tmp_path, "[queues.default]\ndead_lettering = false\n")
    assert error.key == "queues.default.dead_lettering"


def test_quorum_queue_with_priority_is_rejected_naming_the_key(tmp_path: Path) -> None:
    error = load_error(tmp_path, '[queues.default]\nqueue_type = "quorum"\nmax_priority = 10\n')
    assert error.key == "queues.default.max_priority"
    assert "quorum" in str(error) and "priorities" in str(error)


def test_priority_in_defaults_with_quorum_setting_is_rejected_naming_defaults(tmp_path: Path) -> None:
    error = load_error(tmp_path, "[defaults]\nmax_priority = 10\n[queues.default]\n", QUORUM)
    assert error.key == "defaults.max_priority"


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ('[queues.default]\nmax_priority = "10"\n', "queues.default.max_priority"),
        ("[queues.default]\nmax_priority = true\n", "queues.default.max_priority"),
        ("[queues.default]\nmax_priority = 256\n", "queues.default.max_priority"),
        ("[queues.default]\nmessage_ttl_ms = -1\n", "queues.default.message_ttl_ms"),
        ("[queues.default]\nmax_length = 1.5\n", "queues.default.max_length"),
        ('[queues.default]\nqueue_type = "stream"\n', "queues.default.queue_type"),
        ('[defaults]\ndead_lettering = "yes"\n[queues.default]\n', "defaults.dead_lettering"),
        ("queues = 3\n", "queues"),
        ("[queues]\ndefault = 1\n", "queues.default"),
        ('[queues."bad name"]\n', "queues.bad name"),
    ],
)
def test_bad_values_are_errors_naming_the_key(tmp_path: Path, text: str, key: str) -> None:
    assert load_error(tmp_path, text).key == key


def test_a_file_without_queues_is_an_error(tmp_path: Path) -> None:
    assert load_error(tmp_path, "[defaults]\n").key == "queues"


def test_missing_file_is_an_error_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "nope.toml"
    with pytest.raises(ConfigError, match="nope.toml") as info:
        load_topology(path, CLASSIC)
    assert info.value.key == "broker.topology_file"


def test_invalid_toml_is_an_error_naming_the_file(tmp_path: Path) -> None:
    load_error(tmp_path, "[queues.default\n")


# --- the object list -------------------------------------------------------------------------


def specs(topology: Topology, prefix: str = "", scheduler_ids: tuple[str, ...] = ()) -> dict[str, object]:
    return {o.name: o for o in object_specs(topology, Names(prefix), scheduler_ids)}


def test_object_list_has_the_contract_exchanges_and_queues() -> None:
    objs = specs(load_topology(None, CLASSIC), scheduler_ids=("s1",))
    assert objs["rabbitrun.tasks"] == ExchangeObj("rabbitrun.tasks", "direct")
    assert objs["rabbitrun.control"] == ExchangeObj("rabbitrun.control", "topic")
    assert objs["rabbitrun.events"] == ExchangeObj("rabbitrun.events", "topic")
    assert objs["rabbitrun.dlx"] == ExchangeObj("rabbitrun.dlx", "fanout")
    assert isinstance(objs["rabbitrun.dead"], QueueObj)
    default = objs["rabbitrun.q.default"]
    assert isinstance(default, QueueObj) and default.durable
    assert default.arguments == {
        "x-queue-type": "classic",
        "x-dead-letter-exchange": "rabbitrun.dlx",
        "x-max-priority": 10,
    }
    reply = objs["rabbitrun.replies.s1"]
    assert isinstance(reply, QueueObj) and reply.durable
    assert reply.arguments == {"x-queue-type": "classic", "x-dead-letter-exchange": "rabbitrun.dlx"}


def test_task_queues_are_bound_with_their_logical_name_and_dead_letters_reach_the_dead_queue() -> None:
    bindings = [o for o in object_specs(load_topology(None, CLASSIC), Names()) if isinstance(o, BindingObj)]
    assert BindingObj("rabbitrun.tasks", "rabbitrun.q.default", "default") in bindings
    assert BindingObj("rabbitrun.tasks", "rabbitrun.q.high_priority", "high_priority") in bindings
    assert BindingObj("rabbitrun.dlx", "rabbitrun.dead", "") in bindings


def test_every_binding_comes_after_its_exchange_and_queue() -> None:
    seen: set[str] = set()
    for obj in object_specs(load_topology(None, CLASSIC), Names(), ["s1"]):
        if isinstance(obj, BindingObj):
            assert {obj.exchange, obj.queue} <= seen
        else:
            seen.add(obj.name)


def test_prefix_applies_to_every_name() -> None:
    objs = object_specs(load_topology(None, CLASSIC), Names("acme"), ["s1"])
    names = [o.name for o in objs if not isinstance(o, BindingObj)]
    assert names and all(n.startswith("acme.rabbitrun.") for n in names)
    queue = next(o for o in objs if isinstance(o, QueueObj) and o.name == "acme.rabbitrun.q.default")
    assert queue.arguments["x-dead-letter-exchange"] == "acme.rabbitrun.dlx"


def test_ttl_length_and_no_dead_lettering_reach_the_arguments(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "[defaults]\ndead_lettering = false\n"
        "[queues.default]\nmax_priority = 0\nmessage_ttl_ms = 500\nmax_length = 7\n",
    )
    queue = specs(load_topology(path, CLASSIC))["rabbitrun.q.default"]
    assert isinstance(queue, QueueObj)
    assert queue.arguments == {"x-queue-type": "classic", "x-message-ttl": 500, "x-max-length": 7}


def test_quorum_queues_get_their_type_and_no_priority() -> None:
    queue = specs(load_topology(None, QUORUM))["rabbitrun.q.default"]
    assert isinstance(queue, QueueObj)
    assert queue.arguments["x-queue-type"] == "quorum" and "x-max-priority" not in queue.arguments


# --- definitions export ----------------------------------------------------------------------


def test_export_has_the_fields_the_management_import_accepts() -> None:
    defs = export_definitions(load_topology(None, CLASSIC), Names(), vhost="prod", scheduler_ids=["s1"])
    assert defs["vhosts"] == [{"name": "prod"}]
    assert {tuple(sorted(e)) for e in defs["exchanges"]} == {
        ("arguments", "auto_delete", "durable", "internal", "name", "type", "vhost")
    }
    assert {tuple(sorted(q)) for q in defs["queues"]} == {("arguments", "auto_delete", "durable", "name", "vhost")}
    assert {tuple(sorted(b)) for b in defs["bindings"]} == {
        ("arguments", "destination", "destination_type", "routing_key", "source", "vhost")
    }
    assert {item["vhost"] for key in ("exchanges", "queues", "bindings") for item in defs[key]} == {"prod"}
    json.dumps(defs)  # serialisable as is


def test_export_lists_exactly_the_declared_objects() -> None:
    topology = load_topology(None, CLASSIC)
    objs = object_specs(topology, Names("p"), ["s1"])
    defs = export_definitions(topology, Names("p"), scheduler_ids=["s1"])
    assert [(e["name"], e["type"]) for e in defs["exchanges"]] == [
        (o.name, o.type) for o in objs if isinstance(o, ExchangeObj)
    ]
    assert [(q["name"], q["arguments"]) for q in defs["queues"]] == [
        (o.name, o.arguments) for o in objs if isinstance(o, QueueObj)
    ]
    assert [(b["source"], b["destination"], b["routing_key"]) for b in defs["bindings"]] == [
        (o.exchange, o.queue, o.routing_key) for o in objs if isinstance(o, BindingObj)
    ]
    assert all(e["durable"] and not e["auto_delete"] for e in defs["exchanges"] + defs["queues"])


# --- broker errors in plain words ------------------------------------------------------------


def test_missing_priority_on_existing_queue_becomes_a_mismatch() -> None:
    text = (
        "PRECONDITION_FAILED - inequivalent arg 'x-max-priority' for queue 'rabbitrun.q.default' in "
        "vhost '/': received the value '10' of type 'signedint' but current is none"
    )
    mismatch = mismatch_from(text)
    assert isinstance(mismatch, TopologyMismatch)
    assert (mismatch.kind, mismatch.name, mismatch.argument) == ("queue", "rabbitrun.q.default", "x-max-priority")
    assert (mismatch.existing, mismatch.wanted) == ("(not set)", 10)
    assert "PRECONDITION_FAILED" not in str(mismatch) and "rabbitrun.q.default" in str(mismatch)


def test_exchange_type_and_queue_type_differences_become_mismatches() -> None:
    exchange = mismatch_from(
        "PRECONDITION_FAILED - inequivalent arg 'type' for exchange 'rabbitrun.tasks' in "
        "vhost 'v': received 'topic' but current is 'direct'"
    )
    assert exchange is not None
    assert (exchange.kind, exchange.argument, exchange.existing, exchange.wanted) == (
        "exchange",
        "type",
        "direct",
        "topic",
    )
    queue = mismatch_from(
        "PRECONDITION_FAILED - inequivalent arg 'x-queue-type' for queue 'q' in vhost '/': "
        "received the value 'quorum' of type 'longstr' but current is the value 'classic' of "
        "type 'longstr'"
    )
    assert queue is not None and (queue.existing, queue.wanted) == ("classic", "quorum")
    unset = mismatch_from(
        "inequivalent arg 'x-max-priority' for queue 'pq' in vhost '/': received none but "
        "current is the value '10' of type 'byte'"
    )
    assert unset is not None and (unset.existing, unset.wanted) == (10, "(not set)")


def test_other_broker_errors_are_not_taken_for_mismatches() -> None:
    assert mismatch_from("NOT_FOUND - no exchange 'x' in vhost '/'") is None


def test_declare_report_lists_what_was_declared() -> None:
    report = DeclareReport(tuple(object_specs(load_topology(None, CLASSIC), Names())))
    assert report.exchanges == ["rabbitrun.tasks", "rabbitrun.control", "rabbitrun.events", "rabbitrun.dlx"]
    assert "rabbitrun.q.default" in report.queues and len(report.bindings) == 3
    assert str(report).startswith("declared 4 exchanges, 3 queues, 3 bindings:")
    assert "x-max-priority=10" in str(report)


# --- management client, no sockets ----------------------------------------------------------


def test_management_client_masks_the_password() -> None:
    assert ManagementClient("http://admin:s3cret@rabbit:15672/").url == "http://admin:***@rabbit:15672/"


@pytest.mark.parametrize(
    ("url", "vhost"),
    [
        ("amqp://g:g@h:5672/", "/"),
        ("amqp://h", "/"),
        ("amqp://h/%2F", "/"),
        ("amqp://h/rr-test", "rr-test"),
    ],
)
def test_vhost_of_an_amqp_url(url: str, vhost: str) -> None:
    assert vhost_of(url) == vhost
