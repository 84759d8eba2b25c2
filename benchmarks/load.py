"""`make load`: gunicorn on PostgreSQL under a bounded mixed load, then a durability check.

    .venv/bin/python benchmarks/load.py [--seconds 60] [--clients 180] [--workers 4]
                                        [--fault db-restart]

Without --fault it creates a throwaway database on the server at LOAD_DATABASE_URL or
TEST_DATABASE_URL (default postgresql+psycopg://postgres@127.0.0.1:5432/test) and drops
it at the end. With --fault db-restart it starts a PostgreSQL cluster of its own and
restarts it a third of the way through. It fills the database with `enablement demo`,
serves it with gunicorn, runs C client threads for S seconds (searches, asset lists,
deal views, double-clicked shares, link clicks, reports, /healthz), then checks in the
database that nothing acknowledged is missing or doubled. Exit 1 when a target fails:
a 5xx or no answer outside an outage window, anything lost or doubled, or a read
route's p95 over 3 times /healthz's p95. See docs/load-testing.md.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path

import requests
from loadgen import cpu, summary
from loadgen.checks import check_durability
from loadgen.clients import Journal, Workload, as_of_choices, post_share, run_clients
from loadgen.postgres import PrivateCluster, ThrowawayDatabase, free_port
from loadgen.server import Gunicorn, Tokens, app_environment, fill
from loadgen.windows import Window
from sqlalchemy.exc import OperationalError

from enablement.domain.assets import KINDS

DEFAULT_SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
SEED_SHARES = 20  # shares made before the clock starts, so link clicks have links at once
TAG_FIELDS = {"personas": "persona", "industries": "industry", "topics": "topic"}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line."""
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--seconds", type=float, default=60, help="length of the load (default 60)")
    p.add_argument("--clients", type=int, default=180, help="concurrent clients (default 180)")
    p.add_argument("--workers", type=int, default=4, help="gunicorn workers (default 4)")
    p.add_argument(
        "--fault", choices=["db-restart"], help="restart PostgreSQL a third of the way in"
    )
    p.add_argument("--deals", type=int, default=2000, help="demo deals (default 2000)")
    p.add_argument(
        "--think-ms", type=float, default=50, help="mean pause between a client's requests"
    )
    p.add_argument("--timeout", type=float, default=60, help="seconds a client waits for an answer")
    p.add_argument("--pause", type=float, default=5, help="seconds the database stays down (fault)")
    args = p.parse_args(argv)
    if args.seconds <= 0 or args.clients < 1 or args.workers < 1:
        p.error("--seconds, --clients and --workers must be positive")
    return args


def stop_on_signals() -> None:
    """Turn SIGTERM/SIGHUP into SystemExit so every cleanup in `finally` runs."""

    def _exit(signum, _frame):
        """Leave through the cleanups."""
        raise SystemExit(128 + signum)

    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _exit)


def fetch_pages(base_url: str, path: str, token: str, **params) -> list[dict]:
    """Every item of a paged API list."""
    items, page = [], 1
    while True:
        response = requests.get(
            base_url + path,
            params={**params, "page": page, "per_page": 200},
            headers={"Authorization": f"Bearer {token}"},
            timeout=60,
        )
        response.raise_for_status()
        body = response.json()
        items.extend(body["items"])
        if page * body["per_page"] >= body["total"]:
            return items
        page += 1


def build_workload(base_url: str, tokens: Tokens) -> Workload:
    """Deals, live assets, tag values and search words, read through the API."""
    deals = fetch_pages(base_url, "/api/v1/deals", tokens.sales_team)
    assets = fetch_pages(base_url, "/api/v1/assets", tokens.sales_team, status="live")
    if not deals or not assets:
        raise RuntimeError("the demo data has no deals or no live assets")
    words = {
        w.lower()
        for d in deals
        for w in f"{d['name']} {d.get('company') or ''}".split()
        if len(w) >= 4 and w.isalpha()
    }
    tags = {
        name: sorted({v for a in assets for v in a.get(field) or []})
        for field, name in TAG_FIELDS.items()
    }
    return Workload(
        base_url=base_url,
        deals=[d["id"] for d in deals],
        owner_deals=[d["id"] for d in deals if d.get("owner_id") == tokens.owner_id],
        search_words=sorted(words),
        assets=[a["id"] for a in assets],
        tags=tags,
        kinds=list(KINDS),
        tokens=tokens,
        as_of_values=as_of_choices(datetime.now(UTC)),
    )


