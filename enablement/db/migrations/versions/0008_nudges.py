"""nudges: the pieces prepared when a deal enters a buying stage, and their delivery

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03 18:00:00

One row per (deal, stage entry): its unique key makes preparing and delivering a nudge
idempotent across the webhook, sync and file paths and across workers.
"""

import sqlalchemy as sa
from alembic import op

from enablement.db.types import UTCDateTime

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "nudges",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("deal_id", sa.String(length=64), nullable=False),
        sa.Column("pipeline_id", sa.String(length=64), nullable=False),
        sa.Column("stage_id", sa.String(length=64), nullable=False),
        sa.Column("entered_at", UTCDateTime(), nullable=False),
        sa.Column("buying_stage", sa.String(length=16), nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=True),
        sa.Column("impression_id", sa.String(length=32), nullable=True),
        sa.Column("items", sa.JSON(), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=True),
        sa.Column("crm_object_id", sa.String(length=64), nullable=True),
        sa.Column("webhook_sent_at", UTCDateTime(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("next_attempt_at", UTCDateTime(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("delivered_at", UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["deal_id"], ["deals.id"], name=op.f("fk_nudges_deal_id_deals"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_nudges")),
        sa.UniqueConstraint(
            "deal_id", "pipeline_id", "stage_id", "entered_at", name=op.f("uq_nudges_deal_id")
        ),
    )
    op.create_index("ix_nudges_due", "nudges", ["state", "next_attempt_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_nudges_due", table_name="nudges")
    op.drop_table("nudges")
