"""Recommendations route latency next to /healthz, over real HTTP, at 10,000 assets, 100,000 deals, 1,000,000 shares.

    .venv/bin/python benchmarks/bench_recommendations.py [--assets 10000] [--deals 100000]
        [--shares 1000000] [--requests 1000] [--postgres | --database-url URL]

SQLite (a throwaway file) by default; `--postgres` uses a throwaway database created next to
TEST_DATABASE_URL (default postgresql+psycopg://postgres@127.0.0.1:5432/test). The data are
bulk-inserted with Core; the app is served by a threaded server in this process and asked
over loopback HTTP, alternating one /healthz and one recommendations request (a new
connection each, the same for both), so both see the same machine load. Prints p50/p95 of
each, their ratio (target: recommendations p95 <= 3 x /healthz p95) and the database
statements per recommendation; and the deal view (its shares' buyer views counted
through the link_views index, not by aggregating every view) next to them.
"""

from __future__ import annotations

import argparse
import http.client
import logging
import os
import random
import statistics
import sys
import tempfile
import threading
import time
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import event, insert, text
from werkzeug.serving import make_server

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from enablement import create_app, db
from enablement.config import Settings
from enablement.db.assets import insert_assets
from enablement.db.models import CrmStage, Deal, LinkView, Owner, Pipeline, Share
from enablement.services.tokens import create_token
from tests.databases import throwaway_postgres

STAGES = [
    ("s_aw", "Prospecting", "awareness", False, False),
    ("s_in", "Discovery call", "interest", False, False),
    ("s_ev", "Demo", "evaluation", False, False),
    ("s_cl", "Negotiation", "closing", False, False),
    ("won", "Closed won", None, True, True),
    ("lost", "Closed lost", None, True, False),
]
INDUSTRIES = [f"Industry {n}" for n in range(12)]
PERSONAS = [
    "CFO",
    "CIO",
    "CISO",
    "COO",
    "VP Sales",
    "Head of Procurement",
    "CTO",
    "CMO",
    "CHRO",
    "Legal",
]
TOPICS = [f"topic {n}" for n in range(20)]
KINDS = [
    "article",
    "whitepaper",
    "webinar",
    "case_study",
    "podcast",
    "video",
    "report",
    "framework",
]
AUTHORS = [f"Author{n} Surname{n}" for n in range(40)] + ["Editorial Team"]
CHUNK = 50_000


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0..100) by nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]


def load(engine, n_assets: int, n_deals: int, n_shares: int, seed: int = 11) -> list[str]:
    """Bulk-insert the data set; returns the ids of open deals."""
    rng = random.Random(seed)
    now = datetime.now(UTC)
    t0 = now - timedelta(days=400)
    sessions = db.make_sessions(engine)
    with sessions.begin() as session:
        session.execute(insert(Pipeline), [{"id": "p1", "label": "Sales"}])
        session.execute(
            insert(CrmStage),
            [
                {
                    "pipeline_id": "p1",
                    "id": sid,
                    "label": label,
                    "display_order": i,
                    "buying_stage": stage,
                    "mapping_source": "confirmed",
                    "is_closed": closed,
                    "is_won": won,
                }
                for i, (sid, label, stage, closed, won) in enumerate(STAGES)
            ],
        )
        session.execute(
            insert(Owner), [{"id": f"o{n}", "email": f"rep{n}@example.com"} for n in range(50)]
        )
        assets = []
        for n in range(n_assets):
            stages = rng.sample(
                ["awareness", "interest", "evaluation", "closing"], rng.choice((1, 1, 2))
            )
            series = f"Series {n // 6}" if n % 10 < 6 and n < 600 else None
            assets.append(
                {
                    "id": f"a{n:05d}",
                    "title": f"{rng.choice(('Why', 'How', 'When', 'What'))} {rng.choice(TOPICS)} matters to "
                    f"{rng.choice(PERSONAS)}s in {rng.choice(INDUSTRIES)}, part {n}",
                    "url": f"https://insights.example.com/{n}",
                    "kind": rng.choice(KINDS),
                    "author": rng.choice(AUTHORS),
                    "summary": f"A field guide on {rng.choice(TOPICS)} and {rng.choice(TOPICS)} for "
                    f"{rng.choice(PERSONAS)} teams; lessons from {rng.randrange(5, 80)} buyers.",
                    "topics": rng.sample(TOPICS, 2),
                    "industries": rng.sample(INDUSTRIES, rng.choice((0, 1, 2))),
                    "personas": rng.sample(PERSONAS, rng.choice((1, 2))),
                    "stages": stages,
                    "published_at": now - timedelta(days=rng.randrange(0, 1500)),
                    "status": "approved" if rng.random() < 0.9 else "draft",
                    "series": series,
                    "series_order": (n % 6) + 1 if series else None,
                    "pitch_score": 0.5 if n % 25 == 0 else 0.05,
                    "pitch_flag": n % 25 == 0,
                }
            )
        insert_assets(session, assets)
    open_ids = []
    with sessions.begin() as session:
        for start in range(0, n_deals, CHUNK):
            rows = []
            for n in range(start, min(start + CHUNK, n_deals)):
                stage = rng.choices([s[0] for s in STAGES], weights=(10, 15, 15, 10, 25, 25))[0]
                closed = stage in ("won", "lost")
                created = t0 + timedelta(hours=rng.randrange(0, 9000))
                deal_id = f"d{n:06d}"
                if not closed:
                    open_ids.append(deal_id)
                rows.append(
                    {
                        "id": deal_id,
                        "name": f"Company {n % 7919} {rng.choice(('renewal', 'pilot', 'expansion'))}",
                        "pipeline_id": "p1",
                        "current_stage_id": stage,
                        "amount": float(rng.randrange(1000, 500000)),
                        "industry": rng.choice(INDUSTRIES),
                        "owner_id": f"o{rng.randrange(50)}",
                        "personas": rng.sample(PERSONAS, rng.choice((1, 2))),
                        "topics": rng.sample(TOPICS, rng.choice((1, 2))),
                        "created_at": created,
                        "closed_at": created + timedelta(days=40) if closed else None,
                    }
                )
            session.execute(insert(Deal), rows)
    asset_ids = [a["id"] for a in assets]
    for start in range(0, n_shares, CHUNK):
        with sessions.begin() as session:
            session.execute(
                insert(Share),
                [
                    {
                        "deal_id": f"d{rng.randrange(n_deals):06d}",
                        "asset_id": rng.choice(asset_ids),
                        "shared_at": t0 + timedelta(seconds=n),
                        "source": "import",
                        "created_at": now,
                    }
                    for n in range(start, min(start + CHUNK, n_shares))
                ],
            )
            views = [
                {"share_id": share_id, "viewed_at": now}
                for share_id in range(start + 1, min(start + CHUNK, n_shares) + 1)
                if rng.random() < 0.3
            ]
            if views:
                session.execute(insert(LinkView), views)
    return open_ids