def seed_links(work: Workload, journal: Journal) -> None:
    """A few shares before the clock starts (checked like the others, not timed)."""
    for n in range(SEED_SHARES):
        deal = work.deals[n * 37 % len(work.deals)]
        asset = work.assets[n * 11 % len(work.assets)]
        post_share(
            work,
            journal,
            work.tokens.sales_team,
            deal,
            asset,
            f"seed-{n}",
            (10, 60),
            None,
            measured=False,
        )
    if not journal.links:
        raise RuntimeError("no seed share could be made; see the gunicorn log")


class Fault:
    """Restarts the private cluster at a given moment and remembers the outage window."""

    def __init__(self, cluster: PrivateCluster, journal: Journal, at: float, pause: float):
        """at: seconds after the journal's origin."""
        self.cluster, self.journal, self.at, self.pause = cluster, journal, at, pause
        self.window: Window | None = None
        self.error: str | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        """Wait, restart, record."""
        time.sleep(max(0.0, self.at - self.journal.now()))
        try:
            began, ready = self.cluster.restart(self.pause)
        except (RuntimeError, subprocess.TimeoutExpired) as e:  # a failed target, not a crash
            self.error = f"the restart failed: {e}"
            return
        origin = self.journal.origin
        self.window = Window(began - origin, ready - origin)


def route_template(request_line: str) -> str:
    """'GET /l/abc?x=1' as 'GET /l/<token>': ids and tokens out, so lines group (and no token shows)."""
    path = request_line.split("?", 1)[0].strip()
    path = re.sub(r"^(\S+ /l/)\S+", r"\1<token>", path)
    return re.sub(r"^(\S+ /api/v1/(?:deals|assets|tokens))/[^/\s]+", r"\1/<id>", path)


def gunicorn_problems(log: Path) -> Counter[str]:
    """The final exception of each (chained) traceback, and worker timeouts, in gunicorn's log."""
    found: Counter[str] = Counter()
    in_traceback, pending = False, None
    for line in log.read_text(errors="replace").splitlines():
        if "WORKER TIMEOUT" in line:
            found["gunicorn: WORKER TIMEOUT (worker killed)"] += 1
        if "unhandled error on " in line:
            found[
                "app: unhandled error on " + route_template(line.split("unhandled error on ")[1])
            ] += 1
        if line.startswith(("The above exception", "During handling")):
            pending = None  # NOTE: a chained traceback: only its last exception is counted
        elif line.startswith("Traceback (most recent call last)"):
            in_traceback = True
        elif in_traceback and line and not line.startswith((" ", "\t")):
            if pending:
                found[pending] += 1
            pending, in_traceback = line[:200], False
        elif not in_traceback and line and pending and not line.startswith((" ", "\t")):
            found[pending] += 1
            pending = None
    if pending:
        found[pending] += 1
    return found


def print_setup(args, database: str, summary_line: str, work: Workload, logs: Path) -> None:
    """What was loaded and served."""
    fault = (
        f", fault {args.fault} after {args.seconds / 3:.0f} s for {args.pause:g} s"
        if args.fault
        else ""
    )
    print(
        f"load: {args.clients} clients for {args.seconds:g} s on gunicorn with {args.workers} threaded workers{fault}"
    )
    print(f"database: {database}; {summary_line}")
    print(
        f"workload: {len(work.deals)} deals ({len(work.owner_deals)} of the owner-bound token's owner), "
        f"{len(work.assets)} live assets, {len(work.search_words)} search words; logs in {logs}"
    )


def print_cpu(use: dict[str, float], requests_made: int) -> None:
    """Whether the load generator could have been the bottleneck."""
    per_request = use["generator_cpu_s"] / max(requests_made, 1) * 1000
    print(
        f"CPU: load generator {use['generator_cores']:.2f} cores ({per_request:.2f} ms a request), "
        f"gunicorn {use['server_cores']:.2f} cores, machine {use['machine_cores']} cores "
        f"{use['machine_idle_share']:.0%} idle"
    )
    if use["generator_cores"] > 0.5 * use["server_cores"]:
        print(
            "  note: the generator used over half as much CPU as the server: it may limit the load"
        )


