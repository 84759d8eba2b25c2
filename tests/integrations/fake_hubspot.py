"""A fake HubSpot over real HTTP on loopback: the endpoints the sync uses, HubSpot's page and rate limits, injectable faults.

Every endpoint answers on both path families: HubSpot's date-based versions
(/crm/objects/2026-09/deals, /crm/pipelines/2026-09/deals, /crm/owners/2026-09) and the legacy
/crm/v3/ ones. The log, `requests()` and faults use the version-free route
(/crm/objects/deals), so a test reads the same whichever family the client calls; `versions`
counts the requests per family, and `serve_versions` can refuse the others with a 404.

Run it in a thread (tests) or as a process (`python tests/integrations/fake_hubspot.py
--deals 20000 --rate-limit 100/10` prints its URL; the benchmark uses that).

Every request's arrival is recorded, admitted or not: `most_in_any_window(10)` is the most
requests that arrived within any 10 seconds (a sliding window), what a test of several
clients sharing one budget checks against the limit.

Rate limits, when set, are enforced as HubSpot does: a request counts when it arrives
(after any injected network delay), in a rolling window; one over the limit is answered
429 with policyName TEN_SECONDLY_ROLLING, and one over the daily quota 429 DAILY. Every
answer carries X-HubSpot-RateLimit-Max / -Remaining / -Interval-Milliseconds (and the
daily pair when a quota is set).
"""

from __future__ import annotations

import bisect
import itertools
import json
import random
import re
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

TOKEN = "fake-token"
CLIENT_SECRET = "fake-client-secret"
PORTAL_ID = "62515"
APP_ID = "3001"
# What the fake's token is granted: every scope the app asks for (tests take some away).
SCOPES = (
    "crm.objects.deals.read",
    "crm.schemas.deals.read",
    "crm.objects.owners.read",
    "crm.objects.deals.write",
    "crm.objects.contacts.read",
    "crm.objects.contacts.write",
)
HISTORY_LIMIT = 50
BATCH_LIMIT = 100
SEARCH_LIMIT = 200
SEARCH_CAP = 10_000


_LEGACY = re.compile(r"^/crm/v3/(objects|pipelines|owners)(/.*)?$")
_DATED = re.compile(r"^/crm/(objects|pipelines|owners)/([0-9]{4}-[0-9]{2})(/.*)?$")
_OAUTH = re.compile(r"^/oauth/(v[0-9]|[0-9]{4}-[0-9]{2})(/.*)$")


def route(path: str) -> tuple[str, str | None]:
    """(version-free route, version family) of a path: /crm/objects/2026-09/deals -> (/crm/objects/deals, 2026-09)."""
    path = path.rstrip("/") or "/"
    if match := _LEGACY.match(path):
        return f"/crm/{match.group(1)}{match.group(2) or ''}", "v3"
    if match := _DATED.match(path):
        return f"/crm/{match.group(1)}{match.group(3) or ''}", match.group(2)
    if match := _OAUTH.match(path):
        return f"/oauth{match.group(2)}", match.group(1)
    return path, None


def iso(moment: datetime) -> str:
    """HubSpot's timestamp format: UTC, milliseconds, Z."""
    return (
        moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    )


def to_ms(moment: datetime) -> datetime:
    """The moment at HubSpot's precision (milliseconds)."""
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def millis(moment: datetime) -> int:
    """Epoch milliseconds."""
    return int(moment.timestamp() * 1000)


@dataclass
class FakeDeal:
    """A deal as the fake stores it: current properties, stage history (oldest first), archived flag."""

    id: int
    properties: dict
    history: list[tuple[str, datetime]]
    modified: datetime
    archived: bool = False

    def as_json(self, props: list[str], with_history: bool) -> dict:
        """The deal as HubSpot's v3 API answers it (history newest first, as HubSpot does)."""
        current = {
            **self.properties,
            "dealstage": self.history[-1][0] if self.history else None,
            "hs_lastmodifieddate": iso(self.modified),
            "hs_object_id": str(self.id),
        }
        out = {
            "id": str(self.id),
            "properties": {p: current.get(p) for p in props} if props else current,
            "createdAt": current.get("createdate"),
            "updatedAt": iso(self.modified),
            "archived": self.archived,
        }
        if with_history:
            out["propertiesWithHistory"] = {
                "dealstage": [
                    {"value": stage, "timestamp": iso(at), "sourceType": "CRM_UI"}
                    for stage, at in reversed(self.history)
                ]
            }
        return out


