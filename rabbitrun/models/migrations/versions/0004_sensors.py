"""task_reschedule, for sensors in reschedule mode

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

import rabbitrun.models.base

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "task_reschedule",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("dag_id", sa.String(length=250), nullable=False),
        sa.Column("task_id", sa.String(length=250), nullable=False),
        sa.Column("run_id", sa.String(length=250), nullable=False),
        sa.Column("map_index", sa.Integer(), nullable=False),
        sa.Column("try_number", sa.Integer(), nullable=False),
        sa.Column("start_date", rabbitrun.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("end_date", rabbitrun.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("reschedule_date", rabbitrun.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["dag_id", "run_id"],
            ["dag_run.dag_id", "dag_run.run_id"],
            name="fk_task_reschedule_dag_run",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_task_reschedule")),
    )
    with op.batch_alter_table("task_reschedule") as batch:
        batch.create_index("ix_task_reschedule_ti_try", ["dag_id", "task_id", "run_id", "map_index", "try_number"])


def downgrade() -> None:
    with op.batch_alter_table("task_reschedule") as batch:
        batch.drop_index("ix_task_reschedule_ti_try")
    op.drop_table("task_reschedule")
