"""The fixed-rate (open-loop) load against several hosts behind the proxy: requests start on a clock, not after answers.

Arrivals are evenly spaced at the given rate whatever the answers take, so a slow host
cannot slow the load down (no coordinated omission): each request's latency is counted
from the moment it was due, and how late the generator itself started it is reported.
"""

from __future__ import annotations

import json
import random
import re
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import requests
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from integrations.hubspot.signatures import sign_v3
from loadgen.clients import BROWSER_AGENT, NO_ANSWER, Call, Click, Journal, Workload, post_share
from loadgen.summary import HEALTHZ, RouteFigures, percentile

# How often each kind of request is due (relative weights).
MIX = {
    "healthz": 20,
    "recommendations": 20,
    "deal_page": 15,
    "link_click": 20,
    "share": 12,
    "webhook": 13,
}
RECOMMENDATIONS = "/api/v1/deals/<id>/recommendations"
WEBHOOKS = "/webhooks/hubspot"
MAX_RATIO = 3.0  # every route's p95 within 3x /healthz's
MAX_RECOMMENDATIONS_RATIO = 2.0
EVENTS_PER_BATCH = 10
RESEND_SHARE = 0.25  # share intents posted twice at once with one Idempotency-Key
RESEND_BATCH = 0.2  # webhook batches HubSpot delivers again (same events, signed anew)
TIMEOUT = (10.0, 60.0)
LATE = 0.05  # a request started more than 50 ms after it was due was held up by the generator