@dataclass
class Fault:
    """An error answer for matching requests: `times` of them, optionally after `skip` matching ones pass."""

    status: int
    times: int = 1
    skip: int = 0
    path: str = ""
    method: str | None = None
    headers: dict = field(default_factory=dict)
    body: dict | None = None


class FakeHubSpot:
    """The fake's state and its HTTP server."""

    def __init__(
        self,
        token: str = TOKEN,
        search_cap: int = SEARCH_CAP,
        rate_limit: tuple[int, float] | None = None,
        daily_limit: int | None = None,
        delay: tuple[float, float] = (0.0, 0.0),
        rate_headers: bool = True,
        serve_versions: tuple[str, ...] | None = None,
    ):
        self.token = token
        self.client_secret = CLIENT_SECRET
        self.portal_id = PORTAL_ID
        self.scopes: tuple[str, ...] = SCOPES
        self.serve_versions = serve_versions  # None: every family; else the others answer 404
        self.versions: dict[str, int] = {}  # requests served per version family
        self.search_cap = search_cap
        self.rate_limit = rate_limit  # (requests, seconds) counted on arrival; None: unlimited
        self.daily_limit = daily_limit  # requests a day; None: unlimited
        self.delay = delay  # seconds (low, high) a request travels before it arrives
        self.rate_headers = rate_headers  # False: enforce the limits but keep them secret
        self.arrivals: deque[float] = deque()  # arrival times counted in the rolling window
        self.foreign: deque[float] = deque()  # arrivals of requests from another client
        self.daily_used = 0
        self.rejected: dict[str, int] = {}  # 429s answered, per policy
        self.peak_window = 0  # the most requests counted in one window
        self.arrived: list[float] = []  # when every request arrived, admitted or not (sorted)
        self._rng = random.Random(11)
        self.pipelines: list[dict] = []
        self.owners: list[dict] = []
        self.deals: dict[int, FakeDeal] = {}
        self.notes: dict[str, dict] = {}
        self.tasks: dict[str, dict] = {}
        self.faults: list[Fault] = []
        self.log: deque = deque(maxlen=200_000)  # (monotonic time, method, path, status)
        self.search_totals: list[tuple[int, int, int]] = []  # (total, after offset, results)
        self.lock = threading.Lock()
        self._note_ids = itertools.count(9_000_001)
        self._sorted: list[int] = []
        self.server: ThreadingHTTPServer | None = None

    # -- data helpers --------------------------------------------------------------------

    def add_pipeline(
        self, pipeline_id: str, label: str, stages: list[tuple[str, str, float, bool]]
    ):
        """A pipeline with stages (id, label, probability, closed)."""
        self.pipelines.append(
            {
                "id": pipeline_id,
                "label": label,
                "displayOrder": len(self.pipelines),
                "archived": False,
                "stages": [
                    {
                        "id": sid,
                        "label": slabel,
                        "displayOrder": i,
                        "archived": False,
                        "metadata": {"probability": str(prob), "isClosed": str(closed).lower()},
                    }
                    for i, (sid, slabel, prob, closed) in enumerate(stages)
                ],
            }
        )

    def add_owner(self, owner_id: str, email: str, archived: bool = False):
        """An owner (a HubSpot user)."""
        self.owners.append(
            {
                "id": owner_id,
                "email": email,
                "firstName": "Rep",
                "lastName": owner_id,
                "archived": archived,
            }
        )

    def add_deal(
        self,
        deal_id: int,
        history: list[tuple[str, datetime]],
        pipeline: str = "default",
        modified: datetime | None = None,
        **properties,
    ) -> FakeDeal:
        """A deal with its full stage history."""
        created = history[0][1] if history else datetime(2024, 1, 1, tzinfo=UTC)
        props = {
            "dealname": f"Deal {deal_id}",
            "pipeline": pipeline,
            "amount": "1000",
            "createdate": iso(created),
            "hs_is_closed": "false",
        }
        props.update({k: v for k, v in properties.items()})
        history = [(stage, to_ms(at)) for stage, at in history]
        deal = FakeDeal(deal_id, props, history, to_ms(modified or history[-1][1]))
        with self.lock:
            self.deals[deal_id] = deal
        return deal

    def move(self, deal_id: int, stage: str, at: datetime) -> None:
        """The deal enters a stage (its modified time moves too)."""
        with self.lock:
            deal = self.deals[deal_id]
            if (
                not deal.history or deal.history[-1][0] != stage
            ):  # setting the same value is no change
                deal.history.append((stage, to_ms(at)))
            deal.modified = to_ms(at)

    def archive(self, deal_id: int, at: datetime) -> None:
        """The deal is archived (deleted in the UI)."""
        with self.lock:
            self.deals[deal_id].archived = True
            self.deals[deal_id].modified = to_ms(at)

    def fail(self, status: int, **kwargs) -> Fault:
        """Answer matching requests with an error (see Fault)."""
        fault = Fault(status, **kwargs)
        with self.lock:
            self.faults.append(fault)
        return fault

    def purge(self, deal_id: int) -> None:
        """Delete the deal for good (GDPR delete): it leaves every listing, archived ones too."""
        with self.lock:
            self.deals.pop(deal_id)
            self._sorted = []

    def spend(self, count: int) -> None:
        """Another client of the same app sends `count` requests now: they count in the window."""
        with self.lock:
            now = time.monotonic()
            self.arrivals.extend([now] * count)
            self.foreign.extend([now] * count)
            self.arrived.extend([now] * count)

    def most_in_any_window(self, seconds: float = 10.0) -> int:
        """The most requests that arrived (answered or refused with 429) within any `seconds`."""
        with self.lock:
            stamps = list(self.arrived)
        most, first = 0, 0
        for last, at in enumerate(stamps):
            while at - stamps[first] >= seconds:
                first += 1
            most = max(most, last - first + 1)
        return most

    def requests(self, path: str = "") -> list[tuple]:
        """Logged requests (time, method, route, status, path) whose route starts with `path`'s."""
        prefix = route(path)[0] if path else ""
        with self.lock:
            return [r for r in self.log if r[2].startswith(prefix)]

    # -- server --------------------------------------------------------------------------

    def start(self) -> str:
        """Serve on a free loopback port in a background thread; returns the base URL."""
        fake = self

        class Handler(_Handler):
            state = fake

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()
        return self.url

    @property
    def url(self) -> str:
        """The base URL (HUBSPOT_API_BASE)."""
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def stop(self) -> None:
        """Stop serving."""
        if self.server:
            self.server.shutdown()
            self.server.server_close()

    # -- request handling ----------------------------------------------------------------

    def _fault_for(self, method: str, path: str) -> Fault | None:
        with self.lock:
            for fault in self.faults:
                if fault.times <= 0 or not path.startswith(
                    route(fault.path)[0] if fault.path else ""
                ):
                    continue
                if fault.method and fault.method != method:
                    continue
                if fault.skip > 0:
                    fault.skip -= 1
                    continue
                fault.times -= 1
                return fault
        return None

    def admit(self, now: float) -> tuple[int, dict, dict | None]:
        """Count a request arriving now against the limits: (status, rate-limit headers, 429 body or None)."""
        headers: dict[str, str] = {}
        with self.lock:
            if self.daily_limit is not None:
                if self.daily_used >= self.daily_limit:
                    return 429, self._daily_headers(), self._rejected("DAILY", "daily")
                self.daily_used += 1
                headers.update(self._daily_headers())
            if self.rate_limit is None:
                return 200, headers, None
            limit, period = self.rate_limit
            while self.arrivals and now - self.arrivals[0] >= period:
                self.arrivals.popleft()
            headers.update(
                {
                    "X-HubSpot-RateLimit-Max": str(limit),
                    "X-HubSpot-RateLimit-Interval-Milliseconds": str(int(period * 1000)),
                }
            )
            if len(self.arrivals) >= limit:
                headers["X-HubSpot-RateLimit-Remaining"] = "0"
                rejection = self._rejected("TEN_SECONDLY_ROLLING", "ten_secondly_rolling")
                return 429, (headers if self.rate_headers else {}), rejection
            self.arrivals.append(now)
            self.peak_window = max(self.peak_window, len(self.arrivals))
            headers["X-HubSpot-RateLimit-Remaining"] = str(limit - len(self.arrivals))
            return 200, (headers if self.rate_headers else {}), None

    def _daily_headers(self) -> dict[str, str]:
        """The daily quota and what is left of it."""
        return {
            "X-HubSpot-RateLimit-Daily": str(self.daily_limit),
            "X-HubSpot-RateLimit-Daily-Remaining": str(max(self.daily_limit - self.daily_used, 0)),
        }

    def _rejected(self, policy: str, name: str) -> dict:
        """Count a 429 of this policy and return HubSpot's body for it."""
        self.rejected[policy] = self.rejected.get(policy, 0) + 1
        return {
            "status": "error",
            "message": f"You have reached your {name} limit.",
            "errorType": "RATE_LIMIT",
            "policyName": policy,
        }

    def handle(self, method: str, path: str, query: dict, body: dict | None, auth: str | None):
        """(status, headers, json) for one request; `path` is the version-free route."""
        if method == "POST" and path == "/oauth/token/introspect":
            return self._introspect(body or {})
        if auth != f"Bearer {self.token}":
            return 401, {}, {"status": "error", "category": "INVALID_AUTHENTICATION"}
        fault = self._fault_for(method, path)
        if fault:
            return (
                fault.status,
                fault.headers,
                fault.body or {"status": "error", "message": "injected"},
            )
        if method == "GET" and path == "/crm/pipelines/deals":
            return 200, {}, {"results": self.pipelines}
        if method == "GET" and path == "/crm/owners":
            return self._owners(query)
        if method == "GET" and path == "/crm/objects/deals":
            return self._list_deals(query)
        if method == "POST" and path == "/crm/objects/deals/batch/read":
            return self._batch_read(body or {})
        if method == "POST" and path == "/crm/objects/deals/search":
            return self._search(body or {})
        if method == "POST" and path == "/crm/objects/notes":
            return self._create_note(body or {})
        if method == "POST" and path == "/crm/objects/tasks":
            return self._create_task(body or {})
        if method == "POST" and path == "/crm/objects/notes/search":
            return self._search_engagements(self.notes, "hs_note_body", body or {})
        if method == "POST" and path == "/crm/objects/tasks/search":
            return self._search_engagements(self.tasks, "hs_task_body", body or {})
        return 404, {}, {"status": "error", "message": f"no route {method} {path}"}

    def _introspect(self, form: dict):
        """HubSpot's token introspection: the app's client secret identifies the caller."""
        if form.get("client_secret") != self.client_secret:
            return (
                400,
                {},
                {"status": "error", "category": "VALIDATION_ERROR", "message": "bad client"},
            )
        if form.get("token") != self.token:
            return (
                400,
                {},
                {"status": "error", "category": "VALIDATION_ERROR", "message": "Token is invalid"},
            )
        return (
            200,
            {},
            {
                "token_use": "access_token",
                "active": True,
                "hub_id": int(self.portal_id),
                "app_id": int(APP_ID),
                "user_id": 1,
                "client_id": "fake-client-id",
                "scopes": list(self.scopes),
                "token_type": "BEARER",
                "is_private_distribution": True,
            },
        )

    def _owners(self, query):
        limit = int(_one(query, "limit") or 100)
        if limit > 500:
            return 400, {}, {"message": "limit above 500"}
        archived = (_one(query, "archived") or "").lower() == "true"
        rows = [o for o in self.owners if bool(o["archived"]) == archived]
        start = int(_one(query, "after") or 0)
        page = rows[start : start + limit]
        out = {"results": page}
        if start + limit < len(rows):
            out["paging"] = {"next": {"after": str(start + limit)}}
        return 200, {}, out

    def _list_deals(self, query):
        with_history = bool(_many(query, "propertiesWithHistory"))
        limit = int(_one(query, "limit") or 10)
        if limit > (HISTORY_LIMIT if with_history else 100):
            return 400, {}, {"message": "limit too high for this request"}
        archived = (_one(query, "archived") or "").lower() == "true"
        after = int(_one(query, "after") or 0)
        with self.lock:
            if len(self._sorted) != len(self.deals):  # deals are only ever added
                self._sorted = sorted(self.deals)
            page = []
            for k in range(bisect.bisect_left(self._sorted, after), len(self._sorted)):
                i = self._sorted[k]
                if self.deals[i].archived == archived:
                    page.append(i)
                    if len(page) > limit:
                        break
            results = [
                self.deals[i].as_json(_many(query, "properties"), with_history)
                for i in page[:limit]
            ]
        out = {"results": results}
        if len(page) > limit:
            out["paging"] = {"next": {"after": str(page[limit])}}
        return 200, {}, out

    def _batch_read(self, body):
        inputs = body.get("inputs") or []
        if len(inputs) > BATCH_LIMIT:
            return 400, {}, {"message": "too many inputs"}
        results, errors = [], []
        with self.lock:
            for item in inputs:
                deal = self.deals.get(int(item["id"]))
                if deal is None or deal.archived:
                    errors.append(
                        {
                            "status": "error",
                            "category": "OBJECT_NOT_FOUND",
                            "context": {"ids": [item["id"]]},
                        }
                    )
                    continue
                results.append(
                    deal.as_json(
                        body.get("properties") or [], bool(body.get("propertiesWithHistory"))
                    )
                )
        out = {"status": "COMPLETE", "results": results}
        if errors:
            out["errors"] = errors
            return 207, {}, out
        return 200, {}, out

    def _search(self, body):
        limit = int(body.get("limit") or 10)
        after = int(body.get("after") or 0)
        if limit > SEARCH_LIMIT:
            return 400, {}, {"message": "limit above 200"}
        if after >= self.search_cap:
            return 400, {}, {"message": f"cannot page beyond {self.search_cap} results"}
        filters = [
            f for group in body.get("filterGroups") or [] for f in group.get("filters") or []
        ]
        with self.lock:
            rows = [
                d
                for d in self.deals.values()
                if not d.archived and all(_match(d, f) for f in filters)
            ]
            sorts = body.get("sorts") or []
            key = (
                (sorts[0]["propertyName"] if isinstance(sorts[0], dict) else sorts[0])
                if sorts
                else "hs_object_id"
            )
            if key == "hs_lastmodifieddate":
                rows.sort(key=lambda d: (d.modified, d.id))
            else:
                rows.sort(key=lambda d: d.id)
            total = len(rows)
            page = rows[after : after + limit]
            results = [d.as_json(body.get("properties") or ["hs_object_id"], False) for d in page]
            self.search_totals.append((total, after, len(results)))
        out = {"total": total, "results": results}
        if after + limit < total:
            out["paging"] = {"next": {"after": str(after + limit)}}
        return 200, {}, out

    def _create_note(self, body):
        props = body.get("properties") or {}
        if not props.get("hs_timestamp"):
            return 400, {}, {"message": "hs_timestamp is required"}
        return self._create_on_deals(self.notes, 214, props, body)

    def _create_task(self, body):
        props = body.get("properties") or {}
        if not props.get("hs_timestamp") or not props.get("hs_task_subject"):
            return 400, {}, {"message": "hs_timestamp and hs_task_subject are required"}
        owner = props.get("hubspot_owner_id")
        if owner is not None and owner not in {o["id"] for o in self.owners}:
            return 400, {}, {"message": f"owner {owner} does not exist"}
        return self._create_on_deals(self.tasks, 216, props, body)

    def _create_on_deals(self, stored: dict, association: int, props: dict, body):
        """Keep a note or task associated with existing deals (HubSpot's association type)."""
        deal_ids = []
        for assoc in body.get("associations") or []:
            types = assoc.get("types") or []
            if not any(
                t.get("associationTypeId") == association
                and t.get("associationCategory") == "HUBSPOT_DEFINED"
                for t in types
            ):
                return 400, {}, {"message": "wrong association type"}
            deal_ids.append(str(assoc["to"]["id"]))
        with self.lock:
            for deal_id in deal_ids:
                if not deal_id.isdigit() or int(deal_id) not in self.deals:
                    return 400, {}, {"message": f"deal {deal_id} does not exist"}
            object_id = str(next(self._note_ids))
            stored[object_id] = {"properties": props, "deals": deal_ids}
        return 201, {}, {"id": object_id, "properties": props}

    def _search_engagements(self, stored: dict, prop: str, body):
        filters = [
            f for group in body.get("filterGroups") or [] for f in group.get("filters") or []
        ]
        wanted = [f["value"] for f in filters if f.get("propertyName") == "associations.deal"]
        with self.lock:
            rows = [
                {"id": nid, "properties": {prop: n["properties"].get(prop)}}
                for nid, n in stored.items()
                if all(w in n["deals"] for w in wanted)
            ]
        return 200, {}, {"total": len(rows), "results": rows[: int(body.get("limit") or 10)]}


