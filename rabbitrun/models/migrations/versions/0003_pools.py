"""slot pools, and each task instance's pool and pool_slots

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pools = op.create_table(
        "slot_pool",
        sa.Column("pool", sa.String(256), primary_key=True),
        sa.Column("slots", sa.Integer(), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
    )
    # unlimited (-1): tasks that name no pool run as before pools existed
    op.bulk_insert(pools, [{"pool": "default_pool", "slots": -1, "description": "Default pool"}])
    with op.batch_alter_table("task_instance") as batch:
        batch.add_column(sa.Column("pool", sa.String(256), nullable=False, server_default="default_pool"))
        batch.add_column(sa.Column("pool_slots", sa.Integer(), nullable=False, server_default="1"))


def downgrade() -> None:
    with op.batch_alter_table("task_instance") as batch:
        batch.drop_column("pool_slots")
        batch.drop_column("pool")
    op.drop_table("slot_pool")
