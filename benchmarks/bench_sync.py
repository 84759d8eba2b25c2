"""Benchmark: HubSpot full sync at the rate-limit floor (20,000 and 100,000 deals), and the incremental cost.

Full sync, per size: a fake HubSpot in its own process enforces 100 requests per 10 s the
way HubSpot does (counted on arrival, rolling window, 429 past the limit, rate-limit
headers on every answer); the sync runs in another child process into a fresh SQLite
file with the client at HubSpot's default limit (100/10s). Printed: calls and the minimum
the API's page sizes allow, wall time and the floor (minimum calls / 10 per second),
429s received, and peak RSS of the sync itself: ru_maxrss after the sync minus the RSS
measured just before it (after imports, schema and client set-up), plus the absolute peak.

Incremental: a portal of 2,000 deals synced once, then 40 deals change; the calls of the
next incremental run with 0 and with 50,000 archived deals in the portal (in-process fake,
limit lifted: only calls are counted), and what the daily deletion sweep costs.

    .venv/bin/python benchmarks/bench_sync.py                    # 20,000 and 100,000 deals (~5 min)
    .venv/bin/python benchmarks/bench_sync.py --sizes 20000      # ~1 min
    .venv/bin/python benchmarks/bench_sync.py --sizes 3000 --json
    .venv/bin/python benchmarks/bench_sync.py --sizes 20000 --baseline  # + the former pacing, side by side
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
LIMIT = (100, 10.0)  # HubSpot's default: 100 requests per 10 s
INCREMENTAL_DEALS = 2_000
CHANGES = 40


def _rss_mb() -> float:
    """The process's resident set size now, in MB."""
    with open("/proc/self/statm") as handle:
        pages = int(handle.read().split()[1])
    return pages * resource.getpagesize() / 2**20


def _peak_mb() -> float:
    """The process's peak resident set size so far, in MB (ru_maxrss is in KB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _send_clock_limiter(calls: int, period: float):
    """The pacing this benchmark's target replaced, for a side-by-side run: a window of send times, headers ignored."""
    from contextlib import contextmanager

    from integrations.hubspot.ratelimit import RateLimiter

    class SendClock(RateLimiter):
        """Counts each request from when it was sent (HubSpot counts from its arrival)."""

        @contextmanager
        def slot(self):
            """Take a slot stamped with the send time."""
            waited = self._take()
            with self._lock:
                self._in_flight -= 1
                self._answered.append(self._sent[-1])
            yield waited

        def observe(self, headers) -> None:
            """Ignore HubSpot's headers."""

    return SendClock(calls, period)


def run_full(size: int, baseline: bool = False) -> dict:
    """Serve `size` deals from a rate-limited fake process, sync them all into a fresh SQLite file, measure."""
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
            "--rate-limit",
            f"{LIMIT[0]}/{LIMIT[1]:g}",
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
            crm = HubSpotCrm(TOKEN, url, rate_limit=LIMIT)
            if baseline:
                crm.limiter = _send_clock_limiter(*LIMIT)
            before = _rss_mb()
            started = time.perf_counter()
            summary = sync_crm(sessions, crm, full=True)
            elapsed = time.perf_counter() - started
            peak = _peak_mb()
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
    floor = minimum / (LIMIT[0] / LIMIT[1])
    return {
        "deals": size,
        "pacing": "send clock (before)" if baseline else "arrivals + headers",
        "stored": summary.deals.created,
        "api_calls": summary.api_calls,
        "minimum_calls": minimum,
        "calls_ratio": round(summary.api_calls / minimum, 3),
        "seconds": round(elapsed, 1),
        "floor_seconds": round(floor, 1),
        "time_ratio": round(elapsed / floor, 3),
        "rate_limited": summary.rate_limited,
        "retries": summary.retries,
        "sync_rss_mb": round(peak - before, 1),
        "peak_rss_mb": round(peak, 1),
    }