def _one(query: dict, name: str) -> str | None:
    values = query.get(name)
    return values[-1] if values else None


def _many(query: dict, name: str) -> list[str]:
    """A list parameter given repeated (?p=a&p=b) or comma-separated (?p=a,b)."""
    return [part for value in query.get(name, []) for part in value.split(",") if part]


def _match(deal: FakeDeal, flt: dict) -> bool:
    name, op, value = flt.get("propertyName"), flt.get("operator"), flt.get("value")
    if name == "hs_lastmodifieddate":
        have = millis(deal.modified)
    elif name == "hs_object_id":
        have = deal.id
    else:
        raise ValueError(f"the fake cannot filter on {name}")
    value = int(value)
    return {
        "GTE": have >= value,
        "GT": have > value,
        "LT": have < value,
        "LTE": have <= value,
        "EQ": have == value,
    }[op]


class _Handler(BaseHTTPRequestHandler):
    state: FakeHubSpot
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):  # quiet
        pass

    def _serve(self, method: str):
        split = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        low, high = self.state.delay
        if high > 0:  # the network between client and HubSpot: the request arrives later
            with self.state.lock:
                delay = self.state._rng.uniform(low, high)
            time.sleep(delay)
        with self.state.lock:
            arrived = time.monotonic()  # NOTE: read under the lock, so `arrived` stays sorted
            self.state.arrived.append(arrived)
        path, family = route(split.path)
        status, limits, rejection = self.state.admit(arrived)
        if rejection is not None:
            headers, payload = limits, rejection
        elif self.state.serve_versions is not None and family not in self.state.serve_versions:
            status, headers, payload = 404, limits, {"message": f"no version {family}"}
        else:
            try:
                if "x-www-form-urlencoded" in (self.headers.get("Content-Type") or ""):
                    body = {k: v[-1] for k, v in parse_qs(raw.decode()).items()}
                else:
                    body = json.loads(raw) if raw else None
                status, headers, payload = self.state.handle(
                    method,
                    path,
                    parse_qs(split.query),
                    body,
                    self.headers.get("Authorization"),
                )
            except (ValueError, KeyError, TypeError) as e:
                status, headers, payload = 400, {}, {"message": f"bad request: {e}"}
            headers = {**limits, **headers}
        with self.state.lock:
            self.state.log.append((arrived, method, path, status, split.path))
            self.state.versions[family or "none"] = self.state.versions.get(family or "none", 0) + 1
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):  # noqa: N802
        self._serve("GET")

    def do_POST(self):  # noqa: N802
        self._serve("POST")