@dataclass
class Hooks:
    """The webhook batches the run sent and what they were answered."""

    subscription: int = field(default_factory=lambda: random.SystemRandom().randrange(10**6, 10**7))
    sent: dict[tuple, dict] = field(default_factory=dict)  # event key -> event
    acknowledged: set[tuple] = field(default_factory=set)  # keys of events answered 200
    deliveries: int = 0
    resent: int = 0
    batches: list[list[dict]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


@dataclass
class Run:
    """What the fixed-rate clients need and what they saw."""

    work: Workload
    journal: Journal
    cookie: str  # a signed-in browser session (sales), for the HTML deal page
    client_secret: str
    portal_id: int
    hooks: Hooks = field(default_factory=Hooks)
    lags: list[float] = field(default_factory=list)  # seconds each request started after it was due
    _local: threading.local = field(default_factory=threading.local)
    _ids: Counter = field(default_factory=Counter)

    def http(self) -> requests.Session:
        """This thread's keep-alive session."""
        if not hasattr(self._local, "session"):
            self._local.session = requests.Session()
            self._local.session.headers["User-Agent"] = BROWSER_AGENT
        return self._local.session


def sign_in(base_url: str, token: str) -> str:
    """Sign in through the form (through the proxy); returns the Cookie header of the session."""
    browser = requests.Session()
    page = browser.get(base_url + "/signin", headers={"Accept": "text/html"}, timeout=30)
    match = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    if not match:
        raise RuntimeError("the sign-in page has no CSRF token")
    answer = browser.post(
        base_url + "/signin",
        data={"token": token, "csrf_token": match.group(1), "next": ""},
        allow_redirects=False,
        timeout=30,
    )
    if answer.status_code != 302:
        raise RuntimeError(f"signing in answered {answer.status_code}")
    return "; ".join(f"{c.name}={c.value}" for c in browser.cookies)


def plan(rate: float, seconds: float, seed: int = 7) -> list[tuple[float, str]]:
    """(due second, kind) of every request: evenly spaced at `rate`, kinds drawn by MIX."""
    rng = random.Random(seed)
    kinds, weights = zip(*MIX.items(), strict=True)
    total = int(rate * seconds)
    return [(n / rate, rng.choices(kinds, weights)[0]) for n in range(total)]


def idle_healthz(base_url: str, count: int = 40) -> float:
    """/healthz p95 in ms before the load, one request at a time."""
    times = []
    for _ in range(count):
        began = time.perf_counter()
        requests.get(base_url + "/healthz", timeout=10)
        times.append((time.perf_counter() - began) * 1000)
    return percentile(sorted(times), 95)


class Clients:
    """One method per kind of request; every call is recorded in the journal from its due time."""

    def __init__(self, run: Run, seed: int = 11):
        self.run, self.rng, self.rng_lock = run, random.Random(seed), threading.Lock()

    def pick(self, values):
        with self.rng_lock:
            return self.rng.choice(values)

    def chance(self, p: float) -> bool:
        with self.rng_lock:
            return self.rng.random() < p

    def _record(self, route: str, due: float, status: int) -> None:
        journal = self.run.journal
        journal.calls.append(Call(route, due, journal.now() - due, status))

    def _get(self, route: str, due: float, path: str, **kwargs) -> requests.Response | None:
        try:
            answer = self.run.http().get(
                self.run.work.base_url + path, timeout=TIMEOUT, allow_redirects=False, **kwargs
            )
            status = answer.status_code
        except requests.RequestException:
            answer, status = None, NO_ANSWER
        self._record(route, due, status)
        return answer

    def healthz(self, due: float) -> None:
        self._get(HEALTHZ, due, "/healthz")

    def recommendations(self, due: float) -> None:
        deal = self.pick(self.run.work.deals)
        headers = {"Authorization": f"Bearer {self.run.work.tokens.sales_team}"}
        self._get(
            RECOMMENDATIONS, due, f"/api/v1/deals/{deal}/recommendations?limit=5", headers=headers
        )

    def deal_page(self, due: float) -> None:
        deal = self.pick(self.run.work.deals)
        headers = {"Accept": "text/html", "Cookie": self.run.cookie}
        self._get("/deals/<id> (page)", due, f"/deals/{deal}", headers=headers)

    def link_click(self, due: float) -> None:
        journal = self.run.journal
        share_id, link = self.pick(journal.links)
        try:
            status = self.run.http().get(link, allow_redirects=False, timeout=TIMEOUT).status_code
        except requests.RequestException:
            status = NO_ANSWER
        self._record("/l/<token>", due, status)
        journal.clicks.append(Click(share_id, status, due, journal.now() - due))

    def share(self, due: float) -> None:
        """One share intent with an Idempotency-Key; some are posted twice at once (a double-click)."""
        deal, asset = self.pick(self.run.work.deals), self.pick(self.run.work.assets)
        key, copies = str(uuid.uuid4()), 2 if self.chance(RESEND_SHARE) else 1
        token = self.run.work.tokens.sales_team
        args = (self.run.work, self.run.journal, token, deal, asset, key, TIMEOUT)
        twins = [threading.Thread(target=post_share, args=(*args, None)) for _ in range(copies - 1)]
        for twin in twins:
            twin.start()
        post_share(*args, self.run.http())
        for twin in twins:
            twin.join()

    def webhook(self, due: float) -> None:
        """A signed batch of amount changes on known deals; some batches are delivered again."""
        hooks = self.run.hooks
        with hooks.lock:
            again = bool(hooks.batches) and self.chance(RESEND_BATCH)
            if again:
                events = self.pick(hooks.batches)
                hooks.resent += 1
            else:
                events = [self._event() for _ in range(EVENTS_PER_BATCH)]
                hooks.batches.append(events)
                hooks.sent.update({_key(e): e for e in events})
            hooks.deliveries += 1
        body = json.dumps(events).encode()
        stamp = str(int(time.time() * 1000))
        url = self.run.work.base_url + WEBHOOKS
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "HubSpot Connect 2.0 (http://dev.hubspot.com/)",
            "X-HubSpot-Signature-v3": sign_v3(self.run.client_secret, "POST", url, body, stamp),
            "X-HubSpot-Request-Timestamp": stamp,
        }
        try:
            status = (
                self.run.http().post(url, data=body, headers=headers, timeout=TIMEOUT).status_code
            )
        except requests.RequestException:
            status = NO_ANSWER
        self._record(WEBHOOKS, due, status)
        if status == 200:
            with hooks.lock:
                hooks.acknowledged.update(_key(e) for e in events)

    def _event(self) -> dict:
        """A new amount change (a fresh event id) on a random known deal, occurring now."""
        hooks = self.run.hooks
        self.run._ids["event"] += 1
        return {
            "eventId": self.run._ids["event"],
            "subscriptionId": hooks.subscription,
            "portalId": self.run.portal_id,
            "occurredAt": int(time.time() * 1000),
            "subscriptionType": "deal.propertyChange",
            "objectId": int(self.pick(self.run.work.deals)),
            "propertyName": "amount",
            "propertyValue": str(self.pick(range(1_000, 900_000))),
            "attemptNumber": 0,
        }


