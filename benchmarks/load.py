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
route's p95 over 3 times /healthz's p95.

    .venv/bin/python benchmarks/load.py --rate 50 [--duration 60] [--hosts 2] [--workers 4]

--rate: open loop at a fixed rate through nginx to N hosts (tests/hosts.py) on one
PostgreSQL and Redis: recommendations, the deal page, link clicks, signed webhook batches,
shares and /healthz; each target printed as pass/fail. See docs/load-testing.md.
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

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests.hosts, the farm

from loadgen import cpu, fixed_rate, summary
from loadgen.checks import check_durability
from loadgen.clients import Journal, Workload, as_of_choices, post_share, run_clients
from loadgen.postgres import PrivateCluster, ThrowawayDatabase, free_port
from loadgen.server import Gunicorn, Tokens, app_environment, fill
from loadgen.windows import Window
from sqlalchemy.exc import OperationalError

from enablement.domain.assets import KINDS

DEFAULT_SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
DEFAULT_REDIS = "redis://127.0.0.1:6379/15"
# The fixed-rate mode's webhook signing secret and portal (a throwaway app of its own).
WEBHOOK_SECRET = "load-webhook-secret"  # noqa: S105 (a benchmark's own throwaway signing key)
WEBHOOK_PORTAL = 62515
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
    fixed = p.add_argument_group("fixed rate (open loop) against several hosts behind nginx")
    fixed.add_argument(
        "--rate", type=float, help="requests per second, started on a clock (fixed-rate mode)"
    )
    fixed.add_argument("--duration", type=float, help="seconds of fixed-rate load (default 60)")
    fixed.add_argument("--hosts", type=int, default=2, help="app hosts behind nginx (default 2)")
    args = p.parse_args(argv)
    if args.seconds <= 0 or args.clients < 1 or args.workers < 1:
        p.error("--seconds, --clients and --workers must be positive")
    if args.rate is not None:
        if args.fault:
            p.error("--fault runs in the client mode only (without --rate)")
        if not 0 < args.rate <= 1000 or args.hosts < 1 or (args.duration or 60) <= 0:
            p.error("--rate must be above 0 and at most 1000, --hosts and --duration positive")
        args.duration = args.duration or 60
    elif args.duration is not None:
        p.error("--duration goes with --rate (the client mode's length is --seconds)")
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
    if args.rate is not None:
        return main_fixed_rate(args)
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


def main_fixed_rate(args: argparse.Namespace) -> int:
    """--rate: N hosts behind nginx on one PostgreSQL and Redis, open-loop load, then the checks."""
    from tests.hosts import AppHosts

    logs = Path(tempfile.mkdtemp(prefix="enablement-load-"))
    redis_url = (
        os.environ.get("LOAD_REDIS_URL") or os.environ.get("TEST_REDIS_URL") or DEFAULT_REDIS
    )
    with ExitStack() as cleanup:
        database_url, where, _ = open_database(args, cleanup)
        farm = AppHosts(
            database_url,
            redis_url,
            logs,
            hosts_count=args.hosts,
            workers=args.workers,
            settings={
                "HUBSPOT_CLIENT_SECRET": WEBHOOK_SECRET,
                "HUBSPOT_PORTAL_ID": str(WEBHOOK_PORTAL),
            },
        )
        cleanup.enter_context(farm)
        summary_line, tokens = fill(farm.hosts[0].env, args.deals)
        work = build_workload(farm.proxy_url, tokens)
        journal = Journal()
        seed_links(work, journal)
        run = fixed_rate.Run(
            work,
            journal,
            fixed_rate.sign_in(farm.proxy_url, tokens.sales_team),
            WEBHOOK_SECRET,
            WEBHOOK_PORTAL,
        )
        idle = fixed_rate.idle_healthz(farm.proxy_url)
        print(
            f"load: {args.rate:g} requests/s for {args.duration:g} s, open loop, through nginx to "
            f"{args.hosts} hosts x {args.workers} gunicorn sync workers"
        )
        print(f"database: {where}; Redis {redis_url.rsplit('@', 1)[-1]}; {summary_line}")
        print(f"workload: {len(work.deals)} deals, {len(work.assets)} live assets; logs in {logs}")
        pids = lambda: [(h.server.pid, h.worker_pids()) for h in farm.hosts]  # noqa: E731
        before = [cpu.sample(*p) for p in pids()]
        wall = fixed_rate.drive(run, args.rate, args.duration)
        use = [cpu.usage(b, cpu.sample(*p)) for b, p in zip(before, pids(), strict=True)]
        farm.close()  # every answered write is committed before we look
        return report_fixed_rate(database_url, run, wall, use, idle, logs)