@contextmanager
def served_standard_portal(prepare: Callable[[FakeHubSpot], None] | None = None, **options):
    """The standard portal (plus whatever `prepare` adds) served on loopback while in the block."""
    server = FakeHubSpot(**options)
    standard_portal(server)
    if prepare is not None:
        prepare(server)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def standard_portal(fake: FakeHubSpot) -> None:
    """Two pipelines and a few owners, the layout most tests use."""
    fake.add_pipeline(
        "default",
        "Sales Pipeline",
        [
            ("appointmentscheduled", "Appointment Scheduled", 0.2, False),
            ("qualifiedtobuy", "Qualified To Buy", 0.4, False),
            ("presentationscheduled", "Presentation Scheduled", 0.6, False),
            ("decisionmakerboughtin", "Decision Maker Bought-In", 0.8, False),
            ("closedwon", "Closed Won", 1.0, True),
            ("closedlost", "Closed Lost", 0.0, True),
        ],
    )
    fake.add_pipeline(
        "renewals",
        "Renewals",
        [("r-open", "Renewal Discovery", 0.3, False), ("r-won", "Renewed", 1.0, True)],
    )
    for i in range(3):
        fake.add_owner(str(100 + i), f"rep{i}@example.com")
    fake.add_owner("199", "gone@example.com", archived=True)


