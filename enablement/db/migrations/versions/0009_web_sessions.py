"""browser sessions kept on the server, so signing out ends a session everywhere

Revision ID: 0009
Revises: 0006
Create Date: 2026-12-03 18:30:00

web_sessions holds the SHA-256 of each signed-in browser's random session id and its token;
the session cookie names one row, signing out deletes it, and revoking the token ends it.
Cookies issued before this migration name no row, so their holders sign in once more.
"""

import sqlalchemy as sa
from alembic import op

import enablement.db.types

revision = "0009"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "web_sessions",
        sa.Column("id_hash", sa.String(length=64), nullable=False),
        sa.Column("token_id", sa.Integer(), nullable=False),
        sa.Column("created_at", enablement.db.types.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["token_id"],
            ["api_tokens.id"],
            name=op.f("fk_web_sessions_token_id_api_tokens"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id_hash", name=op.f("pk_web_sessions")),
    )
    with op.batch_alter_table("web_sessions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_web_sessions_token_id"), ["token_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("web_sessions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_web_sessions_token_id"))
    op.drop_table("web_sessions")
