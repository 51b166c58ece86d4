"""The topology files that ship (the packaged default and every ``topology/*.toml``) load and
declare the queues their comments promise, so a file cannot rot unnoticed."""

from __future__ import annotations

from pathlib import Path

import pytest

from rabbitrun.broker.topology import QueueObj, default_topology_path, load_topology, object_specs
from rabbitrun.names import Names
from rabbitrun.settings import BrokerSettings

TOPOLOGY_DIR = Path(__file__).resolve().parents[2] / "topology"

# file name -> {logical queue: (queue type, max priority)}; a new file in topology/ needs a line here
EXPECTED: dict[str, dict[str, tuple[str, int]]] = {
    "default.toml": {"default": ("classic", 10), "high_priority": ("classic", 10)},
    "quorum.toml": {"default": ("quorum", 0), "high_priority": ("quorum", 0)},
}


def shipped_files() -> list[Path]:
    return [default_topology_path(), *sorted(TOPOLOGY_DIR.glob("*.toml"))]


def test_every_file_in_the_topology_folder_is_checked_here() -> None:
    assert {p.name for p in TOPOLOGY_DIR.glob("*.toml")} <= set(EXPECTED)
    assert (TOPOLOGY_DIR / "quorum.toml").is_file()


def test_packaged_default_lives_inside_the_package() -> None:
    path = default_topology_path()
    assert path.is_file()
    assert path.parent.name == "broker" and path.parent.parent.name == "rabbitrun"


@pytest.mark.parametrize("path", shipped_files(), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_shipped_topology_file_declares_its_queues_with_their_types(path: Path) -> None:
    topology = load_topology(path, BrokerSettings())
    expected = EXPECTED[path.name]
    assert topology.source == str(path)
    assert topology.dead_lettering is True
    assert {q.name: (q.queue_type, q.max_priority) for q in topology.queues} == expected

    # what `topology declare` / `export` would send to RabbitMQ for those queues
    queues = {o.name: o.arguments for o in object_specs(topology, Names()) if isinstance(o, QueueObj)}
    assert queues.pop("rabbitrun.dead") == {"x-queue-type": "classic"}
    assert set(queues) == {f"rabbitrun.q.{name}" for name in expected}
    for name, (queue_type, max_priority) in expected.items():
        args = queues[f"rabbitrun.q.{name}"]
        assert args["x-queue-type"] == queue_type
        assert args["x-dead-letter-exchange"] == "rabbitrun.dlx"
        assert args.get("x-max-priority", 0) == max_priority


@pytest.mark.parametrize("path", shipped_files(), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_broker_queue_type_setting_applies_only_where_the_file_sets_no_type(path: Path) -> None:
    classic = load_topology(path, BrokerSettings(queue_type="classic"))
    if path.name == "quorum.toml":
        assert load_topology(path, BrokerSettings(queue_type="quorum")) == classic
        assert all(q.queue_type == "quorum" for q in classic.queues)
    else:
        # the default leaves the type to the setting: quorum queues then, without priorities
        quorum = load_topology(path, BrokerSettings(queue_type="quorum"))
        assert {(q.queue_type, q.max_priority) for q in quorum.queues} == {("quorum", 0)}
