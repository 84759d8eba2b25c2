"""What it costs a cache to check that its tables are unchanged (table_versions), per check.

    .venv/bin/python benchmarks/bench_cache_check.py [--deals 100000] [--database-url URL]

Fills a throwaway SQLite file (or the given empty database, schema made by the migrations) with
--deals deals, 10 stage changes and 5 shares a deal, a view for every other share and 10,000
assets, then times the fingerprint each cache reads before it answers: the deal search
(deals, stage map), cycle time, effectiveness and coverage (every table). Prints milliseconds
per check, median and slowest of --checks runs after one warm-up. Not timed: filling the data.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import insert

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from enablement import db  # noqa: E402
from enablement.db.models import (  # noqa: E402
    Asset,
    CrmStage,
    Deal,
    LinkView,
    Pipeline,
    Share,
    StageChange,
)
from enablement.db.versioning import table_versions  # noqa: E402
from enablement.services.reports import KINDS, tables_read  # noqa: E402

STAGES = ("s0", "s1", "s2", "s3", "s4", "won", "lost")
CHANGES_PER_DEAL = 10
SHARES_PER_DEAL = 5
ASSETS = 10_000
CHUNK = 20_000
T0 = datetime(2025, 1, 1, tzinfo=UTC)


def _insert(engine, model, rows) -> int:
    """Insert rows (an iterable of dicts) in chunks, each chunk its own transaction."""
    total, chunk = 0, []
    for row in rows:
        chunk.append(row)
        if len(chunk) == CHUNK:
            with engine.begin() as conn:
                conn.execute(insert(model), chunk)
            total, chunk = total + len(chunk), []
    if chunk:
        with engine.begin() as conn:
            conn.execute(insert(model), chunk)
        total += len(chunk)
    return total


def fill(engine, n_deals: int) -> dict[str, int]:
    """Write the synthetic data set; returns rows per table."""
    now = datetime.now(UTC)
    counts = {}
    _insert(engine, Pipeline, [{"id": "p1", "label": "Sales"}])
    counts["crm_stages"] = _insert(
        engine,
        CrmStage,
        (
            {
                "pipeline_id": "p1",
                "id": s,
                "label": s,
                "display_order": i,
                "is_closed": s in ("won", "lost"),
                "is_won": s == "won",
            }
            for i, s in enumerate(STAGES)
        ),
    )
    counts["deals"] = _insert(
        engine,
        Deal,
        (
            {
                "id": f"deal-{i:07d}",
                "name": f"Deal {i}",
                "company": f"Company {i % 997}",
                "pipeline_id": "p1",
                "current_stage_id": STAGES[i % len(STAGES)],
                "owner_id": f"o{i % 40}",
                "created_at": T0 + timedelta(minutes=i),
            }
            for i in range(n_deals)
        ),
    )
    counts["stage_changes"] = _insert(
        engine,
        StageChange,
        (
            {
                "deal_id": f"deal-{i:07d}",
                "pipeline_id": "p1",
                "stage_id": STAGES[k % len(STAGES)],
                "entered_at": T0 + timedelta(minutes=i, hours=k),
            }
            for i in range(n_deals)
            for k in range(CHANGES_PER_DEAL)
        ),
    )
    counts["assets"] = _insert(
        engine,
        Asset,
        (
            {
                "id": f"asset-{a:05d}",
                "title": f"Asset {a}",
                "url": f"https://example.com/{a}",
                "kind": "article",
                "author": "Ada",
                "created_at": now,
                "updated_at": now,
            }
            for a in range(ASSETS)
        ),
    )
    counts["shares"] = _insert(
        engine,
        Share,
        (
            {
                "deal_id": f"deal-{i:07d}",
                "asset_id": f"asset-{(i * 7 + k * 131) % ASSETS:05d}",
                "shared_at": T0 + timedelta(minutes=i, hours=k),
                "source": "demo",
            }
            for i in range(n_deals)
            for k in range(SHARES_PER_DEAL)
        ),
    )
    counts["link_views"] = _insert(
        engine,
        LinkView,
        (
            {"share_id": share_id, "viewed_at": T0 + timedelta(minutes=share_id)}
            for share_id in range(1, counts["shares"] + 1, 2)
        ),
    )
    return counts


def time_checks(sessions, tables, checks: int) -> tuple[float, float, str]:
    """(median, slowest) milliseconds of one fingerprint read after a warm-up read, and the tables."""
    times = []
    with sessions() as session:
        names = ", ".join(name for name, _, _ in table_versions(session, tables))
        for _ in range(checks):
            start = time.perf_counter()
            table_versions(session, tables)
            times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times), max(times), names


def main() -> None:
    """Fill the data, then print the cost of each cache's check."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--deals", type=int, default=100_000)
    parser.add_argument("--checks", type=int, default=20)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp())
    url = args.database_url or f"sqlite:///{tmp / 'bench.db'}"
    engine = db.make_engine(url)
    db.upgrade(engine)
    start = time.perf_counter()
    counts = fill(engine, args.deals)
    sizes = ", ".join(f"{n:,} {t}" for t, n in counts.items())
    print(f"{url.split(':')[0]}: {sizes} (filled in {time.perf_counter() - start:.0f} s)")
    sessions = db.make_sessions(engine)
    caches = {"deal search": (Deal, CrmStage)}
    caches.update({f"report {kind}": tables_read(kind) for kind in sorted(KINDS)})
    for name, tables in caches.items():
        median, slowest, names = time_checks(sessions, tables, args.checks)
        print(f"{name}: {median:.1f} ms per check (slowest {slowest:.1f} ms) [{names}]")
    for table in (Deal, StageChange, Share, LinkView, Asset, CrmStage):
        median, _, _ = time_checks(sessions, (table,), args.checks)
        print(f"  {table.__tablename__}: {median:.2f} ms")
    engine.dispose()


if __name__ == "__main__":
    main()
