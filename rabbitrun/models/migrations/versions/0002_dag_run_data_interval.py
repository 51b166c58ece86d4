"""dag_run data interval, for scheduled runs

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

import rabbitrun.models.base

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("dag_run") as batch:
        batch.add_column(
            sa.Column("data_interval_start", rabbitrun.models.base.UTCDateTime(timezone=True), nullable=True)
        )
        batch.add_column(
            sa.Column("data_interval_end", rabbitrun.models.base.UTCDateTime(timezone=True), nullable=True)
        )
        batch.create_index("ix_dag_run_dag_id_interval_end", ["dag_id", "data_interval_end"])


def downgrade() -> None:
    with op.batch_alter_table("dag_run") as batch:
        batch.drop_index("ix_dag_run_dag_id_interval_end")
        batch.drop_column("data_interval_end")
        batch.drop_column("data_interval_start")
