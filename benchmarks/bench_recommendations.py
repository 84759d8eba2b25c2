"""The paths a rep waits on, next to /healthz, over real HTTP to gunicorn, at full size.

    .venv/bin/python benchmarks/bench_recommendations.py [--assets 10000] [--deals 100000]
        [--shares 1000000] [--requests 300] [--engines sqlite,postgres] [--rates 30,60]
        [--rate-seconds 20] [--workers 2] [--profile] [--database-url URL]

For each engine (SQLite: a throwaway file; PostgreSQL: a throwaway database next to
TEST_DATABASE_URL, default postgresql+psycopg://postgres@127.0.0.1:5432/test, skipped when
it does not answer) it bulk-loads the data (tests/scale_data.py), then:

1. counts the statements per request of each route in this process (a cursor event on the
   engine, BEGIN included) and, with --profile, prints each route's top cProfile entries;
2. starts gunicorn as in production (`-c python:enablement.serving`, --workers processes
   of 16 threads; each worker warms its caches before it accepts a connection) and times
   the first ten recommendations after the start;
3. asks each route --requests times, one request at a time, alternating routes (a new
   connection each, the same for all, so all see the same machine load): p50/p95 per route
   beside /healthz's p95 from the same run, and the ratio;
4. at each fixed rate (open loop: requests are due every 1/rate s whatever the answers take;
   a latency counts from when the request was due), a mix of all routes for --rate-seconds.

Targets (printed met / NOT met): recommendations and the deal page within 2x /healthz p95
one at a time and 3x at 60 requests/s; shares, link redirects and 100-event webhook
batches within 3x at 60 requests/s; the first request after start no slower than the tenth.
"""

from __future__ import annotations

import argparse
import cProfile
import http.client
import io
import json
import logging
import os
import pstats
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import event  # noqa: E402

from enablement import create_app, db  # noqa: E402
from enablement.config import Settings  # noqa: E402
from enablement.services.tokens import create_token  # noqa: E402
from integrations.hubspot.signatures import sign_v3  # noqa: E402
from tests.databases import throwaway_postgres  # noqa: E402
from tests.scale_data import analyze, load_scale  # noqa: E402

SECRET = "bench-secret-key-0123456789"  # noqa: S105
CLIENT_SECRET = "bench-hubspot-client-secret"  # noqa: S105
PORTAL = "4242"
BROWSER = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/126.0 Safari/537.36"
ROUTES = ("recommendations", "deal_view", "deal_page", "share", "link", "webhook_100")
# Routes and their targets: (one at a time, at 60/s) as a multiple of /healthz p95.
TARGETS = {
    "recommendations": (2.0, 3.0),
    "deal_page": (2.0, 3.0),
    "deal_view": (None, 3.0),
    "share": (None, 3.0),
    "link": (None, 3.0),
    "webhook_100": (None, 3.0),
}
# The fixed-rate mix (relative weights), as in benchmarks/loadgen/fixed_rate.py.
MIX = {
    "healthz": 20,
    "recommendations": 20,
    "deal_page": 15,
    "deal_view": 5,
    "link": 20,
    "share": 12,
    "webhook_100": 3,
}


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0..100) by nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]


