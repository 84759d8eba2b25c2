"""caches fingerprint the tables they read: drop data_version, report_cache.version, indexes

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01 09:00:00

Caches no longer compare hand-bumped counters but fingerprints of the tables they read
(enablement.db.versioning.table_versions). This needs:
- an index on the column each large table's fingerprint takes the maximum of;
- ids that SQLite never reuses in stage_changes and link_views (AUTOINCREMENT; PostgreSQL
  sequences never reuse ids), which SQLite only allows by rebuilding the table;
- report_cache keyed by that fingerprint (cached reports are dropped and recomputed on demand);
- no data_version table.
"""

import sqlalchemy as sa
from alembic import op

import enablement.db.types

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

# NOTE: only tables nothing refers to: rebuilding a referenced table (shares) would trip the
# foreign keys of its children, which SQLite cannot switch off inside the migration's transaction.
AUTOINCREMENT_TABLES = ("stage_changes", "link_views")
INDEXES = (
    ("deals", "ix_deals_updated", "updated_at"),
    ("assets", "ix_assets_updated", "updated_at"),
    ("shares", "ix_shares_created", "created_at"),
)


def _sqlite() -> bool:
    return op.get_bind().dialect.name == "sqlite"


def _rebuild_for_sqlite(autoincrement: bool) -> None:
    """Recreate the append-only tables with or without AUTOINCREMENT (SQLite only)."""
    if not _sqlite():
        return
    for table in AUTOINCREMENT_TABLES:
        with op.batch_alter_table(
            table, recreate="always", table_kwargs={"sqlite_autoincrement": autoincrement}
        ):
            pass


def upgrade() -> None:
    # The cached payloads were valid for the old counters only.
    op.execute("DELETE FROM report_cache")
    with op.batch_alter_table("report_cache", schema=None) as batch_op:
        batch_op.drop_column("data_version")
        batch_op.drop_column("engagement_version")
        batch_op.add_column(sa.Column("version", sa.Text(), nullable=False))
    op.drop_table("data_version")
    for table, name, column in INDEXES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.create_index(name, [column], unique=False)
    _rebuild_for_sqlite(autoincrement=True)


def downgrade() -> None:
    _rebuild_for_sqlite(autoincrement=False)
    for table, name, _ in INDEXES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_index(name)
    op.create_table(
        "data_version",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("updated_at", enablement.db.types.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_data_version")),
    )
    op.execute("DELETE FROM report_cache")
    with op.batch_alter_table("report_cache", schema=None) as batch_op:
        batch_op.drop_column("version")
        batch_op.add_column(sa.Column("data_version", sa.Integer(), nullable=False))
        batch_op.add_column(sa.Column("engagement_version", sa.Integer(), nullable=False))
