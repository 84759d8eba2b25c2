"""The mixed load: C client threads with keep-alive sessions, each request recorded."""

from __future__ import annotations

import random
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import requests

from enablement.domain.stages import BUYING_STAGES

if TYPE_CHECKING:
    from loadgen.server import Tokens

BROWSER_AGENT = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0 Safari/537.36"
)
CONNECT_TIMEOUT = 10.0
NO_ANSWER = 0  # the status recorded when the request got no HTTP answer (reset, timeout)
BAD_ANSWER = 1  # a 200/201 whose body is not a share
KEYLESS = "keyless:"  # an intent sent without Idempotency-Key: only the same body repeats
CHANNEL = "load"  # every share made by the run carries this channel
REPORTS = ("effectiveness", "coverage", "cycle-time")
# How often each kind of request is picked (relative weights).
MIX = {
    "deal_search": 16,
    "asset_list": 16,
    "deal_view": 16,
    "share": 8,
    "link_click": 16,
    "report": 3,
    "healthz": 12,
}


@dataclass
class Call:
    """One request and its answer: route template, times (s since the run began), status."""

    route: str
    started: float
    seconds: float
    status: int
    measured: bool = True


@dataclass
class ShareAttempt:
    """A share POST: which intent (Idempotency-Key) it belongs to and what it answered."""

    key: str
    deal_id: str
    asset_id: str
    status: int
    share_id: int | None
    link: str | None
    started: float
    seconds: float


@dataclass
class Click:
    """A link click: the share behind the link and whether it redirected."""

    share_id: int
    status: int
    started: float
    seconds: float


@dataclass
class Workload:
    """What the clients pick from, fixed before the run."""

    base_url: str
    deals: list[str]  # every live deal (team token)
    owner_deals: list[str]  # the owner-bound token's deals
    search_words: list[str]
    assets: list[str]  # live asset ids
    tags: dict[str, list[str]]  # persona/industry/topic values seen on assets
    kinds: list[str]
    tokens: Tokens
    as_of_values: list[str | None]


@dataclass
class Journal:
    """Everything the clients saw; lists are appended from many threads (atomic under the GIL)."""

    origin: float = field(default_factory=time.monotonic)
    calls: list[Call] = field(default_factory=list)
    shares: list[ShareAttempt] = field(default_factory=list)
    clicks: list[Click] = field(default_factory=list)
    links: list[tuple[int, str]] = field(default_factory=list)  # (share id, link) to click
    # What each answered report request got: its X-Report-State (fresh, stale, computing).
    report_states: list[str] = field(default_factory=list)

    def now(self) -> float:
        """Seconds since the journal began."""
        return time.monotonic() - self.origin


def as_of_choices(now: datetime) -> list[str | None]:
    """A few report cut-offs: now (none), and 7, 30 and 90 days ago."""
    stamps = [(now - timedelta(days=d)).strftime("%Y-%m-%dT%H:%M:%SZ") for d in (7, 30, 90)]
    return [None, *stamps]