class Workload:
    """What the requests address, and how each route is asked (status expected, or None)."""

    def __init__(self, loaded, token: str, cookie: str, base_url: str):
        self.loaded = loaded
        self.token = token
        self.cookie = cookie
        self.base_url = base_url
        self.rng = random.Random(5)
        self.lock = threading.Lock()
        self.event_id = 0
        self.subscription = random.SystemRandom().randrange(10**6, 10**7)

    def pick(self, seq):
        with self.lock:
            return self.rng.choice(seq)

    def request(self, route: str) -> tuple[str, str, bytes | None, dict, int]:
        """(method, path, body, headers, expected status) of one request of the route."""
        auth = {"Authorization": f"Bearer {self.token}"}
        if route == "healthz":
            return "GET", "/healthz", None, {}, 200
        deal = self.pick(self.loaded.open_deals)
        if route == "recommendations":
            return "GET", f"/api/v1/deals/{deal}/recommendations?limit=5", None, auth, 200
        if route == "deal_view":
            return "GET", f"/api/v1/deals/{deal}", None, auth, 200
        if route == "deal_page":
            headers = {"Cookie": self.cookie, "Accept": "text/html"}
            return "GET", f"/deals/{deal}", None, headers, 200
        if route == "share":
            body = json.dumps({"asset_id": self.pick(self.loaded.assets)}).encode()
            headers = {
                **auth,
                "Content-Type": "application/json",
                "Idempotency-Key": uuid.uuid4().hex,
            }
            # NOTE: a repeat of a pair within 10 minutes is the same share (200), by design.
            return "POST", f"/api/v1/deals/{deal}/shares", body, headers, (200, 201)
        if route == "link":
            return (
                "GET",
                f"/l/{self.pick(self.loaded.link_tokens)}",
                None,
                {"User-Agent": BROWSER},
                302,
            )
        if route == "webhook_100":
            return self._webhook()
        raise ValueError(route)

    def _webhook(self):
        now = int(time.time() * 1000)
        events = []
        for _ in range(100):
            with self.lock:
                self.event_id += 1
                event_id = self.event_id
            events.append(
                {
                    "eventId": event_id,
                    "subscriptionId": self.subscription,
                    "portalId": int(PORTAL),
                    "occurredAt": now,
                    "subscriptionType": "deal.propertyChange",
                    "objectId": int(self.pick(self.loaded.open_deals)),
                    "propertyName": "amount",
                    "propertyValue": str(self.pick(range(1_000, 900_000))),
                    "attemptNumber": 0,
                }
            )
        body = json.dumps(events).encode()
        stamp = str(now)
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "HubSpot Connect 2.0 (http://dev.hubspot.com/)",
            "X-HubSpot-Signature-v3": sign_v3(
                CLIENT_SECRET, "POST", self.base_url + "/webhooks/hubspot", body, stamp
            ),
            "X-HubSpot-Request-Timestamp": stamp,
        }
        return "POST", "/webhooks/hubspot", body, headers, 200


def _expected(expected) -> tuple:
    return expected if isinstance(expected, tuple) else (expected,)


def send(port: int, method: str, path: str, body, headers) -> tuple[float, int]:
    """One request over a new loopback connection: (seconds, status)."""
    start = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    conn.request(method, path, body=body, headers=headers)
    response = conn.getresponse()
    response.read()
    conn.close()
    return time.perf_counter() - start, response.status


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# Tables that grow with assets, deals or shares: a full scan of one of them is a finding.
GROWING = (
    "assets",
    "asset_tags",
    "deals",
    "shares",
    "link_views",
    "stage_changes",
    "recommendation_impressions",
    "recommendation_items",
    "webhook_events",
    "deal_events",
    "idempotency_keys",
)


def print_plans(engine, route: str, statements: list[tuple]) -> None:
    """The database's plan of each statement the route sent; a line for every full scan."""
    postgresql = engine.dialect.name == "postgresql"
    scans = []
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        for statement, parameters in statements:
            if (
                not statement.lstrip()
                .upper()
                .startswith(("SELECT", "WITH", "UPDATE", "INSERT", "DELETE"))
            ):
                continue
            if (
                statement.lstrip().upper().startswith("INSERT")
                and " SELECT " not in statement.upper()
            ):
                continue  # a plain INSERT ... VALUES has no plan to speak of
            prefix = "EXPLAIN " if postgresql else "EXPLAIN QUERY PLAN "
            cursor.execute(prefix + statement, parameters)
            plan = [" ".join(str(c) for c in row) for row in cursor.fetchall()]
            for line in plan:
                if postgresql:
                    full = "Seq Scan on " in line
                else:
                    full = " SCAN " in f" {line} " and "USING" not in line
                # NOTE: a scan of a table of a few rows (stages, pipelines, tokens) is the
                # planner's right choice; only the tables that grow with the data count.
                if full and any(f" {t} " in f" {line} " for t in GROWING):
                    scans.append(f"{line.strip()[:90]}  <- {' '.join(statement.split())[:70]}")
        raw.rollback()
    finally:
        raw.close()
    if scans:
        print(f"-- plans {route}: full scans:")
        for line in scans:
            print("   " + line)
    else:
        print(f"-- plans {route}: {len(statements)} statements, every table read through an index")


