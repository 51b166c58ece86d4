"""XCom against a real DB, tasks run in-process through the worker child's runner: type tags,
the pickling gate, the size limit, re-runs, the file backend and `db clean`."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from rabbitrun.data.access import XCom, activate, build, deactivate
from rabbitrun.errors import XComError
from rabbitrun.keys import TaskInstanceKey
from rabbitrun.models import xcom
from rabbitrun.models.engine import session_factory
from tests.support.env import Env
from tests.support.runs import queue_run, schedule_again
from tests.support.secrets import engine_of, run_in_process, xcoms


def test_values_keep_their_types_between_tasks(env: Env) -> None:
    run_id = queue_run(env, "secrets_dag")
    assert run_in_process(env, "secrets_dag", run_id, "make_types").state == "success"
    schedule_again(env)
    assert run_in_process(env, "secrets_dag", run_id, "check_types").state == "success"
    rows = xcoms(env, run_id)
    assert rows[("make_types", "return_value")].value_type == "json"
    assert json.loads(rows[("check_types", "return_value")].value) == ["tuple", "datetime", "set"]


def test_pull_by_several_task_ids_returns_values_in_the_order_asked(env: Env) -> None:
    run_id = queue_run(env, "secrets_dag")
    for task_id in ("p1", "p2", "pull_many"):
        assert run_in_process(env, "secrets_dag", run_id, task_id).state == "success"
    assert json.loads(xcoms(env, run_id)[("pull_many", "return_value")].value) == [2, 1, None]


def test_a_cleared_and_re_run_task_replaces_its_xcoms(env: Env) -> None:
    run_id = queue_run(env, "secrets_dag")
    assert run_in_process(env, "secrets_dag", run_id, "push_by_try").state == "success"
    assert {k for t, k in xcoms(env, run_id) if t == "push_by_try"} == {"try1", "return_value"}
    assert run_in_process(env, "secrets_dag", run_id, "push_by_try", try_number=None).state == "success"
    rows = {k: json.loads(r.value) for (t, k), r in xcoms(env, run_id).items() if t == "push_by_try"}
    assert rows == {"try2": 2, "return_value": 2}


def test_pickling_is_refused_unless_enabled_and_the_size_limit_names_task_key_and_size(env: Env) -> None:
    run_id = queue_run(env, "secrets_dag")
    sessions = session_factory(engine_of(env))
    key = TaskInstanceKey("secrets_dag", "big", run_id)
    with sessions() as session:
        with pytest.raises(XComError, match="ENABLE_XCOM_PICKLING"):
            xcom.set_xcom(session, key, "obj", complex(1, 2), allow_pickle=False, max_bytes=0)
        with pytest.raises(XComError, match=r"XCom 'k' of task secrets_dag.big is 102 bytes, over .* 50 bytes"):
            xcom.set_xcom(session, key, "k", "y" * 100, allow_pickle=False, max_bytes=50)
        xcom.set_xcom(session, key, "obj", complex(1, 2), allow_pickle=True, max_bytes=0)
        session.commit()
    env.vars["RABBITRUN__CORE__ENABLE_XCOM_PICKLING"] = "true"
    access = build(env.settings(), sessions)
    token = activate(access)
    try:
        assert XCom.get_one(dag_id="secrets_dag", run_id=run_id, task_id="big", key="obj") == complex(1, 2)
    finally:
        deactivate(token)
    assert xcoms(env, run_id)[("big", "obj")].value_type == "pickle"
    env.vars["RABBITRUN__CORE__ENABLE_XCOM_PICKLING"] = "false"
    env.vars["RABBITRUN__CORE__MAX_XCOM_SIZE"] = "100"
    outcome = run_in_process(env, "secrets_dag", run_id, "big")
    assert outcome.state == "failed" and "'return_value' of task secrets_dag.big is 5002 bytes" in outcome.error
    assert ("big", "return_value") not in xcoms(env, run_id)


def test_the_file_backend_keeps_large_values_in_files_and_a_reference_in_the_db(env: Env) -> None:
    env.vars["RABBITRUN__CORE__XCOM_BACKEND"] = "rabbitrun.models.xcom_backends.FileXComBackend"
    run_id = queue_run(env, "secrets_dag")
    assert run_in_process(env, "secrets_dag", run_id, "big").state == "success"
    assert run_in_process(env, "secrets_dag", run_id, "p1").state == "success"
    rows = xcoms(env, run_id)
    ref = rows[("big", "return_value")]
    assert ref.value_type == "ref" and len(ref.value) < 500
    assert rows[("p1", "return_value")].value_type == "json"  # small values stay inline
    assert Path(json.loads(ref.value)["path"]).read_text() == json.dumps("x" * 5000)
    token = activate(build(env.settings(), session_factory(engine_of(env))))
    try:
        assert XCom.get_one(dag_id="secrets_dag", run_id=run_id, task_id="big") == "x" * 5000
    finally:
        deactivate(token)


def test_db_clean_dry_run_counts_and_a_real_run_deletes_rows_and_referenced_files(env: Env) -> None:
    env.vars["RABBITRUN__CORE__XCOM_BACKEND"] = "rabbitrun.models.xcom_backends.FileXComBackend"
    run_id = queue_run(env, "secrets_dag")
    run_in_process(env, "secrets_dag", run_id, "make_types")
    run_in_process(env, "secrets_dag", run_id, "big")
    ref_file = Path(json.loads(xcoms(env, run_id)[("big", "return_value")].value)["path"])
    past = (datetime.now(UTC) - timedelta(days=1)).isoformat()
    future = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    assert "xcom: 0 row(s) deleted" in env.cli("db", "clean", "--before", past).stdout
    dry = env.cli("db", "clean", "--before", future, "--tables", "xcom", "--dry-run")
    assert "xcom: 2 row(s) would be deleted" in dry.stdout
    assert len(xcoms(env, run_id)) == 2 and ref_file.exists()
    real = env.cli("db", "clean", "--before", future, "--tables", "xcom,task_attempt")
    assert "xcom: 2 row(s) deleted" in real.stdout and "task_attempt:" in real.stdout
    assert not xcoms(env, run_id) and not ref_file.exists()
    assert env.cli("db", "clean", "--before", "yesterday").returncode == 2
    unknown = env.cli("db", "clean", "--before", future, "--tables", "xcom,users")
    assert unknown.returncode == 2 and "users" in unknown.stderr


def test_db_clean_deletes_no_file_outside_the_xcom_files_folder(env: Env, tmp_path: Path) -> None:
    """Issue 17, finding 10: a planted ``ref`` row naming another file (or ``..`` out of the
    folder) loses its row, never that file."""
    from sqlalchemy import update

    from rabbitrun.models.tables import XComRow
    from tests.support.secrets import raw_session

    env.vars["RABBITRUN__CORE__XCOM_BACKEND"] = "rabbitrun.models.xcom_backends.FileXComBackend"
    run_id = queue_run(env, "secrets_dag")
    run_in_process(env, "secrets_dag", run_id, "big")
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    sneaky = env.home / "xcom_files" / ".." / ".." / "victim.txt"
    assert sneaky.resolve() == victim.resolve()
    for planted in (victim, sneaky):
        if not xcoms(env, run_id):  # the first round deleted the row: make another like it
            with raw_session(env) as session:
                session.add(
                    XComRow(
                        dag_id="secrets_dag",
                        task_id="big",
                        run_id=run_id,
                        map_index=-1,
                        key="return_value",
                        value=b"{}",
                        value_type="ref",
                        timestamp=datetime.now(UTC),
                    )
                )
                session.commit()
        with raw_session(env) as session:
            session.execute(
                update(XComRow)
                .where(XComRow.run_id == run_id, XComRow.task_id == "big")
                .values(value=json.dumps({"path": str(planted), "type": "json", "bytes": 7}).encode())
            )
            session.commit()
        future = (datetime.now(UTC) + timedelta(days=1)).isoformat()
        out = env.cli("db", "clean", "--before", future, "--tables", "xcom")
        assert out.returncode == 0 and "xcom: 1 row(s) deleted" in out.stdout, out.stderr
        assert victim.read_text() == "keep me"


class _Planted:
    """Unpickling this creates a file: the proof that pickled bytes ran code."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (Path.write_text, (Path(self.path), "pwned"))  # type: ignore[return-value]