def timed_get(port: int, path: str, headers: dict) -> tuple[float, int]:
    """One GET over a new loopback connection: (seconds, status)."""
    start = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("GET", path, headers=headers)
    response = conn.getresponse()
    response.read()
    conn.close()
    return time.perf_counter() - start, response.status


def main() -> None:
    """Load, serve, measure side by side, print."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--assets", type=int, default=10_000)
    parser.add_argument("--deals", type=int, default=100_000)
    parser.add_argument("--shares", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--postgres", action="store_true")
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp())
    cleanup = ExitStack()
    if args.database_url:
        url = args.database_url
    elif args.postgres:
        base = os.environ.get(
            "TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
        )
        url = cleanup.enter_context(throwaway_postgres(base, "bench_rec", migrate=False))
    else:
        url = f"sqlite:///{tmp / 'bench.db'}"
    settings = Settings(instance_path=tmp, database_url=url, secret_key="bench").with_overrides()  # noqa: S106
    app = create_app(settings, check_schema=False)
    container = app.extensions["enablement"]
    db.upgrade(container.engine)
    start = time.perf_counter()
    open_ids = load(container.engine, args.assets, args.deals, args.shares)
    with container.engine.begin() as conn:
        # Planner statistics after a bulk load, as autovacuum (or `ANALYZE`) leaves them in use.
        conn.execute(text("ANALYZE"))
    print(
        f"{url.split(':')[0]}: {args.assets} assets, {args.deals} deals ({len(open_ids)} open), "
        f"{args.shares} shares loaded in {time.perf_counter() - start:.1f} s"
    )
    token, _ = create_token(container.sessions, "sales", "bench team")
    headers = {"Authorization": f"Bearer {token}"}
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no line per request
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_port
    rng = random.Random(5)
    start = time.perf_counter()
    seconds, status = timed_get(port, f"/api/v1/deals/{open_ids[0]}/recommendations", headers)
    assert status == 200, status
    print(f"first request (prepares the asset index and engagement counts): {seconds:.2f} s")
    # Warm-up: every industry, persona and topic seen once (their fit columns are memoised).
    for deal_id in rng.sample(open_ids, 300):
        timed_get(port, f"/api/v1/deals/{deal_id}/recommendations", headers)
    statements = 0

    def count(*_args):
        nonlocal statements
        statements += 1

    event.listen(container.engine, "before_cursor_execute", count)
    timed_get(port, f"/api/v1/deals/{open_ids[1]}/recommendations?limit=5", headers)
    event.remove(container.engine, "before_cursor_execute", count)
    health, recs, views = [], [], []
    for deal_id in rng.choices(open_ids, k=args.requests):
        seconds, status = timed_get(port, f"/api/v1/deals/{deal_id}", headers)
        assert status == 200, status
        views.append(seconds)
        seconds, status = timed_get(port, "/healthz", {})
        assert status == 200
        health.append(seconds)
        seconds, status = timed_get(
            port, f"/api/v1/deals/{deal_id}/recommendations?limit=5", headers
        )
        assert status == 200, status
        recs.append(seconds)
    server.shutdown()
    h50, h95 = percentile(health, 50) * 1000, percentile(health, 95) * 1000
    r50, r95 = percentile(recs, 50) * 1000, percentile(recs, 95) * 1000
    print(f"requests: {args.requests} of each, alternating, new connection each")
    print(f"/healthz          p50 {h50:7.2f} ms   p95 {h95:7.2f} ms")
    print(
        f"recommendations   p50 {r50:7.2f} ms   p95 {r95:7.2f} ms   (mean {statistics.mean(recs) * 1000:.2f} ms)"
    )
    ratio = r95 / h95
    print(
        f"p95 ratio recommendations / healthz: {ratio:.2f} (target <= 3): {'met' if ratio <= 3 else 'NOT met'}"
    )
    print(f"database statements per recommendation (BEGIN included): {statements}")
    v50, v95 = percentile(views, 50) * 1000, percentile(views, 95) * 1000
    print(
        f"deal view (history, shares with buyer views) p50 {v50:7.2f} ms   p95 {v95:7.2f} ms"
        f"   p95 / healthz p95: {v95 / h95:.2f}"
    )
    container.engine.dispose()
    cleanup.close()


if __name__ == "__main__":
    main()