STAGES = [
    "appointmentscheduled",
    "qualifiedtobuy",
    "presentationscheduled",
    "decisionmakerboughtin",
]
BASE = datetime(2024, 1, 1, tzinfo=UTC)


def generate_deals(fake: FakeHubSpot, count: int, seed: int = 7, archived_every: int = 0) -> None:
    """`count` deals with random histories (re-entries included), spread over a year."""
    rng = random.Random(seed)
    for deal_id in range(1, count + 1):
        at = BASE + timedelta(minutes=rng.randrange(0, 525_600))
        history = [(STAGES[0], at)]
        for _ in range(rng.randrange(0, 6)):
            at += timedelta(hours=rng.randrange(1, 500), milliseconds=rng.randrange(1000))
            history.append((rng.choice(STAGES + ["closedwon", "closedlost"]), at))
        history = [h for i, h in enumerate(history) if i == 0 or h[0] != history[i - 1][0]]
        closed = history[-1][0] in ("closedwon", "closedlost")
        props = {"hs_is_closed": "true", "closedate": iso(at)} if closed else {}
        if rng.random() < 0.5:
            props["industry"] = rng.choice(["Software", "Banking", "Retail"])
            props["personas"] = "cfo;cio"
        fake.add_deal(deal_id, history, hubspot_owner_id=str(100 + deal_id % 3), **props)
        if archived_every and deal_id % archived_every == 0:
            fake.deals[deal_id].archived = True


def main(argv: list[str]) -> None:
    """Serve a generated portal until killed; print the URL on stdout."""
    import argparse

    parser = argparse.ArgumentParser()
    parser.add_argument("--deals", type=int, default=1000)
    parser.add_argument("--archived-every", type=int, default=0)
    parser.add_argument("--rate-limit", help="requests/seconds counted on arrival, e.g. 100/10")
    parser.add_argument("--daily-limit", type=int)
    parser.add_argument("--delay", type=float, nargs=2, default=(0.0, 0.0), metavar=("LOW", "HIGH"))
    args = parser.parse_args(argv)
    rate = None
    if args.rate_limit:
        calls, seconds = args.rate_limit.split("/")
        rate = (int(calls), float(seconds))
    fake = FakeHubSpot(rate_limit=rate, daily_limit=args.daily_limit, delay=tuple(args.delay))
    standard_portal(fake)
    generate_deals(fake, args.deals, archived_every=args.archived_every)
    print(fake.start(), flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        fake.stop()


if __name__ == "__main__":
    main(sys.argv[1:])
