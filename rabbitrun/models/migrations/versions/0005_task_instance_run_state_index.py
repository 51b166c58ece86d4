"""task_instance: index (dag_id, run_id, state) instead of (dag_id, run_id)

Whether a run still has unfinished task instances is asked after every result of a leaf task; with
the state in the index the answer is a short index range, not a scan of the run's rows (a run of
N independent tasks cost O(N^2) row visits). The new index serves every (dag_id, run_id) lookup
the old one did. State changes were already non-HOT updates (ix_task_instance_state), so writes
pay nothing more.

Revision ID: 0005
Revises: 0004
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("task_instance") as batch:
        batch.create_index("ix_task_instance_dag_run_state", ["dag_id", "run_id", "state"])
        batch.drop_index("ix_task_instance_dag_run")


def downgrade() -> None:
    with op.batch_alter_table("task_instance") as batch:
        batch.create_index("ix_task_instance_dag_run", ["dag_id", "run_id"])
        batch.drop_index("ix_task_instance_dag_run_state")
