"""Table versions: a cheap fingerprint per table that moves on every write, for caches to compare.

A cache records the fingerprints of the tables it read and is reused while they are unchanged,
so no writer has to remember to invalidate anything, writers share no counter row, and a write
to a table a cache does not read leaves that cache alone. Per table, the fingerprint is:

- deals, assets: (row count, newest updated_at). Every insert sets updated_at (a column
  default, so ORM and Core bulk inserts alike) and every ORM or Core update sets it again
  (onupdate); a delete lowers the count; a delete plus an insert adds a newer updated_at.
  Indexed on updated_at, so the max is one index probe.
- stage_changes, link_views: (row count, highest id). Rows are only inserted and deleted, never
  updated. An insert raises the count, a delete lowers it; a delete plus an insert raises the id,
  because ids are never reused: AUTOINCREMENT on SQLite (plain rowids would give the deleted
  highest id again), a sequence on PostgreSQL.
- shares: (row count, newest created_at). Shares are never deleted (their views refer to them);
  the only updates set the link token hash (in the inserting transaction) and the CRM
  write-back state, neither read by any cache, so write-back does not throw caches away.
  created_at is a column default; a delete plus an insert adds a newer one. Indexed on it.
- recommendation_impressions: (row count, newest created_at): rows are only inserted (one per
  recommendation answer), never updated. Indexed on created_at.
- crm_stages, pipelines: a digest of every row and column. The stage map and the pipelines are
  small (hundreds of rows, a few) and have no write timestamp, so their content is the cheapest
  fingerprint that sees every change (a renamed pipeline included).

NOTE: write timestamps come from the writer's clock when it flushes: with several hosts, each
host's clock. An update (not an insert or delete, which move the count) stamped earlier than the
newest stamp, because its host's clock is behind or because its transaction committed after a
newer-stamped one, would leave (count, newest) unchanged. So deals and assets, the tables that
are updated, also carry the sum of the stamps written in the last RECENT_WINDOW to
2 * RECENT_WINDOW by the database's own clock (a range of the updated_at index): any update
whose stamp is within RECENT_WINDOW of the database's clock moves that sum, whatever the order of
commits or the host. The window starts on a multiple of RECENT_WINDOW, so it moves every
RECENT_WINDOW only, and then changes a fingerprint only if a row written 10-20 minutes before
leaves it (one extra rebuild after a quiet write, never a stale cache). What is still missed:
an update stamped more than RECENT_WINDOW before the database's clock (a host that far behind,
or a transaction open that long), until the next write to the table or the cache's maximum age.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from sqlalchemy import Integer, Table, cast, func, literal_column, select
from sqlalchemy.orm import Session

from enablement.db.models import (
    Asset,
    CrmStage,
    Deal,
    LinkView,
    Pipeline,
    RecommendationImpression,
    Share,
    StageChange,
)

# table name -> the column whose maximum, with the row count, fingerprints it (see above).
_NEWEST = {
    Deal.__tablename__: Deal.updated_at,
    Asset.__tablename__: Asset.updated_at,
    StageChange.__tablename__: StageChange.id,
    LinkView.__tablename__: LinkView.id,
    Share.__tablename__: Share.created_at,
    RecommendationImpression.__tablename__: RecommendationImpression.created_at,
}
# Tables whose rows are updated: their fingerprint also sums the recent stamps (see above).
_UPDATED = {Deal.__tablename__, Asset.__tablename__}
RECENT_WINDOW = 600  # seconds; longer than any plausible clock skew or write transaction
# Small tables fingerprinted by their whole content.
_DIGESTED = {
    CrmStage.__tablename__: CrmStage.__table__,
    Pipeline.__tablename__: Pipeline.__table__,
}

TableVersion = tuple[str, int, str | None]


def _table(table) -> Table:
    return table if isinstance(table, Table) else table.__table__


def table_versions(session: Session, tables: Iterable) -> tuple[TableVersion, ...]:
    """(name, row count, newest mark or digest) per table, sorted by name; ValueError if one has none."""
    names = sorted({_table(t).name for t in tables})
    unknown = [n for n in names if n not in _NEWEST and n not in _DIGESTED]
    if unknown:
        raise ValueError(f"no fingerprint is defined for table(s) {', '.join(unknown)}")
    columns = []
    for name in names:
        if name in _NEWEST:
            newest = _NEWEST[name]
            # NOTE: separate scalar subqueries: each uses its engine's fast path (a count of the
            # smallest index, a max read from the end of an index) instead of one joint scan.
            columns += [
                select(func.count()).select_from(newest.table).scalar_subquery(),
                select(func.max(newest)).scalar_subquery(),
            ]
            if name in _UPDATED:
                columns.append(_recent_sum(newest, session.get_bind().dialect.name))
    marks = iter(session.execute(select(*columns)).one() if columns else ())
    versions = []
    for name in names:
        if name in _NEWEST:
            count, newest = next(marks), next(marks)
            mark = newest.isoformat() if hasattr(newest, "isoformat") else newest
            if mark is not None and name in _UPDATED:
                mark = f"{mark}+{next(marks)}"
            elif name in _UPDATED:
                next(marks)
            versions.append((name, int(count), None if mark is None else str(mark)))
        else:
            versions.append((name, *_digest(session, _DIGESTED[name])))
    return tuple(versions)


def _recent_sum(column, dialect: str):
    """The sum of the stamps at or after the window's start, by the database's clock (exact: integers or numeric)."""
    if dialect == "postgresql":
        # NOTE: stamps are naive UTC; now() is converted to the same before comparing.
        start = literal_column(
            f"to_timestamp(floor(extract(epoch from now()) / {RECENT_WINDOW}) * {RECENT_WINDOW}"
            f" - {RECENT_WINDOW}) AT TIME ZONE 'UTC'"
        )
        stamp = func.extract("epoch", column)
    else:
        # SQLite stores 'YYYY-MM-DD HH:MM:SS.ffffff' text: compared as text, summed as whole ms.
        start = literal_column(
            f"datetime(CAST(strftime('%s', 'now') AS INTEGER) / {RECENT_WINDOW} * {RECENT_WINDOW}"
            f" - {RECENT_WINDOW}, 'unixepoch')"
        )
        stamp = cast((func.julianday(column) - 2440587.5) * 86_400_000, Integer)
    return select(func.coalesce(func.sum(stamp), 0)).where(column >= start).scalar_subquery()


def _digest(session: Session, table: Table) -> tuple[int, str]:
    """Row count and a SHA-256 of every row of a small table, in primary-key order."""
    rows = session.execute(select(table).order_by(*table.primary_key.columns)).all()
    digest = hashlib.sha256()
    for row in rows:
        digest.update(repr(tuple(row)).encode())
    return len(rows), digest.hexdigest()


def version_text(versions: tuple[TableVersion, ...]) -> str:
    """The fingerprints as one line of text to store with a cached result."""
    return " ".join(f"{name}:{count}:{mark or '-'}" for name, count, mark in versions)
