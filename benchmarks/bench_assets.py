"""Benchmark: the asset library at its target size (10,000 assets).

Prints seconds for: importing 10,000 assets into an empty library (validation, pitch
scores, tag index, near-duplicate check included), re-importing the same file (all
unchanged), a filtered list page, a text search, one create checked for near-duplicates
against the 10,000, a CSV export, 10,000 more that all share one title, and the
near-duplicate matcher alone for 10,000 new titles against 10,000, for 10,000 copies of
one title and for 10,000 distinct titles that all look alike (the hostile cases: the
work and the warnings must grow linearly, not with the square of the import).

    .venv/bin/python benchmarks/bench_assets.py                 # SQLite in a temporary folder
    .venv/bin/python benchmarks/bench_assets.py --size 2000     # quicker
    BENCH_DATABASE_URL=postgresql+psycopg://... .venv/bin/python benchmarks/bench_assets.py
      (an empty, throwaway database: the benchmark migrates it and fills it)
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import secrets
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def records(size: int, seed: int = 1) -> list[dict]:
    """`size` valid asset records with random seven-word titles."""
    rng = random.Random(seed)
    words = [f"word{i}" for i in range(5000)]
    stages = ["awareness", "interest", "evaluation", "closing"]
    kinds = ["article", "webinar", "framework", "roadmap", "case_study"]
    return [
        {
            "title": " ".join(rng.choice(words) for _ in range(7)),
            "url": f"https://insights.example.com/p/{i}",
            "kind": rng.choice(kinds),
            "author": "Grace Hopper",
            "summary": "A point of view on buying committees. " * 3,
            "topics": ["ai adoption", "procurement"],
            "industries": [rng.choice(["Retail", "Manufacturing", "Finance"])],
            "personas": [rng.choice(["CFO", "CTO", "Head of Procurement"])],
            "stages": [rng.choice(stages)],
            "published_at": "2025-01-01T00:00:00Z",
        }
        for i in range(size)
    ]


def timed(label: str, fn):
    """Run fn, print its duration, return its result."""
    started = time.perf_counter()
    result = fn()
    print(f"{label:<52} {time.perf_counter() - started:7.2f} s", flush=True)
    return result


def main() -> int:
    """Fill a fresh database and time each use case."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, default=10_000)
    size = parser.parse_args().size

    from enablement import create_app, db
    from enablement.config import Settings
    from enablement.domain.assets import DuplicateCandidate, find_near_duplicates
    from enablement.services import asset_imports, assets

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
        data = "".join(json.dumps(r) + "\n" for r in records(size)).encode()
        with app.app_context():
            first = timed(
                f"import {size} assets (empty library)",
                lambda: asset_imports.import_assets(
                    container.sessions, container.settings, io.BytesIO(data), "jsonl", False
                ),
            )
            again = timed(
                "re-import the same file",
                lambda: asset_imports.import_assets(
                    container.sessions, container.settings, io.BytesIO(data), "jsonl", False
                ),
            )
            assert first.created == size and again.unchanged == size, (first, again)
            timed(
                "list: stage=evaluation&persona=cfo, 200 a page",
                lambda: assets.list_assets(
                    container.sessions, stage="evaluation", persona="cfo", per_page=200
                ),
            )
            timed("list: q=word42", lambda: assets.list_assets(container.sessions, q="word42"))
            created = timed(
                f"create one, near-duplicate check against {size}",
                lambda: assets.create_asset(
                    container.sessions,
                    container.settings,
                    {
                        "title": records(size)[5]["title"],
                        "url": "https://elsewhere.example.com/x",
                        "kind": "video",
                        "author": "Ada Lovelace",
                    },
                ),
            )
            assert created["warnings"], "the copied title should be reported"
            timed(
                "export CSV",
                lambda: asset_imports.export_assets(
                    container.sessions, container.settings, io.StringIO(), "csv"
                ),
            )
            same = [
                {**r, "title": "One title for every asset", "url": r["url"] + "/copy"}
                for r in records(size, seed=3)
            ]
            data = "".join(json.dumps(r) + "\n" for r in same).encode()
            copied = timed(
                f"import {size} more, all with one title",
                lambda: asset_imports.import_assets(
                    container.sessions, container.settings, io.BytesIO(data), "jsonl", False
                ),
            )
            assert copied.created == size, copied
            print(f"{'  near-duplicate warnings':<52} {len(copied.warnings):7d}")
        app.extensions["enablement"].engine.dispose()
    existing = [
        DuplicateCandidate(f"e{i}", r["title"], r["url"]) for i, r in enumerate(records(size))
    ]
    new = [
        DuplicateCandidate(f"n{i}", r["title"], r["url"] + "?n")
        for i, r in enumerate(records(size, seed=2))
    ]
    timed(
        f"near-duplicate matcher alone: {size} new vs {size}",
        lambda: find_near_duplicates(new, existing),
    )
    # Hostile titles: one title for every asset, and titles that all look alike.
    same = [
        DuplicateCandidate(f"s{i}", "One title for all", f"https://x.example/{i}")
        for i in range(size)
    ]
    warnings = timed(
        f"near-duplicate matcher: {size} new, all the same title",
        lambda: find_near_duplicates(same, []),
    )
    print(f"{'  warnings (one per copy)':<52} {len(warnings):7d}")
    alike = [
        DuplicateCandidate(
            f"l{i}",
            f"The buyer's guide to committees edition {_letters(i)}",
            f"https://y.example/{i}",
        )
        for i in range(size)
    ]
    warnings = timed(
        f"near-duplicate matcher: {size} new, all alike, distinct",
        lambda: find_near_duplicates(alike, []),
    )
    print(f"{'  warnings (at most 3 similar per asset)':<52} {len(warnings):7d}")
    return 0


def _letters(n: int) -> str:
    """n written in letters (a, b, ..., ba, bb, ...): distinct titles without numbers."""
    out = ""
    while True:
        out = chr(ord("a") + n % 26) + out
        n //= 26
        if not n:
            return out


if __name__ == "__main__":
    sys.exit(main())
