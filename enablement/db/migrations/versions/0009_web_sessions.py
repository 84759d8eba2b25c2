"""browser sessions kept on the server (sign-out ends them); asset tag keys by the Unicode-aware rule

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03 18:30:00

web_sessions holds the SHA-256 of each signed-in browser's random session id and its token;
the session cookie names one row, signing out deletes it, and revoking the token ends it.
Cookies issued before this migration name no row, so their holders sign in once more.

asset_tags.value is the compare form of a tag (enablement.domain.tags.tag_key), which now
also applies NFKC, drops format characters and reads mixed-script look-alikes as Latin:
rows stored by the older key (case-folded only) are re-keyed, and rows that now coincide
(one asset's "Café" composed and decomposed) are kept once. ASCII rows never change.
"""

import sqlalchemy as sa
from alembic import op

import enablement.db.types

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def _rekey_asset_tags() -> None:
    from enablement.domain.tags import tag_key

    bind = op.get_bind()
    tags = sa.table(
        "asset_tags", sa.column("asset_id"), sa.column("dimension"), sa.column("value")
    )
    rows = bind.execute(sa.select(tags.c.asset_id, tags.c.dimension, tags.c.value)).all()
    present = {(r.asset_id, r.dimension, r.value) for r in rows}
    for asset_id, dimension, value in sorted(present):
        key = tag_key(value)
        if key == value:
            continue
        where = (
            (tags.c.asset_id == asset_id)
            & (tags.c.dimension == dimension)
            & (tags.c.value == value)
        )
        present.discard((asset_id, dimension, value))
        if (asset_id, dimension, key) in present:
            bind.execute(sa.delete(tags).where(where))
        else:
            bind.execute(sa.update(tags).where(where).values(value=key))
            present.add((asset_id, dimension, key))


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
    _rekey_asset_tags()


def downgrade() -> None:
    with op.batch_alter_table("web_sessions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_web_sessions_token_id"))
    op.drop_table("web_sessions")
