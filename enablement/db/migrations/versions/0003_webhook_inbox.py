"""webhook inbox: status, duplicate count and ordering field of each stored event

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 18:00:00

Each stored HubSpot event gets a status (pending, applied, ignored, rejected), a count of
the deliveries that repeated it, and the deal field it orders against, indexed so that
"is a newer change of this field already applied?" is one index probe.
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("webhook_events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("property_name", sa.String(length=64), nullable=True))
        batch_op.add_column(
            sa.Column("status", sa.String(length=16), nullable=False, server_default="pending")
        )
        batch_op.add_column(
            sa.Column("duplicates", sa.Integer(), nullable=False, server_default="0")
        )
        batch_op.create_index("ix_webhook_events_status", ["status"], unique=False)
        batch_op.create_index(
            "ix_webhook_events_field", ["object_id", "property_name", "occurred_at"], unique=False
        )
    op.execute("UPDATE webhook_events SET status = 'applied' WHERE applied_at IS NOT NULL")
    op.execute(
        "UPDATE webhook_events SET status = 'rejected' WHERE applied_at IS NULL AND error IS NOT NULL"
    )


def downgrade() -> None:
    with op.batch_alter_table("webhook_events", schema=None) as batch_op:
        batch_op.drop_index("ix_webhook_events_field")
        batch_op.drop_index("ix_webhook_events_status")
        batch_op.drop_column("duplicates")
        batch_op.drop_column("status")
        batch_op.drop_column("property_name")