def run_incremental(archived: int) -> dict:
    """Calls of an incremental run after CHANGES changes, with `archived` archived deals in the portal."""
    from datetime import UTC, datetime, timedelta

    from enablement import db
    from enablement.services.sync import sync_crm
    from integrations.hubspot.client import HubSpotCrm
    from tests.integrations.fake_hubspot import (
        TOKEN,
        FakeHubSpot,
        generate_deals,
        standard_portal,
    )

    long_ago = datetime(2024, 1, 1, tzinfo=UTC)
    fake = FakeHubSpot()
    standard_portal(fake)
    generate_deals(fake, INCREMENTAL_DEALS)
    for deal in fake.deals.values():
        deal.modified = long_ago
    url = fake.start()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            engine = db.make_engine(f"sqlite:///{tmp}/bench.db")
            db.upgrade(engine)
            sessions = db.make_sessions(engine)
            crm = HubSpotCrm(TOKEN, url, rate_limit=(1_000_000, 1.0), search_rate=(1_000, 1.0))
            sync_crm(sessions, crm, full=True)
            for i in range(archived):  # deals archived before this run: the portal's archive
                deal_id = 10_000_000 + i
                fake.add_deal(deal_id, [("appointmentscheduled", long_ago)], modified=long_ago)
                fake.deals[deal_id].archived = True
            now = datetime.now(UTC)
            for i in range(1, CHANGES + 1):
                fake.move(i, "closedwon" if i % 2 else "closedlost", now - timedelta(seconds=i))
            incremental = sync_crm(sessions, crm)
            sweep = sync_crm(sessions, crm, sweep=True)
            engine.dispose()
    finally:
        fake.stop()
    return {
        "archived": archived,
        "changed_deals_read": incremental.deals_read,
        "incremental_calls": incremental.api_calls,
        "listing_archive_would_add": math.ceil(archived / 100),
        "sweep_run_calls": sweep.api_calls,
    }


def _child(*args: str) -> dict:
    """Run this script with `args` in a fresh process and return the JSON it prints."""
    out = subprocess.run(
        [sys.executable, __file__, *args], capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    """Run each measurement in a child process and print a table (or JSON lines); 1 when a target is missed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[20_000, 100_000])
    parser.add_argument("--archived", type=int, default=50_000)
    parser.add_argument(
        "--baseline",
        action="store_true",
        help="also run the first size with the former pacing (send times only), side by side",
    )
    parser.add_argument("--full", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--full-baseline", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--incremental", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--json", action="store_true", help="print JSON lines only")
    args = parser.parse_args()
    if args.full:
        print(json.dumps(run_full(args.full)), flush=True)
        return 0
    if args.full_baseline:
        print(json.dumps(run_full(args.full_baseline, baseline=True)), flush=True)
        return 0
    if args.incremental is not None:
        print(json.dumps(run_incremental(args.incremental)), flush=True)
        return 0
    rows = []
    for size in args.sizes:
        rows.append(_child("--full", str(size)))
        if args.json:
            print(json.dumps(rows[-1]), flush=True)
    before = [_child("--full-baseline", str(args.sizes[0]))] if args.baseline else []
    if args.json and before:
        print(json.dumps(before[0]), flush=True)
    increments = []
    for archived in (0, args.archived):
        increments.append(_child("--incremental", str(archived)))
        if args.json:
            print(json.dumps(increments[-1]), flush=True)
    ok = (
        all(
            r["calls_ratio"] <= 1.1
            and r["time_ratio"] <= 1.1
            and r["rate_limited"] == 0
            and r["stored"] == r["deals"]
            for r in rows
        )
        and len({i["incremental_calls"] for i in increments}) == 1
    )
    if args.json:
        return 0 if ok else 1
    print(
        f"HubSpot full sync from a local fake enforcing {LIMIT[0]} requests / {LIMIT[1]:g} s on arrival (SQLite)"
    )
    print(
        f"{'deals':>8} {'calls':>6} {'minimum':>8} {'ratio':>6} {'seconds':>8} {'floor':>7} "
        f"{'ratio':>6} {'429s':>5} {'sync RSS':>9} {'peak RSS':>9}  pacing"
    )
    for r in rows + before:
        print(
            f"{r['deals']:>8,} {r['api_calls']:>6,} {r['minimum_calls']:>8,} {r['calls_ratio']:>6.3f} "
            f"{r['seconds']:>8.1f} {r['floor_seconds']:>7.1f} {r['time_ratio']:>6.3f} "
            f"{r['rate_limited']:>5} {r['sync_rss_mb']:>7.1f}MB {r['peak_rss_mb']:>7.1f}MB"
            f"  {r['pacing']}"
        )
    print(
        "  floor = minimum calls / 10 per s; sync RSS = ru_maxrss after the sync - RSS just before it"
    )
    print(
        f"\nIncremental run after {CHANGES} changes in a portal of {INCREMENTAL_DEALS:,} active deals"
    )
    print(
        f"{'archived':>9} {'read':>5} {'calls':>6} {'listing archive would add':>26} {'with sweep':>11}"
    )
    for i in increments:
        print(
            f"{i['archived']:>9,} {i['changed_deals_read']:>5} {i['incremental_calls']:>6} "
            f"{i['listing_archive_would_add']:>26,} {i['sweep_run_calls']:>11}"
        )
    print(
        "targets (calls and wall time <= 1.1 x, no 429, every deal stored, incremental calls "
        "the same with and without the archive):",
        "met" if ok else "NOT met",
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
