"""Figures for CRM files and deal search at 100,000 deals.

    .venv/bin/python benchmarks/bench_deals.py [--deals 100000] [--database-url URL]

Writes a deals file (5 stage changes a deal), imports it, imports it again (nothing
changes), exports it, then times fuzzy searches through the service and the HTTP route.
Without --database-url it uses a throwaway SQLite file.
"""

from __future__ import annotations

import argparse
import io
import json
import random
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from enablement import create_app, db
from enablement.config import Settings
from enablement.services import crm_exports, transfers
from enablement.services.deals import search_deals
from enablement.services.tokens import create_token

WORDS = (
    "acme globex initech umbrella hooli stark wayne wonka cyberdyne tyrell soylent "
    "massive dynamic aperture vandelay pied piper oscorp gringotts monarch nakatomi"
).split()
KINDS = ("renewal", "expansion", "pilot", "platform", "migration", "rollout", "upgrade")


def deals_file(path: Path, n: int, seed: int = 7) -> None:
    """Write n deals in the import format."""
    rng = random.Random(seed)
    t0 = datetime(2025, 1, 1, tzinfo=UTC)
    stages = ["disc", "demo", "prop", "won"]
    with path.open("w") as out:
        for i in range(n):
            company = f"{rng.choice(WORDS).title()} {rng.choice(WORDS).title()} {i % 997}"
            start = t0 + timedelta(hours=rng.randrange(0, 8000))
            history, at = [], start
            for stage in stages + [rng.choice(stages)]:
                at += timedelta(hours=rng.randrange(1, 400))
                history.append({"stage": stage, "entered_at": at.isoformat()})
            record = {
                "id": f"deal-{i:06d}",
                "name": f"{company} {rng.choice(KINDS)}",
                "company": company,
                "pipeline": "p1",
                "amount": float(rng.randrange(1000, 500000)),
                "created_at": start.isoformat(),
                "owner_id": f"o{rng.randrange(40)}",
                "personas": [],
                "topics": [],
                "stage_history": history,
            }
            out.write(json.dumps(record) + "\n")


PIPELINE = {
    "id": "p1",
    "label": "Sales",
    "stages": [
        {"id": "disc", "label": "Discovery", "display_order": 0, "probability": 0.2},
        {"id": "demo", "label": "Demo", "display_order": 1, "probability": 0.5},
        {"id": "prop", "label": "Proposal sent", "display_order": 2, "probability": 0.8},
        {
            "id": "won",
            "label": "Closed won",
            "display_order": 3,
            "probability": 1.0,
            "is_closed": True,
            "is_won": True,
        },
    ],
}


def timed(label: str, fn):
    """Run fn once, print and return (result, seconds)."""
    start = time.perf_counter()
    result = fn()
    seconds = time.perf_counter() - start
    print(f"{label}: {seconds:.2f} s")
    return result, seconds


def main() -> None:
    """Run the figures."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--deals", type=int, default=100_000)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp())
    url = args.database_url or f"sqlite:///{tmp / 'bench.db'}"
    settings = Settings(instance_path=tmp, database_url=url, secret_key="bench").with_overrides()  # noqa: S106
    app = create_app(settings, check_schema=False)
    container = app.extensions["enablement"]
    db.upgrade(container.engine)
    path = tmp / "deals.jsonl"
    deals_file(path, args.deals)
    print(f"{args.deals} deals, file {path.stat().st_size / 1e6:.1f} MB, {url.split(':')[0]}")
    transfers.import_pipelines(
        container.sessions,
        container.settings,
        io.BytesIO(json.dumps(PIPELINE).encode()),
        "jsonl",
        False,
    )
    with path.open("rb") as f:
        result, _ = timed(
            "import deals",
            lambda: transfers.import_deals(
                container.sessions, container.settings, f, "jsonl", False
            ),
        )
    print(f"  created {result.created}, errors {len(result.errors)}")
    with path.open("rb") as f:
        result, _ = timed(
            "re-import (unchanged)",
            lambda: transfers.import_deals(
                container.sessions, container.settings, f, "jsonl", False
            ),
        )
    print(f"  unchanged {result.unchanged}")
    timed(
        "export deals",
        lambda: crm_exports.export_deals(
            container.sessions, container.settings, io.StringIO(), "jsonl"
        ),
    )
    queries = ["globex renewal", "umbrela pilot", "stark", "wayne wonka 12", "piper migraton"]
    timed(
        "first search (builds the candidate cache)",
        lambda: search_deals(container.sessions, q="acme", per_page=20),
    )
    times = []
    for q in queries:
        start = time.perf_counter()
        page = search_deals(container.sessions, q=q, per_page=20)
        times.append(time.perf_counter() - start)
        print(f"  search {q!r}: {times[-1] * 1000:.0f} ms, {page['total']} matches")
    print(f"search (service) median: {statistics.median(times) * 1000:.0f} ms")
    token, _ = create_token(container.sessions, "sales", "bench")
    client = app.test_client()
    headers = {"Authorization": f"Bearer {token}"}
    http = []
    for q in queries:
        start = time.perf_counter()
        response = client.get("/api/v1/deals", query_string={"q": q}, headers=headers)
        http.append(time.perf_counter() - start)
        assert response.status_code == 200
    print(f"search (HTTP) median: {statistics.median(http) * 1000:.0f} ms")
    start = time.perf_counter()
    client.get("/api/v1/deals?stage=closing&owner_id=o3", headers=headers)
    print(f"filtered list without q: {(time.perf_counter() - start) * 1000:.0f} ms")
    container.engine.dispose()


if __name__ == "__main__":
    main()