class Client:
    """One simulated user: a keep-alive session picking requests from the mix until the deadline."""

    def __init__(self, n: int, work: Workload, journal: Journal, timeout: float, think: float):
        """Seeded per client so a run is repeatable in what it asks."""
        self.rng = random.Random(n)
        self.work, self.journal, self.think = work, journal, think
        self.timeout = (CONNECT_TIMEOUT, timeout)
        self.session = requests.Session()
        self.session.headers["User-Agent"] = BROWSER_AGENT
        kinds, weights = zip(*MIX.items(), strict=True)
        self.kinds, self.weights = kinds, weights

    def run(self, deadline: float) -> None:
        """Issue requests until the deadline (monotonic)."""
        while time.monotonic() < deadline:
            kind = self.rng.choices(self.kinds, self.weights)[0]
            getattr(self, kind)()
            if self.think:
                time.sleep(self.rng.uniform(0, 2 * self.think))
        self.session.close()

    def _sales(self) -> tuple[str, list[str]]:
        """Half the time the owner-bound token on its owner's deals, else the team token."""
        if self.rng.random() < 0.5 and self.work.owner_deals:
            return self.work.tokens.sales_owner, self.work.owner_deals
        return self.work.tokens.sales_team, self.work.deals

    def _get(self, route: str, path: str, token: str | None = None, **kwargs):
        """GET and record; None when no answer came."""
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return self._send("GET", route, path, headers=headers, **kwargs)

    def _send(self, method: str, route: str, path: str, **kwargs) -> requests.Response | None:
        """Send one request through the session and record it."""
        started = self.journal.now()
        try:
            response = self.session.request(
                method, self.work.base_url + path, timeout=self.timeout, **kwargs
            )
            status = response.status_code
        except requests.RequestException:
            response, status = None, NO_ANSWER
        self.journal.calls.append(Call(route, started, self.journal.now() - started, status))
        return response

    def deal_search(self) -> None:
        """GET /api/v1/deals?q=word (sometimes with a typo), sometimes filtered by stage."""
        token, _ = self._sales()
        word = self.rng.choice(self.work.search_words)
        if len(word) > 5 and self.rng.random() < 0.3:
            cut = self.rng.randrange(1, len(word) - 1)
            word = word[:cut] + word[cut + 1 :]
        params = {"q": word}
        if self.rng.random() < 0.3:
            params["stage"] = self.rng.choice(BUYING_STAGES)
        self._get("/api/v1/deals", "/api/v1/deals", token, params=params)

    def asset_list(self) -> None:
        """GET /api/v1/assets with one or two filters, or a text search."""
        params: dict[str, str | int] = {"per_page": self.rng.choice([20, 50])}
        for _ in range(self.rng.randint(1, 2)):
            name = self.rng.choice(["stage", "persona", "industry", "topic", "kind", "q", "status"])
            params[name] = self._asset_filter(name)
        self._get("/api/v1/assets", "/api/v1/assets", self.work.tokens.sales_team, params=params)

    def _asset_filter(self, name: str) -> str:
        """A valid value for one asset filter."""
        if name == "stage":
            return self.rng.choice(BUYING_STAGES)
        if name == "kind":
            return self.rng.choice(self.work.kinds)
        if name == "status":
            return self.rng.choice(["live", "stale", "all"])
        if name == "q":
            return self.rng.choice(self.work.search_words)
        values = self.work.tags.get(name) or ["none"]
        return self.rng.choice(values)

    def deal_view(self) -> None:
        """GET /api/v1/deals/<id>."""
        token, deals = self._sales()
        deal = self.rng.choice(deals)
        self._get("/api/v1/deals/<id>", f"/api/v1/deals/{deal}", token)

    def share(self) -> None:
        """A double-click: the same body 2-3 times at once, mostly with one Idempotency-Key."""
        token, deals = self._sales()
        deal, asset = self.rng.choice(deals), self.rng.choice(self.work.assets)
        key = str(uuid.UUID(int=self.rng.getrandbits(128)))
        if self.rng.random() < 0.3:
            key = KEYLESS + key  # a double-click from a client that sends no key
        copies = self.rng.choice([2, 2, 3])
        siblings = [
            threading.Thread(
                target=post_share,
                args=(self.work, self.journal, token, deal, asset, key, self.timeout, None),
            )
            for _ in range(copies - 1)
        ]
        for t in siblings:
            t.start()
        post_share(self.work, self.journal, token, deal, asset, key, self.timeout, self.session)
        for t in siblings:
            t.join()

    def link_click(self) -> None:
        """GET /l/<token> as a browser would (no redirect followed)."""
        if not self.journal.links:
            return
        share_id, link = self.rng.choice(self.journal.links)
        started = self.journal.now()
        try:
            status = self.session.get(link, allow_redirects=False, timeout=self.timeout).status_code
        except requests.RequestException:
            status = NO_ANSWER
        seconds = self.journal.now() - started
        self.journal.calls.append(Call("/l/<token>", started, seconds, status))
        self.journal.clicks.append(Click(share_id, status, started, seconds))

    def report(self) -> None:
        """GET one report (JSON) for one of a few as_of values."""
        kind = self.rng.choice(REPORTS)
        as_of = self.rng.choice(self.work.as_of_values)
        params = {"as_of": as_of} if as_of else {}
        path = f"/api/v1/reports/{kind}"
        response = self._get(path, path, self.work.tokens.marketing, params=params)
        if response is not None:
            state = response.headers.get("X-Report-State") or f"no state ({response.status_code})"
            self.journal.report_states.append(state)

    def healthz(self) -> None:
        """GET /healthz: the yardstick every read route is compared with."""
        self._get("/healthz", "/healthz")


def post_share(
    work: Workload,
    journal: Journal,
    token: str,
    deal: str,
    asset: str,
    key: str,
    timeout: tuple[float, float],
    session: requests.Session | None,
    measured: bool = True,
) -> None:
    """POST one share (with the Idempotency-Key unless the intent is keyless); record it."""
    http = session or requests
    headers = {"Authorization": f"Bearer {token}", "User-Agent": BROWSER_AGENT}
    if not key.startswith(KEYLESS):
        headers["Idempotency-Key"] = key
    started = journal.now()
    status, share_id, link = NO_ANSWER, None, None
    try:
        response = http.post(
            f"{work.base_url}/api/v1/deals/{deal}/shares",
            json={"asset_id": asset, "channel": CHANNEL},
            headers=headers,
            timeout=timeout,
        )
        status = response.status_code
        if status in (200, 201):
            body = response.json()
            share_id, link = int(body["id"]), body["link"]
    except requests.RequestException:
        pass  # no answer: status stays NO_ANSWER
    except (ValueError, KeyError, TypeError):
        status = BAD_ANSWER  # acknowledged without a readable share: counted as an error
    seconds = journal.now() - started
    journal.calls.append(Call("/api/v1/deals/<id>/shares", started, seconds, status, measured))
    journal.shares.append(ShareAttempt(key, deal, asset, status, share_id, link, started, seconds))
    if share_id is not None:
        journal.links.append((share_id, link))


def run_clients(
    work: Workload, journal: Journal, clients: int, seconds: float, timeout: float, think: float
) -> float:
    """Start the clients, let them run for `seconds`, wait for them; returns the wall time."""
    deadline = time.monotonic() + seconds
    threads = [
        threading.Thread(
            target=Client(n, work, journal, timeout, think).run, args=(deadline,), daemon=True
        )
        for n in range(clients)
    ]
    began = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.monotonic() - began