def in_process(
    url: str, instance: Path, loaded, token: str, profile: bool, plans: bool = False
) -> dict[str, int]:
    """Statements per request of each route (and, with profile, its top cProfile entries)."""
    settings = Settings(
        instance_path=instance,
        database_url=url,
        secret_key=SECRET,
        public_base_url="http://127.0.0.1",
        hubspot_client_secret=CLIENT_SECRET,
        hubspot_portal_id=PORTAL,
    ).with_overrides()
    app = create_app(settings)
    from enablement.warmup import warm

    warm(app)
    client = app.test_client()
    page = client.get("/signin", headers={"Accept": "text/html"})
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    client.post("/signin", data={"token": token, "csrf_token": csrf, "next": ""})
    work = Workload(loaded, token, "", "http://127.0.0.1")
    engine = app.extensions["enablement"].engine
    counts: dict[str, int] = {}

    def ask(route):
        method, path, body, headers, expected = work.request(route)
        headers = {k: v for k, v in headers.items() if k != "Cookie"}
        response = client.open(path, method=method, data=body, headers=headers)
        assert response.status_code in _expected(expected), (
            route,
            response.status_code,
            response.text[:300],
        )

    for route in ("healthz", *ROUTES):
        ask(route)
        seen: list[tuple] = []

        def listener(_conn, _cursor, statement, parameters, _context, many, seen=seen):
            if many and isinstance(parameters, list | tuple) and parameters:
                parameters = parameters[0]
            seen.append((statement, parameters))

        event.listen(engine, "before_cursor_execute", listener)
        ask(route)
        event.remove(engine, "before_cursor_execute", listener)
        counts[route] = len(seen)
        if plans:
            print_plans(engine, route, seen)
        if profile:
            profiler = cProfile.Profile()
            n = 20 if route == "webhook_100" else 100
            started = time.perf_counter()
            profiler.enable()
            for _ in range(n):
                ask(route)
            profiler.disable()
            each = (time.perf_counter() - started) / n * 1000
            out = io.StringIO()
            stats = pstats.Stats(profiler, stream=out)
            stats.sort_stats("tottime").print_stats(12)
            lines = [
                ln
                for ln in out.getvalue().splitlines()
                if re.match(r"\s+\d", ln) and "{" not in ln[:0]
            ]
            print(
                f"-- profile {route}: {each:.2f} ms a request in process (profiled), top by own time"
            )
            for ln in lines[:12]:
                print("   " + ln.strip()[:150])
    app.extensions["enablement"].engine.dispose()
    return counts


