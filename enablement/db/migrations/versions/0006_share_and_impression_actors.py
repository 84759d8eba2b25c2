"""who made a share and who asked for a recommendation, as an identity (an actor), not a name

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 10:00:00

shares.actor holds who made a share (owner:<owner id> or token:<token id>, the spellings of
enablement.services.tokens); "mine" and the repeat window read it instead of shared_by, which
stays as people read it. recommendation_impressions.requested_by takes the same spelling.

Existing rows keep their meaning where it can be known:
- an impression made with a token gets that token's actor (exact: token_id is stored);
  one from the app card gets its owner's (it stored the owner id); CLI ones are already cli:...;
- a share made through the API or the demo whose shared_by is an owner id (a token's or the
  owners table's) gets that owner's actor: that owner's tokens listed it as theirs before;
- else a share made through the API whose shared_by is the name of exactly one token not
  bound to an owner gets that token's actor;
- else (file imports, a name several tokens share) the actor stays empty: nobody's "mine".
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_OWNER_SHARES = """
UPDATE shares SET actor = 'owner:' || shared_by
WHERE source IN ('api', 'backfill', 'demo') AND shared_by IS NOT NULL
  AND (shared_by IN (SELECT owner_id FROM api_tokens WHERE owner_id IS NOT NULL)
       OR shared_by IN (SELECT id FROM owners))
"""
# NOTE: an aggregate with HAVING and no GROUP BY yields no row (so NULL) unless exactly one
# unbound token has the name: a name two tokens share stays unattributed, never guessed.
_TOKEN_SHARES = """
UPDATE shares SET actor = (
    SELECT 'token:' || CAST(MIN(t.id) AS VARCHAR(20)) FROM api_tokens t
    WHERE t.owner_id IS NULL AND t.name = shares.shared_by HAVING COUNT(*) = 1
)
WHERE actor IS NULL AND source IN ('api', 'backfill') AND shared_by IS NOT NULL
"""
_TOKEN_IMPRESSIONS = """
UPDATE recommendation_impressions SET requested_by = (
    SELECT CASE WHEN t.owner_id IS NOT NULL THEN 'owner:' || t.owner_id
                ELSE 'token:' || CAST(t.id AS VARCHAR(20)) END
    FROM api_tokens t WHERE t.id = recommendation_impressions.token_id
)
WHERE token_id IS NOT NULL AND token_id IN (SELECT id FROM api_tokens)
"""
_CARD_IMPRESSIONS = """
UPDATE recommendation_impressions SET requested_by = 'owner:' || requested_by
WHERE source = 'hubspot_card' AND token_id IS NULL AND requested_by IS NOT NULL
"""


def upgrade() -> None:
    with op.batch_alter_table("shares", schema=None) as batch_op:
        batch_op.add_column(sa.Column("actor", sa.String(length=255), nullable=True))
    op.execute(_OWNER_SHARES)
    op.execute(_TOKEN_SHARES)
    op.execute(_TOKEN_IMPRESSIONS)
    op.execute(_CARD_IMPRESSIONS)
    with op.batch_alter_table("shares", schema=None) as batch_op:
        batch_op.drop_index("ix_shares_shared_by")
        batch_op.create_index("ix_shares_actor", ["actor", "shared_at"], unique=False)


def downgrade() -> None:
    # The names an impression stored before: an owner id, else the token's name.
    op.execute(
        """
        UPDATE recommendation_impressions SET requested_by = CASE
            WHEN requested_by LIKE 'owner:%' THEN SUBSTR(requested_by, 7)
            ELSE (SELECT t.name FROM api_tokens t WHERE t.id = recommendation_impressions.token_id)
        END
        WHERE requested_by LIKE 'owner:%' OR requested_by LIKE 'token:%'
        """
    )
    with op.batch_alter_table("shares", schema=None) as batch_op:
        batch_op.drop_index("ix_shares_actor")
        batch_op.create_index("ix_shares_shared_by", ["shared_by", "shared_at"], unique=False)
        batch_op.drop_column("actor")
