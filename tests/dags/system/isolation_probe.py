"""A DAG that does what a curious DAG author would: look for the secrets of its worker.

`tests/system/test_task_isolation.py` runs it and reads what it found in ``out_dir``: its
environment, its own memory and its zygote's (the writable mappings, copied out for the test to
search), every settings object it can reach, and what the worker answered when it asked for data of
another DAG run or tried to push as another task. Then a second task checks that what it may read
still works through its worker.
"""

import contextvars
import gc
import json
import os
import re
import sys
from pathlib import Path

from rabbitrun import DAG, XCom, task

_REGION = re.compile(r"^([0-9a-f]+)-([0-9a-f]+) (\S+) ")


def dump_writable_memory(pid, out):
    """Copy every readable and writable mapping of ``pid`` to ``out``: heap, stacks, anonymous
    memory and data segments, where a secret the process held would be."""
    with open(f"/proc/{pid}/maps") as maps, open(f"/proc/{pid}/mem", "rb", 0) as mem, open(out, "wb") as dump:
        for line in maps:
            match = _REGION.match(line)
            if not match or not match.group(3).startswith("rw"):
                continue
            start, end = int(match.group(1), 16), int(match.group(2), 16)
            try:
                mem.seek(start)
                dump.write(mem.read(end - start))
            except (OSError, ValueError, OverflowError):  # [vvar] and guard pages do not read
                continue


def _refused(call):
    try:
        call()
    except Exception as exc:  # noqa: BLE001 - the probe reports whatever it got
        return f"{type(exc).__name__}: {exc}"
    return "allowed"


def _settings_secrets():
    """Every non-empty secret of every settings object this process holds, by name."""
    import dataclasses

    from rabbitrun.settings import SECTIONS, Secret, Settings

    found = []
    for obj in gc.get_objects():
        if isinstance(obj, Settings):
            for section in SECTIONS:
                values = getattr(obj, section)
                for field in dataclasses.fields(values):
                    value = getattr(values, field.name)
                    if isinstance(value, Secret) and value:
                        found.append(f"{section}.{field.name}")
            found.extend(f"env_variables:{k}" for k in obj.env_variables)
            found.extend(f"env_connections:{k}" for k in obj.env_connections)
    return sorted(set(found))


def _direct_db():
    """Outside the attempt's context (a fresh context, as a thread the task starts would have
    without copying it) there is no DB to fall back to."""
    from rabbitrun.data.access import current

    return _refused(lambda: contextvars.Context().run(current))


with DAG("isolation_probe") as isolation_probe:

    @task
    def probe(**context):
        out = Path(context["params"]["out_dir"])
        ti = context["ti"]
        ti.xcom_push("mine", "pushed by the probe")
        # read what it may first, so that the memory copy holds a value it was served
        variable = context["var"]["value"].get("probe_allowed")
        password = context["conn"].probe_conn.password
        dump_writable_memory("self", out / "task.mem")
        dump_writable_memory(os.getppid(), out / "zygote.mem")  # root may; the test runs as root
        (out / "task.environ").write_bytes(Path("/proc/self/environ").read_bytes())
        (out / "zygote.environ").write_bytes(Path(f"/proc/{os.getppid()}/environ").read_bytes())
        report = {
            "rabbitrun_env": sorted(k for k in os.environ if k.startswith("RABBITRUN")),
            "db_or_broker_modules": sorted(
                m for m in sys.modules if m.split(".")[0] in ("sqlalchemy", "psycopg", "aio_pika", "aiormq")
            ),
            "settings_secrets": _settings_secrets(),
            "direct_db": _direct_db(),
            "other_run_xcom": _refused(
                lambda: XCom.get_one(dag_id="isolation_probe", run_id="another-run", task_id="probe", key="mine")
            ),
            "push_as_other": _refused(
                lambda: XCom.set(
                    key="forged", value=1, dag_id="isolation_probe", task_id="check", run_id=context["run_id"]
                )
            ),
            "variable": variable,
            "password_len": len(password),
        }
        (out / "probe.json").write_text(json.dumps(report))
        return "probed"

    @task
    def check(value, **context):
        """What a task may read still works through the worker: its own run's XComs."""
        mine = context["ti"].xcom_pull(task_ids="probe", key="mine")
        return {"upstream": value, "mine": mine}

    check(probe())


with DAG("xcom_reader", xcom_pull_from=["isolation_probe"]) as xcom_reader:

    @task
    def read_other_dag(**context):
        """What a DAG that lists another in ``xcom_pull_from`` may read: that DAG's runs, and no other's."""
        ti, probe_run = context["ti"], context["params"]["probe_run"]
        allowed = ti.xcom_pull(dag_id="isolation_probe", run_id=probe_run, task_ids="probe", key="mine")
        refused = _refused(lambda: ti.xcom_pull(dag_id="xcom_unlisted", run_id=probe_run, task_ids="x"))
        return {"allowed": allowed, "refused": refused}

    read_other_dag()