def start_gunicorn(url: str, instance: Path, port: int, workers: int, redis_url: str | None):
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "SECRET_KEY": SECRET,
        "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
        "ENABLEMENT_INSTANCE_PATH": str(instance),
        "HUBSPOT_CLIENT_SECRET": CLIENT_SECRET,
        "HUBSPOT_PORTAL_ID": PORTAL,
    }
    env.pop("REDIS_URL", None)
    if redis_url:
        env["REDIS_URL"] = redis_url
    log = open(instance / "gunicorn.log", "w")  # noqa: SIM115
    process = subprocess.Popen(  # noqa: S603
        [
            str(Path(sys.executable).parent / "gunicorn"),
            "-c",
            "python:enablement.serving",
            "-w",
            str(workers),
            "-b",
            f"127.0.0.1:{port}",
            "--max-requests",
            "0",
            "wsgi:app",
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    started = time.perf_counter()
    # NOTE: started means every worker warmed and accepting (one answering /healthz while
    # another still warms would time the first requests against that warm-up's CPU).
    while (instance / "gunicorn.log").read_text().count(" warmed in ") < workers:
        if process.poll() is not None:
            raise RuntimeError((instance / "gunicorn.log").read_text()[-2000:])
        time.sleep(0.05)
    while True:
        try:
            if send(port, "GET", "/healthz", None, {})[1] == 200:
                break
        except OSError:
            time.sleep(0.05)
    return process, time.perf_counter() - started


def stop(process) -> None:
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(30)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        os.killpg(process.pid, signal.SIGKILL)


def one_at_a_time(port: int, work: Workload, n: int) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {r: [] for r in ("healthz", *ROUTES)}
    for i in range(n):
        for route in times:
            if route == "webhook_100" and i % 3:
                continue  # a third as many: each is 100 events
            method, path, body, headers, expected = work.request(route)
            seconds, status = send(port, method, path, body, headers)
            assert status in _expected(expected), (route, status)
            times[route].append(seconds)
    return times


def fixed_rate(port: int, work: Workload, rate: float, seconds: float) -> tuple[dict, dict]:
    """Open-loop mix at `rate` requests/s: latencies from when each was due, and statuses."""
    rng = random.Random(int(rate))
    names, weights = list(MIX), list(MIX.values())
    plan = [rng.choices(names, weights)[0] for _ in range(int(rate * seconds))]
    times: dict[str, list[float]] = {r: [] for r in names}
    bad: dict[str, int] = {}
    lock = threading.Lock()
    begin = time.perf_counter() + 0.2

    def run(i: int, route: str) -> None:
        due = begin + i / rate
        method, path, body, headers, expected = work.request(route)
        delay = due - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
            response.read()
            conn.close()
            status = response.status
        except OSError:
            status = 0
        took = time.perf_counter() - due
        with lock:
            times[route].append(took)
            if status not in _expected(expected):
                bad[route] = bad.get(route, 0) + 1

    with ThreadPoolExecutor(max_workers=64) as pool:
        for i, route in enumerate(plan):
            # NOTE: submitted just ahead of time, so the pool's queue never delays a start.
            ahead = begin + i / rate - 0.1 - time.perf_counter()
            if ahead > 0:
                time.sleep(ahead)
            pool.submit(run, i, route)
    return times, bad


def report(title: str, times: dict, counts: dict[str, int], column: int, bad=None) -> dict:
    """Print p50/p95 per route beside /healthz p95; returns {route: ratio}."""
    h95 = percentile(times["healthz"], 95) * 1000
    print(f"{title}")
    print(
        f"  {'route':<16}{'n':>6}{'p50 ms':>10}{'p95 ms':>10}{'/healthz':>10}  statements  target"
    )
    ratios = {}
    for route, values in times.items():
        if not values:
            continue
        p50, p95 = percentile(values, 50) * 1000, percentile(values, 95) * 1000
        ratio = p95 / h95
        ratios[route] = ratio
        target = TARGETS.get(route, (None, None))[column]
        verdict = (
            "" if target is None else f"<= {target:g}x {'met' if ratio <= target else 'NOT met'}"
        )
        errors = f"  ({bad[route]} unexpected statuses)" if bad and bad.get(route) else ""
        print(
            f"  {route:<16}{len(values):>6}{p50:>10.2f}{p95:>10.2f}{ratio:>9.2f}x"
            f"  {counts.get(route, ''):>10}  {verdict}{errors}"
        )
    return ratios


def bench_engine(engine_name: str, args, cleanup: ExitStack) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="bench-"))
    cleanup.callback(shutil.rmtree, tmp, ignore_errors=True)
    instance = tmp / "instance"
    instance.mkdir()
    if args.database_url:
        url = args.database_url
    elif engine_name == "postgres":
        base = os.environ.get(
            "TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
        )
        try:
            url = cleanup.enter_context(throwaway_postgres(base, "bench_rec", migrate=False))
        except Exception as e:  # noqa: BLE001
            print(f"== postgresql: skipped ({type(e).__name__}: {str(e)[:120]})")
            return
    else:
        url = f"sqlite:///{tmp / 'bench.db'}"
    engine = db.make_engine(url)
    db.upgrade(engine)
    loaded = load_scale(engine, args.assets, args.deals, args.shares, secret_key=SECRET)
    analyze(engine)
    sessions = db.make_sessions(engine)
    token, _ = create_token(sessions, "sales", "bench team")
    engine.dispose()
    name = url.split(":")[0].split("+")[0]
    print(
        f"== {name}: {args.assets} assets, {args.deals} deals ({len(loaded.open_deals)} open), "
        f"{args.shares} shares loaded in {loaded.seconds:.1f} s"
    )
    counts = in_process(url, instance, loaded, token, args.profile, args.plans)
    print(
        "statements per request (BEGIN included): "
        + ", ".join(f"{k} {v}" for k, v in counts.items())
    )
    port = free_port()
    process, boot = start_gunicorn(url, instance, port, args.workers, args.redis_url)
    try:
        print(
            f"gunicorn ({args.workers} workers, caches warmed before accepting): "
            f"all workers ready after {boot:.2f} s"
        )
        base_url = f"http://127.0.0.1:{port}"
        cookie = sign_in(port, token)
        work = Workload(loaded, token, cookie, base_url)
        first = []
        for _ in range(10):
            method, path, body, headers, expected = work.request("recommendations")
            seconds, status = send(port, method, path, body, headers)
            assert status in _expected(expected), status
            first.append(seconds * 1000)
        rest = percentile(first[1:], 50)
        print(
            f"first ten recommendations after start (ms): {' '.join(f'{t:.1f}' for t in first)}; "
            f"first {first[0]:.1f} vs tenth {first[9]:.1f} (median of 2nd-10th {rest:.1f}): "
            f"{'met' if first[0] <= first[9] else 'NOT met'}"
        )
        # Every worker answers once per route before timing (gunicorn spreads connections).
        one_at_a_time(port, work, 4)
        times = one_at_a_time(port, work, args.requests)
        report(
            f"one request at a time ({args.requests} of each route, webhook batches a third as many), new connection each:",
            times,
            counts,
            0,
        )
        for rate in args.rates:
            times, bad = fixed_rate(port, work, rate, args.rate_seconds)
            report(
                f"fixed rate {rate:g} requests/s for {args.rate_seconds:g} s (mixed):",
                times,
                counts,
                1,
                bad,
            )
    finally:
        stop(process)