def report_fixed_rate(
    database_url: str, run, wall: float, use: list[dict], idle: float, logs: Path
) -> int:
    """Check the database, print the figures and each target as pass/fail; 0 when all pass."""
    journal = run.journal
    durability = check_durability(database_url, journal, None)
    hooks = fixed_rate.check_webhooks(database_url, run.hooks)
    figures = summary.route_figures(journal.calls, wall)
    ratios = fixed_rate.ratio_targets(figures)
    lags = sorted(run.lags)
    made = sum(f.count for f in figures)
    late = sum(lag > fixed_rate.LATE for lag in lags)

    print(
        f"\nran {wall:.1f} s, {made} requests ({made / wall:.1f}/s); /healthz p95 idle {idle:.1f} ms"
    )
    print(
        f"generator: started late (> {fixed_rate.LATE * 1000:.0f} ms after due) {late}, "
        f"lag p95 {summary.percentile(lags, 95) * 1000:.1f} ms; latencies count from when each request was due\n"
    )
    fixed_rate.print_routes(figures, ratios)
    print()
    server = sum(u["server_cores"] for u in use)
    print(
        f"CPU: gunicorn {server:.2f} cores over {len(use)} hosts, load generator "
        f"{use[0]['generator_cores']:.2f}, machine {use[0]['machine_cores']} cores "
        f"{use[0]['machine_idle_share']:.0%} idle"
    )
    summary.print_durability(durability)
    print(
        f"  webhook events sent: {hooks.sent} in {hooks.deliveries} deliveries ({hooks.resent} delivered again); "
        f"acknowledged {hooks.acknowledged}, stored {hooks.stored}, lost {hooks.lost}, doubled {hooks.doubled}; "
        f"statuses {hooks.statuses or 'none'}"
    )
    problems = Counter()
    for log in logs.glob("host-*gunicorn.log"):
        problems.update(gunicorn_problems(log))
    if problems:
        print(f"gunicorn logs ({logs}):")
        for line, n in problems.most_common(12):
            print(f"  {n} x {line}")

    errors = sum(f.server_errors + f.unavailable + f.no_answer for f in figures)
    writes_wrong = (
        len(durability.missing_shares)
        + durability.keyed_doubles
        + durability.missing_views
        + hooks.lost
        + hooks.doubled
        + hooks.not_applied
    )
    targets = [
        (f"0 5xx or unanswered requests (got {errors})", errors == 0),
        (
            f"0 lost or doubled writes: shares, views, webhook events (got {writes_wrong})",
            writes_wrong == 0,
        ),
    ]
    for route, ratio, target in ratios:
        shown = "n/a" if ratio is None else f"{ratio:.2f}x"
        targets.append(
            (
                f"{route} p95 within {target:g}x /healthz p95 ({shown})",
                ratio is not None and ratio <= target,
            )
        )
    print("\nTargets:")
    for text, ok in targets:
        print(f"  {'pass' if ok else 'FAIL'}  {text}")
    return 0 if all(ok for _, ok in targets) else 1


def run() -> int:
    """main() with set-up failures as one line on stderr (clean-up has already run)."""
    try:
        return main()
    except (RuntimeError, OperationalError, requests.RequestException) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(run())
