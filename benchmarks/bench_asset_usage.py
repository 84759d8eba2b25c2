"""Benchmark: share and view counts on the asset list, at the target size.

The asset list and the asset view carry `share_count` and `view_count`. This fills a
library of 10,000 assets with 1,000,000 shares and 1,000,000 buyer views (skewed: a few
assets get most of them), then times, side by side, a list page with its counts and the
counting alone, for pages of 50 and 200 and for the single most shared asset.

    .venv/bin/python benchmarks/bench_asset_usage.py                      # SQLite in a temporary folder
    .venv/bin/python benchmarks/bench_asset_usage.py --shares 200000      # quicker
    BENCH_DATABASE_URL=postgresql+psycopg://... .venv/bin/python benchmarks/bench_asset_usage.py
      (an empty, throwaway database: the benchmark migrates it and fills it)
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import secrets
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

ASSETS = 10_000
DEALS = 10_000
BATCH = 20_000


def median_seconds(fn, repeat: int = 7) -> float:
    """Median wall time of fn over `repeat` runs (after one warm-up run)."""
    fn()
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def fill(container, shares: int) -> str:
    """Store assets, deals, shares and views; return the id of the most shared asset."""
    from sqlalchemy import insert

    from enablement.db.models import Deal, LinkView, Pipeline, Share
    from enablement.services import asset_imports

    lines = "".join(
        json.dumps(
            {
                "id": f"a{i:05d}",
                "title": f"Field notes {i}",
                "url": f"https://insights.example.com/n/{i}",
                "kind": "article",
                "author": "Grace Hopper",
                "stages": ["evaluation"],
            }
        )
        + "\n"
        for i in range(ASSETS)
    ).encode()
    asset_imports.import_assets(
        container.sessions, container.settings, io.BytesIO(lines), "jsonl", False
    )
    rng = random.Random(5)
    start = datetime(2025, 1, 1, tzinfo=UTC)
    # NOTE: a Pareto draw makes a few assets very popular, as sharing is in practice.
    weights = [1 / (i + 1) ** 0.8 for i in range(ASSETS)]
    with container.sessions.begin() as session:
        session.execute(insert(Pipeline), [{"id": "p", "label": "Sales"}])
        session.execute(
            insert(Deal),
            [
                {"id": f"d{i:05d}", "name": f"Deal {i}", "pipeline_id": "p", "created_at": start}
                for i in range(DEALS)
            ],
        )
    counts: dict[str, int] = {}
    share_id = 0
    for first in range(0, shares, BATCH):
        n = min(BATCH, shares - first)
        picks = rng.choices(range(ASSETS), weights, k=n)
        rows, views = [], []
        for offset, asset in enumerate(picks):
            share_id += 1
            asset_id = f"a{asset:05d}"
            counts[asset_id] = counts.get(asset_id, 0) + 1
            shared_at = start + timedelta(seconds=first + offset)
            rows.append(
                {
                    "id": share_id,
                    "deal_id": f"d{rng.randrange(DEALS):05d}",
                    "asset_id": asset_id,
                    "shared_at": shared_at,
                    "source": "import",
                    "created_at": shared_at,
                }
            )
            views.append({"share_id": share_id, "viewed_at": shared_at + timedelta(hours=1)})
        with container.sessions.begin() as session:
            session.execute(insert(Share), rows)
            session.execute(insert(LinkView), views)
    return max(counts, key=counts.get)


def main() -> int:
    """Fill a fresh database and time the counted list against the counting alone."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--shares", type=int, default=1_000_000)
    shares = parser.parse_args().shares

    from enablement import create_app, db
    from enablement.config import Settings
    from enablement.services import assets

    with tempfile.TemporaryDirectory() as tmp:
        url = os.environ.get("BENCH_DATABASE_URL") or f"sqlite:///{tmp}/bench.db"
        engine = db.make_engine(url)
        db.upgrade(engine)
        engine.dispose()
        app = create_app(
            Settings(
                instance_path=Path(tmp), database_url=url, secret_key=secrets.token_hex(16)
            ).with_overrides()
        )
        container = app.extensions["enablement"]
        started = time.perf_counter()
        top = fill(container, shares)
        print(
            f"filled {ASSETS} assets, {shares} shares, {shares} views in "
            f"{time.perf_counter() - started:.1f} s ({url.split(':')[0]})"
        )
        print(f"{'case':<40} {'page ms':>9} {'counting ms':>12} {'counting share':>15}")
        for per_page in (50, 200):
            page = assets.list_assets(container.sessions, per_page=per_page)
            ids = [item["id"] for item in page["items"]]
            total = median_seconds(
                lambda n=per_page: assets.list_assets(container.sessions, per_page=n)
            )
            with container.sessions() as session:
                counting = median_seconds(lambda ids=ids: assets.usage_counts(session, ids))
            print(
                f"{f'list, {per_page} a page':<40} {total * 1000:9.1f} {counting * 1000:12.1f} "
                f"{counting / total:15.2f}"
            )
        detail = median_seconds(lambda: assets.get_asset(container.sessions, top))
        with container.sessions() as session:
            counting = median_seconds(lambda: assets.usage_counts(session, [top]))
        shown = assets.get_asset(container.sessions, top)
        print(
            f"{'one asset, the most shared':<40} {detail * 1000:9.1f} {counting * 1000:12.1f} "
            f"{counting / detail:15.2f}"
        )
        print(f"  (that asset: {shown['share_count']} shares, {shown['view_count']} views)")
        container.engine.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
