"""A task process and its zygote import no SQLAlchemy and no aio-pika (DESIGN "Worker process
model"): what they import is what every task's fork shares, and a DB library in reach is a DB
access a DAG author could use. A fresh interpreter imports what the zygote imports and runs what a
task's code path loads on first use; the list of loaded modules must hold neither."""

from __future__ import annotations

import subprocess
import sys

_ZYGOTE_PATH = """
import sys
import rabbitrun.worker.zygote
from rabbitrun import runner, Variable, Connection, XCom, DAG, task
from rabbitrun.authoring import DagBag
from rabbitrun.runner import attempt, context, link, limits
import rabbitrun.models.xcom_backends
from rabbitrun.models import xcom_values
xcom_values.deserialize(*xcom_values.serialize({"a": [1, 2]}, allow_pickle=False), allow_pickle=False)
bad = sorted(m for m in sys.modules if m.split(".")[0] in ("sqlalchemy", "aio_pika", "aiormq", "psycopg", "alembic"))
print(",".join(bad))
"""


def test_the_task_process_path_imports_no_db_or_broker_library() -> None:
    done = subprocess.run([sys.executable, "-c", _ZYGOTE_PATH], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "", f"loaded in a task process: {done.stdout.strip()}"


def test_the_check_sees_a_db_library_when_one_is_imported() -> None:
    """The same check run on the in-process runner (`tasks run`, which holds the DB) finds it."""
    script = _ZYGOTE_PATH.replace("import rabbitrun.worker.zygote", "import rabbitrun.runner.inprocess")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "sqlalchemy" in done.stdout
