"""What an operator asks of a running system: the library entry point the CLI and the tests call.

Each function takes the settings and returns plain values; the CLI only parses and renders.
Importing this package imports neither SQLAlchemy nor aio-pika (`dags trigger` stays lean);
the AMQP-only modules, :mod:`.control` (inspect/control, events) and :mod:`.status` (checks,
status), are imported by name where they are needed.
"""

from rabbitrun.client.dags import DagListing, backfill, dagbag, delete_dag, list_dags, set_paused, trigger
from rabbitrun.client.db import (
    clean_db,
    data_access,
    db_check,
    db_init,
    db_reset,
    ensure_control_key,
    ensure_fernet_key,
    rotate_fernet_key,
)
from rabbitrun.client.logs import (
    attempt_ended,
    attempt_key,
    follow,
    log_path,
    read_attempt_log,
    read_log,
    remote_log,
)
from rabbitrun.client.runs import (
    RunProgress,
    clear_tasks,
    run_progress,
    set_run_state,
    set_task_state,
    task_states,
    wait_for_run,
)
from rabbitrun.client.tasks import run_task
from rabbitrun.client.topology import declare_topology, export_topology
from rabbitrun.models.views import TaskStateRow

__all__ = [
    "DagListing",
    "RunProgress",
    "TaskStateRow",
    "attempt_ended",
    "attempt_key",
    "backfill",
    "clean_db",
    "clear_tasks",
    "dagbag",
    "data_access",
    "db_check",
    "db_init",
    "db_reset",
    "declare_topology",
    "delete_dag",
    "ensure_control_key",
    "ensure_fernet_key",
    "export_topology",
    "follow",
    "list_dags",
    "log_path",
    "read_attempt_log",
    "read_log",
    "remote_log",
    "rotate_fernet_key",
    "run_progress",
    "run_task",
    "set_paused",
    "set_run_state",
    "set_task_state",
    "task_states",
    "trigger",
    "wait_for_run",
]
