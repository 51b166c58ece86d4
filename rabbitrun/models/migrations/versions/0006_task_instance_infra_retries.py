"""task_instance.infra_retries: how often this task instance was re-queued because its lease expired

A lost worker, host or connection re-runs the attempt as the same try (DESIGN rule 3), which does
not use up ``retries``; this count bounds those re-runs (``core.max_infra_retries``), so a task
that keeps killing its workers ends as a failure with that reason. ``tasks clear`` resets it.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("task_instance") as batch:
        batch.add_column(sa.Column("infra_retries", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("task_instance") as batch:
        batch.drop_column("infra_retries")