def sign_in(port: int, token: str) -> str:
    """Sign in through the form; the session cookie header."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("GET", "/signin", headers={"Accept": "text/html"})
    response = conn.getresponse()
    page = response.read().decode()
    cookie = response.getheader("Set-Cookie", "").split(";")[0]
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    from urllib.parse import urlencode

    form = urlencode({"token": token, "csrf_token": csrf, "next": ""})
    conn.request(
        "POST",
        "/signin",
        body=form,
        headers={"Content-Type": "application/x-www-form-urlencoded", "Cookie": cookie},
    )
    response = conn.getresponse()
    response.read()
    signed = response.getheader("Set-Cookie", "").split(";")[0] or cookie
    conn.close()
    return signed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--assets", type=int, default=10_000)
    parser.add_argument("--deals", type=int, default=100_000)
    parser.add_argument("--shares", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--engines", default="sqlite,postgres")
    parser.add_argument("--postgres", action="store_true", help="PostgreSQL only")
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--rates", default="30,60")
    parser.add_argument("--rate-seconds", type=float, default=20.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--redis-url", default=None, help="REDIS_URL for gunicorn (default: embedded jobs)"
    )
    parser.add_argument("--profile", action="store_true")
    parser.add_argument(
        "--plans", action="store_true", help="print full scans in each route's query plans"
    )
    args = parser.parse_args()
    args.rates = [float(r) for r in args.rates.split(",") if r.strip()]
    engines = ["postgres"] if args.postgres else [e.strip() for e in args.engines.split(",")]
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    with ExitStack() as cleanup:
        for engine_name in engines:
            bench_engine(engine_name, args, cleanup)


if __name__ == "__main__":
    main()