def _key(event: dict) -> tuple:
    return (event["subscriptionId"], event["eventId"], event["occurredAt"])


def drive(run: Run, rate: float, seconds: float, threads: int = 200) -> float:
    """Start every planned request when it is due (in a pool of threads); returns the wall time."""
    clients = Clients(run)
    schedule = plan(rate, seconds)
    journal = run.journal

    def start(due: float, kind: str) -> None:
        run.lags.append(journal.now() - due)
        if kind == "link_click" and not journal.links:
            kind = "healthz"
        getattr(clients, kind)(due)

    journal.origin = time.monotonic()
    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="fixed-rate") as pool:
        for due, kind in schedule:
            delay = due - journal.now()
            if delay > 0:
                time.sleep(delay)
            pool.submit(start, due, kind)
    return journal.now()


@dataclass
class Webhooks:
    """Events sent against the inbox."""

    sent: int
    deliveries: int
    resent: int
    acknowledged: int
    stored: int
    lost: int  # acknowledged, not stored
    doubled: int  # rows beyond one per event
    statuses: dict[str, int]

    @property
    def not_applied(self) -> int:
        return sum(n for s, n in self.statuses.items() if s not in ("applied", "ignored"))


def check_webhooks(database_url: str, hooks: Hooks) -> Webhooks:
    """Every acknowledged event in the inbox exactly once, and applied."""
    engine = create_engine(database_url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                text("SELECT event_id, status FROM webhook_events WHERE subscription_id = :s"),
                {"s": str(hooks.subscription)},
            ).all()
    finally:
        engine.dispose()
    ids = Counter(int(event_id) for event_id, _ in rows)
    acknowledged_ids = {key[1] for key in hooks.acknowledged}
    return Webhooks(
        sent=len(hooks.sent),
        deliveries=hooks.deliveries,
        resent=hooks.resent,
        acknowledged=len(acknowledged_ids),
        stored=len(ids),
        lost=len(acknowledged_ids - set(ids)),
        doubled=sum(n - 1 for n in ids.values()),
        statuses=dict(Counter(status for _, status in rows)),
    )


def ratio_targets(figures: list[RouteFigures]) -> list[tuple[str, float | None, float]]:
    """(route, p95 / healthz p95, its target) for every route but /healthz."""
    health = next((f for f in figures if f.route == HEALTHZ), None)
    out = []
    for f in figures:
        if f.route == HEALTHZ:
            continue
        target = MAX_RECOMMENDATIONS_RATIO if f.route == RECOMMENDATIONS else MAX_RATIO
        ratio = f.p95 / health.p95 if health and health.p95 > 0 else None
        out.append((f.route, ratio, target))
    return out


def print_routes(
    figures: list[RouteFigures], ratios: list[tuple[str, float | None, float]]
) -> None:
    """The per-route table (latency from when each request was due)."""
    marks = {route: (ratio, target) for route, ratio, target in ratios}
    head = (
        f"{'route':<38}{'count':>7}{'req/s':>7}{'p50 ms':>9}{'p95 ms':>9}"
        f"{'2xx':>6}{'3xx':>6}{'4xx':>6}{'5xx':>6}{'none':>6}  p95/healthz"
    )
    print(head)
    print("-" * len(head))
    for f in figures:
        if f.route == HEALTHZ:
            mark = "(yardstick)"
        else:
            ratio, target = marks[f.route]
            mark = (
                "n/a"
                if ratio is None
                else f"{ratio:5.2f}x (<= {target:g}x) {'pass' if ratio <= target else 'FAIL'}"
            )
        print(
            f"{f.route:<38}{f.count:>7}{f.per_second:>7.1f}{f.p50:>9.1f}{f.p95:>9.1f}"
            f"{f.ok:>6}{f.redirects:>6}{f.client_errors:>6}{f.server_errors + f.unavailable:>6}"
            f"{f.no_answer:>6}  {mark}"
        )
