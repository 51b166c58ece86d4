"""Dynamic task mapping against a real DB (SQLite and PostgreSQL), whole DAGs run in-process by
`dags test` (run_dag_in_process): expansion, empty and non-list input, the length limit, xcom_pull by
map index, `tasks run --map-index`, per-instance logs and states, clear re-expanding."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rabbitrun import client
from rabbitrun.models.engine import make_engine, session_factory
from rabbitrun.models.tables import XComRow
from rabbitrun.scheduler.inprocess import run_dag_in_process
from tests.support.env import Env


def _test_dag(env: Env, dag_id: str) -> tuple[str, dict[tuple[str, int], client.TaskStateRow]]:
    run_id, rows = run_dag_in_process(env.settings(), dag_id, conf={"out_dir": str(env.home.parent / "out")})
    return run_id, {(r.task_id, r.map_index): r for r in rows}


def _value(env: Env, run_id: str, task_id: str, map_index: int = -1) -> Any:
    with session_factory(make_engine(env.settings().database, pooled=False))() as session:
        row = (
            session.query(XComRow)
            .filter_by(run_id=run_id, task_id=task_id, map_index=map_index, key="return_value")
            .one_or_none()
        )
    return None if row is None else json.loads(row.value)


def _square_lines(env: Env) -> list[str]:
    path = env.home.parent / "out" / "square.lines"
    return path.read_text().splitlines() if path.exists() else []


def test_partial_and_expand_over_literal_lists_run_one_instance_per_element(env: Env) -> None:
    run_id, rows = _test_dag(env, "map_partial_literal")
    assert {k: r.state for k, r in rows.items() if k[0] == "add"} == {
        ("add", 0): "success",
        ("add", 1): "success",
        ("add", 2): "success",
    }
    assert [_value(env, run_id, "add", i) for i in range(3)] == [11, 12, 13]
    assert _value(env, run_id, "sums") == {"values": [11, 12, 13], "count": 3}
    assert {k: r.state for k, r in rows.items() if k[0] == "echo"} == {("echo", 0): "success", ("echo", 1): "success"}
    logs = Path(env.settings().logging.base_log_folder) / "map_partial_literal" / "echo" / run_id
    assert "one" in (logs / "map_index=0" / "1.log").read_text()
    assert "two" in (logs / "map_index=1" / "1.log").read_text()
    assert client.run_progress(env.settings(), "map_partial_literal", run_id).state == "success"


def test_a_mapped_task_maps_over_the_results_of_another_mapped_task(env: Env) -> None:
    run_id, rows = _test_dag(env, "map_chain")
    assert sorted(i for t, i in rows if t == "square") == [0, 1, 2]
    assert _value(env, run_id, "collect") == {"values": [4, 9, 16], "count": 3}


def test_dags_test_cli_runs_a_mapped_dag_and_lists_each_instance(env: Env) -> None:
    conf = json.dumps({"out_dir": str(env.home.parent / "out")})
    out = env.cli("dags", "test", "map_partial_literal", "--conf", conf)
    assert out.returncode == 0, out.stderr
    listed = {line.split()[0]: line.split()[1] for line in out.stdout.splitlines()[:-1]}
    assert {k: v for k, v in listed.items() if k.startswith("add")} == {
        "add[0]": "success",
        "add[1]": "success",
        "add[2]": "success",
    }
    assert out.stdout.splitlines()[-1].endswith(": success")


def test_empty_list_skips_the_mapped_task_and_downstream_follows_its_trigger_rule(env: Env) -> None:
    run_id, rows = _test_dag(env, "map_empty")
    assert (rows[("square", -1)].state, rows[("square", -1)].reason) == ("skipped", "mapped over an empty list")
    assert not [k for k in rows if k[0] == "square" and k[1] >= 0] and not _square_lines(env)
    assert rows[("after_all_success", -1)].state == "skipped"
    assert rows[("after_all_done", -1)].state == "success"
    assert _value(env, run_id, "after_all_done") == {"values": [], "count": 0}


def test_upstream_value_that_is_not_a_list_fails_the_mapped_task_with_the_reason(env: Env) -> None:
    run_id, rows = _test_dag(env, "map_not_list")
    square = rows[("square", -1)]
    assert square.state == "failed"
    assert "cannot expand 'x' over scalar's XCom 'return_value': it is a int, not a list" in (square.reason or "")
    assert rows[("collect", -1)].state == "upstream_failed"
    assert client.run_progress(env.settings(), "map_not_list", run_id).state == "failed"
    assert not _square_lines(env)


def test_expanding_over_max_map_length_fails_with_the_limit_named(env: Env) -> None:
    env.vars["RABBITRUN__CORE__MAX_MAP_LENGTH"] = "49"
    _, rows = _test_dag(env, "map_fifty")
    square = rows[("square", -1)]
    assert square.state == "failed"
    assert "would expand to 50 instances, over the [core] max_map_length limit of 49" in (square.reason or "")
    assert rows[("collect", -1)].state == "upstream_failed"


def test_xcom_pull_by_map_indexes_gives_one_value_or_a_list_in_the_order_asked(env: Env) -> None:
    run_id, rows = _test_dag(env, "map_pull")
    assert rows[("pull", -1)].state == "success"
    assert _value(env, run_id, "pull") == {
        "one": 200,
        "some": [200, 0],
        "all": [0, None, 200],
        "missing": "none pushed",
    }


def test_tasks_run_with_map_index_reruns_one_instance_and_states_list_instances_apart(env: Env) -> None:
    run_id, _ = _test_dag(env, "map_partial_literal")
    out = env.cli("tasks", "run", "map_partial_literal", "add", run_id, "--map-index", "1")
    assert out.returncode == 0, out.stderr
    assert "try=2: success" in out.stdout
    states = env.cli("tasks", "states", "map_partial_literal", run_id)
    mapped = sorted(line.split()[:4] for line in states.stdout.splitlines() if line.startswith("add "))
    assert mapped == [["add", "0", "success", "1"], ["add", "1", "success", "2"], ["add", "2", "success", "1"]]
    logs = env.cli("tasks", "logs", "map_partial_literal", "add", run_id, "--map-index", "1")
    assert logs.returncode == 0 and "Starting attempt 2" in logs.stdout
    refused = env.cli("tasks", "run", "map_partial_literal", "add", run_id)
    assert refused.returncode != 0 and "is a mapped task: give --map-index" in refused.stderr


def test_clear_of_a_mapped_task_re_expands_to_the_new_length(env: Env) -> None:
    out_dir = env.home.parent / "out"
    (out_dir / "n").write_text("4")
    run_id, rows = _test_dag(env, "map_sized")
    assert sorted(i for t, i in rows if t == "square") == [0, 1, 2, 3]
    assert _value(env, run_id, "collect") == {"values": [0, 1, 4, 9], "count": 4}
    (out_dir / "n").write_text("2")
    settings = env.settings()
    cleared = client.clear_tasks(settings, "map_sized", task_regex="^sized$", run_id=run_id, downstream=True)
    assert sorted(t for _, t in cleared) == ["collect", "sized", "square"]
    assert sorted(
        (r.task_id, r.map_index, r.state)
        for r in client.task_states(settings, "map_sized", run_id)
        if r.task_id == "square"
    ) == [("square", -1, "none")]
    _run_to_end(env, "map_sized", run_id)
    after = {(r.task_id, r.map_index): r for r in client.task_states(settings, "map_sized", run_id)}
    assert sorted(i for t, i in after if t == "square") == [0, 1]
    assert [after[("square", i)].try_number for i in (0, 1)] == [2, 2]  # tries keep counting after a clear
    assert _value(env, run_id, "collect") == {"values": [0, 1], "count": 2}
    assert _value(env, run_id, "square", 3) is None  # the XComs of instances that are gone went with them
    assert client.run_progress(settings, "map_sized", run_id).state == "success"


def _run_to_end(env: Env, dag_id: str, run_id: str) -> None:
    """What `dags test` does for a new run, for a run that exists: schedule, run in-process, repeat."""
    from rabbitrun.models.base import utcnow
    from rabbitrun.runner import inprocess
    from rabbitrun.scheduler import readiness

    settings = env.settings()
    bag = client.dagbag(settings)
    sessions = session_factory(make_engine(settings.database, pooled=False))
    while True:
        with sessions() as session:
            envelopes = readiness.schedule(session, bag, settings, utcnow(), only=[(dag_id, run_id)])
        if not envelopes:
            return
        for e in envelopes:
            inprocess.run_attempt(settings, sessions, bag, e.key, hostname="t", in_process=True)