def open_database(
    args: argparse.Namespace, cleanup: ExitStack
) -> tuple[str, str, PrivateCluster | None]:
    """A fresh database (on the shared server or a private cluster); returns (url, where, cluster)."""
    cluster = None
    if args.fault:
        cluster = PrivateCluster()
        cleanup.callback(cluster.remove)
        server_url = cluster.start()
        where = f"private cluster on port {cluster.port} (PostgreSQL {cluster.bin.parent.name})"
    else:
        server_url = (
            os.environ.get("LOAD_DATABASE_URL")
            or os.environ.get("TEST_DATABASE_URL")
            or DEFAULT_SERVER
        )
        where = "throwaway database on " + server_url.rsplit("@", 1)[-1]
    database = ThrowawayDatabase(server_url)
    if not cluster:  # a private cluster goes away whole
        cleanup.callback(database.drop)
    return database.create(), where, cluster


def start_app(
    database_url: str, args: argparse.Namespace, logs: Path, cleanup: ExitStack
) -> tuple[Gunicorn, Tokens, str]:
    """Schema, demo data, tokens, then gunicorn answering /healthz; returns it, the tokens, the demo summary."""
    port = free_port()
    env = app_environment(database_url, port, logs)
    summary_line, tokens = fill(env, args.deals)
    server = Gunicorn(env, port, args.workers, logs / "gunicorn.log")
    cleanup.callback(server.stop)
    server.start()
    return server, tokens, summary_line


def drive(
    args: argparse.Namespace,
    server: Gunicorn,
    work: Workload,
    journal: Journal,
    cluster: PrivateCluster | None,
) -> tuple[float, dict[str, float], Fault | None]:
    """Run the clients (and the fault); returns wall seconds, CPU use and the fault."""
    journal.origin = time.monotonic()
    fault = Fault(cluster, journal, args.seconds / 3, args.pause) if cluster else None
    if fault:
        fault.thread.start()
    before = cpu.sample(server.process.pid, server.worker_pids())
    wall = run_clients(
        work, journal, args.clients, args.seconds, args.timeout, args.think_ms / 1000
    )
    use = cpu.usage(before, cpu.sample(server.process.pid, server.worker_pids()))
    if fault:
        fault.thread.join()
    return wall, use, fault


def report(
    database_url: str,
    journal: Journal,
    wall: float,
    use: dict[str, float],
    fault: Fault | None,
    log: Path,
) -> int:
    """Check the database, print every figure and the verdict; 0 when every target holds."""
    outage = fault.window if fault else None
    durability = check_durability(database_url, journal, outage)
    figures = summary.route_figures(journal.calls, wall)
    ratios = summary.p95_ratios(figures)
    windowed = summary.errors_by_window([c for c in journal.calls if c.measured], outage)
    made = sum(f.count for f in figures)

    print(f"\nran {wall:.1f} s, {made} requests\n")
    summary.print_routes(figures, ratios)
    summary.print_report_states(journal.report_states)
    print()
    print_cpu(use, made)
    summary.print_errors(windowed, outage)
    summary.print_durability(durability)
    problems = gunicorn_problems(log)
    if problems:
        print(f"gunicorn log ({log}):")
        for line, n in problems.most_common(12):
            print(f"  {n} x {line}")

    failed = summary.failures(figures, ratios, windowed, durability)
    if fault and (fault.error or fault.window is None):
        failed.append(fault.error or "the database was not restarted")
    print()
    if failed:
        print("FAIL:")
        for reason in failed:
            print(f"  - {reason}")
        return 1
    print(
        "PASS: no server failure outside an outage, nothing lost or doubled, every read p95 <= 3x /healthz"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    """Set up, load, check, print; 0 when every target holds, 1 otherwise."""
    args = parse_args(argv)
    stop_on_signals()
    logs = Path(tempfile.mkdtemp(prefix="enablement-load-"))
    with ExitStack() as cleanup:
        database_url, where, cluster = open_database(args, cleanup)
        server, tokens, summary_line = start_app(database_url, args, logs, cleanup)
        work = build_workload(server.base_url, tokens)
        journal = Journal()
        seed_links(work, journal)
        print_setup(args, where, summary_line, work, logs)
        wall, use, fault = drive(args, server, work, journal, cluster)
        server.stop()  # every answered write is committed before we look
        return report(database_url, journal, wall, use, fault, server.log)


def run() -> int:
    """main() with set-up failures as one line on stderr (clean-up has already run)."""
    try:
        return main()
    except (RuntimeError, OperationalError, requests.RequestException) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(run())
