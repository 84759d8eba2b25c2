"""recommendations: impressions and their items; shares indexed by impression

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23 18:30:00

Every recommendation answer (holdout included) is logged as an impression with the items
it listed, so "recommended, then shared, then opened" can be counted per asset. Shares
already carry impression_id (0001); it gains an index for that join, and one for a rep's own shares.
"""

import sqlalchemy as sa
from alembic import op

import enablement.db.types

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "recommendation_impressions",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("deal_id", sa.String(length=64), nullable=False),
        sa.Column("buying_stage", sa.String(length=16), nullable=True),
        sa.Column("holdout", sa.Boolean(), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("requested_by", sa.String(length=255), nullable=True),
        sa.Column("token_id", sa.Integer(), nullable=True),
        sa.Column("created_at", enablement.db.types.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["deal_id"], ["deals.id"], name=op.f("fk_recommendation_impressions_deal_id_deals")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_recommendation_impressions")),
    )
    with op.batch_alter_table("recommendation_impressions", schema=None) as batch_op:
        batch_op.create_index(
            "ix_recommendation_impressions_deal", ["deal_id", "created_at"], unique=False
        )
        # The report cache's fingerprint of the table takes the newest created_at.
        batch_op.create_index("ix_recommendation_impressions_created", ["created_at"], unique=False)
    op.create_table(
        "recommendation_items",
        sa.Column("impression_id", sa.String(length=32), nullable=False),
        sa.Column("asset_id", sa.String(length=64), nullable=False),
        sa.Column("rank", sa.Integer(), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("exploration", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["impression_id"],
            ["recommendation_impressions.id"],
            name=op.f("fk_recommendation_items_impression_id_recommendation_impressions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("impression_id", "asset_id", name=op.f("pk_recommendation_items")),
    )
    with op.batch_alter_table("recommendation_items", schema=None) as batch_op:
        batch_op.create_index("ix_recommendation_items_asset", ["asset_id"], unique=False)
    with op.batch_alter_table("shares", schema=None) as batch_op:
        batch_op.create_index("ix_shares_impression", ["impression_id"], unique=False)
        batch_op.create_index("ix_shares_shared_by", ["shared_by", "shared_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("shares", schema=None) as batch_op:
        batch_op.drop_index("ix_shares_shared_by")
        batch_op.drop_index("ix_shares_impression")
    with op.batch_alter_table("recommendation_items", schema=None) as batch_op:
        batch_op.drop_index("ix_recommendation_items_asset")
    op.drop_table("recommendation_items")
    with op.batch_alter_table("recommendation_impressions", schema=None) as batch_op:
        batch_op.drop_index("ix_recommendation_impressions_created")
        batch_op.drop_index("ix_recommendation_impressions_deal")
    op.drop_table("recommendation_impressions")
