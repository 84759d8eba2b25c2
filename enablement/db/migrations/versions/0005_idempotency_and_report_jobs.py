"""idempotency keys for writes; report jobs (one computation per report, across workers)

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23 19:00:00

idempotency_keys keeps the first answer of a write per (token, Idempotency-Key) so a repeat
replays it; report_jobs marks a report being computed (owner and heartbeat), so however many
requests or workers ask, it is computed once.
"""

import sqlalchemy as sa
from alembic import op

import enablement.db.types

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "idempotency_keys",
        sa.Column("token_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("request_hash", sa.String(length=64), nullable=False),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.Column("response", sa.JSON(), nullable=False),
        sa.Column("created_at", enablement.db.types.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("token_id", "key", name=op.f("pk_idempotency_keys")),
    )
    with op.batch_alter_table("idempotency_keys", schema=None) as batch_op:
        batch_op.create_index("ix_idempotency_keys_created", ["created_at"], unique=False)
    op.create_table(
        "report_jobs",
        sa.Column("key", sa.String(length=128), nullable=False),
        sa.Column("owner", sa.String(length=128), nullable=False),
        sa.Column("started_at", enablement.db.types.UTCDateTime(), nullable=False),
        sa.Column("heartbeat_at", enablement.db.types.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_report_jobs")),
    )


def downgrade() -> None:
    op.drop_table("report_jobs")
    with op.batch_alter_table("idempotency_keys", schema=None) as batch_op:
        batch_op.drop_index("ix_idempotency_keys_created")
    op.drop_table("idempotency_keys")
