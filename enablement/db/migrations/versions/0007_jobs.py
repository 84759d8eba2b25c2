"""background work on a job engine: one jobs table replaces report_jobs

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03 18:00:00

Every piece of background work (reports, webhook follow-ups, scheduled syncs, spooled link
views) is a row of jobs, one per key: queued, running, succeeded or failed, with its attempts
and last error. report_jobs (a report being computed and its heartbeat) held only reports in
flight, so nothing in it outlives the upgrade: a report asked for again is queued again.
"""

import sqlalchemy as sa
from alembic import op

import enablement.db.types

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "jobs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("max_attempts", sa.Integer(), nullable=False),
        sa.Column("run_after", enablement.db.types.UTCDateTime(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("owner", sa.String(length=128), nullable=True),
        sa.Column("heartbeat_at", enablement.db.types.UTCDateTime(), nullable=True),
        sa.Column("created_at", enablement.db.types.UTCDateTime(), nullable=False),
        sa.Column("updated_at", enablement.db.types.UTCDateTime(), nullable=False),
        sa.Column("finished_at", enablement.db.types.UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_jobs")),
        sa.UniqueConstraint("key", name=op.f("uq_jobs_key")),
    )
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.create_index("ix_jobs_state_run_after", ["state", "run_after"], unique=False)
    op.drop_table("report_jobs")


def downgrade() -> None:
    op.create_table(
        "report_jobs",
        sa.Column("key", sa.String(length=128), nullable=False),
        sa.Column("owner", sa.String(length=128), nullable=False),
        sa.Column("started_at", enablement.db.types.UTCDateTime(), nullable=False),
        sa.Column("heartbeat_at", enablement.db.types.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_report_jobs")),
    )
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_index("ix_jobs_state_run_after")
    op.drop_table("jobs")
