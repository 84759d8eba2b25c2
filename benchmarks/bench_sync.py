"""Benchmark: a full HubSpot sync of 20,000 and 100,000 deals from a local fake HubSpot.

Prints, per size: API calls used versus the minimum the API's page sizes allow (ratio),
deals per second, and the sync process's peak RSS. Each size runs in its own process (so
peak memory is that run's) against a fake served by another process over loopback HTTP.

    .venv/bin/python benchmarks/bench_sync.py                 # 20,000 and 100,000 deals
    .venv/bin/python benchmarks/bench_sync.py --sizes 5000    # quicker

The client's rate limit is lifted for the benchmark (HubSpot's 100 requests / 10 s would
make any run last calls / 10 seconds: 2,000 calls, 200 s, for 100,000 deals).
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

ARCHIVED_EVERY = 20  # one deal in 20 is archived (marked deleted, history kept)
OWNERS = 4  # the fake portal's owners: 3 active, 1 archived (one page each)


def run_one(size: int) -> dict:
    """Serve `size` deals from a fake, sync them all into a fresh SQLite file, measure."""
    from enablement import db
    from enablement.services.sync import sync_crm
    from integrations.hubspot.client import HubSpotCrm
    from tests.integrations.fake_hubspot import TOKEN

    fake = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "tests/integrations/fake_hubspot.py"),
            "--deals",
            str(size),
            "--archived-every",
            str(ARCHIVED_EVERY),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        url = fake.stdout.readline().strip()
        with tempfile.TemporaryDirectory() as tmp:
            engine = db.make_engine(f"sqlite:///{tmp}/bench.db")
            db.upgrade(engine)
            sessions = db.make_sessions(engine)
            crm = HubSpotCrm(TOKEN, url, rate_limit=(1_000_000, 1.0))
            started = time.perf_counter()
            summary = sync_crm(sessions, crm, full=True)
            elapsed = time.perf_counter() - started
            engine.dispose()
    finally:
        fake.terminate()
        fake.wait(10)
    archived = size // ARCHIVED_EVERY
    minimum = (
        1
        + 2 * math.ceil(OWNERS / 500)
        + math.ceil((size - archived) / 50)
        + math.ceil(archived / 50)
    )
    return {
        "deals": size,
        "stored": summary.deals.created,
        "stage_changes": summary.deals.stage_changes_added,
        "api_calls": summary.api_calls,
        "minimum_calls": minimum,
        "ratio": round(summary.api_calls / minimum, 3),
        "seconds": round(elapsed, 1),
        "deals_per_second": round(size / elapsed),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def main() -> None:
    """Run each size in a child process and print a table (or JSON lines); exit 1 when a target is missed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[20_000, 100_000])
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--json", action="store_true", help="print JSON lines only")
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_one(args.one)), flush=True)
        return
    rows = []
    for size in args.sizes:
        out = subprocess.run(
            [sys.executable, __file__, "--one", str(size)],
            capture_output=True,
            text=True,
            check=True,
        )
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
        if args.json:
            print(json.dumps(rows[-1]), flush=True)
    if args.json:
        return
    print("HubSpot full sync from a local fake (SQLite, rate limit lifted)")
    print(
        f"{'deals':>8} {'calls':>6} {'minimum':>8} {'ratio':>6} {'deals/s':>8} {'seconds':>8} {'peak RSS':>9}"
    )
    for r in rows:
        print(
            f"{r['deals']:>8,} {r['api_calls']:>6,} {r['minimum_calls']:>8,} {r['ratio']:>6.3f} "
            f"{r['deals_per_second']:>8,} {r['seconds']:>8.1f} {r['peak_rss_mb']:>7.1f}MB"
        )
    ok = all(
        r["ratio"] <= 1.1 and r["peak_rss_mb"] < 300 and r["stored"] == r["deals"] for r in rows
    )
    print(
        "targets (ratio <= 1.1, peak RSS < 300 MB, every deal stored):", "met" if ok else "NOT met"
    )


if __name__ == "__main__":
    main()