def test_the_scheduler_never_unpickles_an_xcom_even_with_pickling_enabled(env: Env, tmp_path: Path) -> None:
    """Issue 17, finding 9: the backend the scheduler reads mapping input with refuses pickle."""
    import dataclasses
    import pickle

    from rabbitrun.models.tables import XComRow
    from tests.support.secrets import raw_session

    proof = tmp_path / "proof.txt"
    run_id = queue_run(env, "secrets_dag")
    with raw_session(env) as session:
        session.add(
            XComRow(
                dag_id="secrets_dag",
                task_id="p1",
                run_id=run_id,
                map_index=-1,
                key="return_value",
                value=pickle.dumps(_Planted(str(proof))),
                value_type="pickle",
                timestamp=datetime.now(UTC),
            )
        )
        session.commit()
    settings = env.settings()
    settings = dataclasses.replace(settings, core=dataclasses.replace(settings.core, enable_xcom_pickling=True))
    for dotted in ("", "rabbitrun.models.xcom_backends.FileXComBackend"):
        backend = xcom.load_backend_without_pickle(dotted, settings)
        with raw_session(env) as session, pytest.raises(XComError, match="pickl"):
            xcom.get_xcoms(session, "secrets_dag", run_id, ["p1"], "return_value", allow_pickle=False, backend=backend)
        with pytest.raises(XComError, match="pickling is disabled"):
            backend.load(pickle.dumps(_Planted(str(proof))), "pickle")
    assert not proof.exists()
