"""The Crm interface (enablement.domain.crm) implemented on HubSpot with hubspot-api-client.

Everything HubSpot-shaped (SDK objects, JSON, status codes, API versions) stays in this
package; callers get PipelineRecord, OwnerRecord, DealRecord, DealPage and the product's
error kinds.

NOTE: the SDK's ApiClient builds, authenticates and sends every request (its request
bodies are the SDK's models); the path comes from ApiPaths, so one setting
(HUBSPOT_API_VERSION) moves every call between HubSpot's date-based versions
(/crm/objects/2026-09/deals) and the legacy /crm/v3/ paths, which the SDK's generated
methods hard-code. Its urllib3 retries are switched off and each call goes through `_call`,
which owns rate limiting and retries (urllib3's Retry would not retry POST, would hide
retries from the call count, and knows nothing of HubSpot's 4-per-second search limit).
Responses are read with `_preload_content=False` and parsed in mapping.py: building the
generated models costs about 25 ms per page of 50 deals with history (json.loads: 0.2 ms),
which would add about half to a full sync's time, and they validate fields we do not use.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import urllib3
from hubspot import HubSpot
from hubspot.crm.deals import BatchReadInputSimplePublicObjectId, PublicObjectSearchRequest
from hubspot.crm.deals.exceptions import ApiException as DealsApiException
from hubspot.crm.objects.notes import (
    AssociationSpec,
    PublicAssociationsForObject,
    PublicObjectId,
    SimplePublicObjectInputForCreate,
)
from hubspot.crm.objects.notes import PublicObjectSearchRequest as NoteSearchRequest
from hubspot.crm.objects.tasks import AssociationSpec as TaskAssociationSpec
from hubspot.crm.objects.tasks import PublicAssociationsForObject as TaskAssociations
from hubspot.crm.objects.tasks import PublicObjectId as TaskObjectId
from hubspot.crm.objects.tasks import SimplePublicObjectInputForCreate as TaskInput
from urllib3.util.retry import Retry

from enablement.config import HUBSPOT_API_VERSION
from enablement.domain.crm import (
    CallCounts,
    CrmDailyLimit,
    CrmRefused,
    DealPage,
    DealRecord,
    OwnerRecord,
    PipelineRecord,
)
from enablement.errors import ExternalServiceError, NotFound
from integrations.hubspot.mapping import (
    STAGE,
    DealProperties,
    deal_from_hubspot,
    from_millis,
    owner_from_hubspot,
    pipeline_from_hubspot,
    to_millis,
)
from integrations.hubspot.notes import in_note_html, note_html
from integrations.hubspot.ratelimit import RetryPolicy, rate_limiter

log = logging.getLogger(__name__)

_API_ERRORS = (DealsApiException,)

# HubSpot's page sizes (the API's maxima for each read).
HISTORY_PAGE = 50  # list endpoint with propertiesWithHistory
BATCH_READ = 100  # batch read inputs
SEARCH_PAGE = 200  # search results per request
SEARCH_CAP = 10_000  # the search API answers at most this many results for one query
OWNERS_PAGE = 500
IDS_PAGE = 100  # list endpoint without history
NOTE_TO_DEAL = 214  # HUBSPOT_DEFINED association type: note -> deal
TASK_TO_DEAL = 216  # HUBSPOT_DEFINED association type: task -> deal

# The scopes each use needs (the app's requiredScopes list them all; tests keep them equal).
SYNC_SCOPES = ("crm.objects.deals.read", "crm.schemas.deals.read", "crm.objects.owners.read")
# Notes on deals: HubSpot's notes API asks for the contacts scopes, the association for deals.write.
WRITEBACK_SCOPES = (
    "crm.objects.deals.write",
    "crm.objects.contacts.read",
    "crm.objects.contacts.write",
)


@dataclass(frozen=True)
class ApiPaths:
    """HubSpot's path of each endpoint the client calls, for one API version ('2026-09' or 'v3')."""

    version: str = HUBSPOT_API_VERSION

    def _crm(self, api: str, rest: str) -> str:
        """Date versions follow the API's name (/crm/objects/2026-09/...); v3 precedes it."""
        if self.version == "v3":
            return f"/crm/v3/{api}{rest}"
        return f"/crm/{api}/{self.version}{rest}"

    @property
    def pipelines(self) -> str:
        """Deal pipelines with their stages."""
        return self._crm("pipelines", "/deals")

    @property
    def owners(self) -> str:
        """Owners (HubSpot users), paged."""
        return self._crm("owners", "")

    @property
    def deals(self) -> str:
        """The deals list (paged, optionally with property history)."""
        return self._crm("objects", "/deals")

    @property
    def deals_batch_read(self) -> str:
        """Up to 100 deals by id."""
        return self._crm("objects", "/deals/batch/read")

    @property
    def deals_search(self) -> str:
        """Deal search (its own rate limit)."""
        return self._crm("objects", "/deals/search")

    @property
    def notes(self) -> str:
        """Note creation, with its associations."""
        return self._crm("objects", "/notes")

    @property
    def tasks(self) -> str:
        """Task creation, with its associations."""
        return self._crm("objects", "/tasks")

    @property
    def notes_search(self) -> str:
        """Note search."""
        return self._crm("objects", "/notes/search")

    @property
    def tasks_search(self) -> str:
        """Task search."""
        return self._crm("objects", "/tasks/search")

    @property
    def token_introspection(self) -> str:
        """What a token is: its account, app and scopes (a form POST)."""
        return f"/oauth/{self.version}/token/introspect"


@dataclass(frozen=True)
class TokenInfo:
    """What HubSpot says about the access token: active, its account, app and scopes."""

    active: bool
    hub_id: str | None = None
    app_id: str | None = None
    scopes: tuple[str, ...] = ()


class HubSpotAuthError(CrmRefused):
    """HubSpot refused the token (401) or its scopes (403): retrying cannot help."""

    code = "hubspot_unauthorized"


@dataclass
class CallStats:
    """Requests sent to HubSpot (retries included) and how many were retries."""

    calls: int = 0
    retries: int = 0
    search_calls: int = 0
    by_status: dict[str, int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def count(self, search: bool) -> None:
        """One request sent."""
        with self._lock:
            self.calls += 1
            self.search_calls += int(search)

    def failed(self, status: str) -> None:
        """One request answered with an error (or none) and retried."""
        with self._lock:
            self.retries += 1
            self.by_status[status] = self.by_status.get(status, 0) + 1

    def snapshot(self, rate: float | None = None) -> CallCounts:
        """Calls, retries and 429s so far, read together."""
        with self._lock:
            return CallCounts(self.calls, self.retries, rate, self.by_status.get("429", 0))


class HubSpotCrm:
    """The CRM, read and written through HubSpot's date-based (or legacy v3) APIs within its rate limits."""

    def __init__(
        self,
        access_token: str,
        api_base: str = "https://api.hubapi.com",
        rate_limit: tuple[int, float] = (100, 10.0),
        properties: DealProperties | None = None,
        policy: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
        search_rate: tuple[int, float] = (4, 1.0),
        timeout: tuple[float, float] = (10.0, 60.0),
        api_version: str = HUBSPOT_API_VERSION,
        redis_url: str | None = None,
    ):
        if not access_token:
            raise ExternalServiceError("HUBSPOT_ACCESS_TOKEN is not set")
        # NOTE: Retry(0) turns urllib3's own retries off; `_call` retries, counts and limits.
        sdk = HubSpot(
            access_token=access_token,
            host=api_base.rstrip("/"),
            retry=Retry(total=0, redirect=0, raise_on_status=False),
        )
        # One ApiClient (one connection pool, the token, the host) sends every call.
        self._api = sdk.crm.deals.basic_api.api_client
        self._host = urllib.parse.urlsplit(api_base).netloc or api_base
        self.paths = ApiPaths(api_version)
        self._token = access_token
        self.properties = properties or DealProperties()
        self.policy = policy or RetryPolicy()
        self.limiter = rate_limiter(rate_limit, redis_url, access_token)
        self.search_limiter = rate_limiter(search_rate, redis_url, access_token, "search")
        self.stats = CallStats()
        self.search_cap = SEARCH_CAP
        self._sleep = sleep
        self._timeout = timeout
        self._rng = random.Random()

    @classmethod
    def from_settings(cls, settings) -> HubSpotCrm:
        """The client configured by HUBSPOT_* settings."""
        return cls(
            access_token=settings.hubspot_access_token,
            api_base=settings.hubspot_api_base,
            rate_limit=settings.hubspot_rate_limit,
            redis_url=settings.redis_url,
            properties=DealProperties.from_settings(settings),
            api_version=settings.hubspot_api_version,
        )

    def call_counts(self) -> CallCounts:
        """Requests sent to HubSpot since this client was built (retries included)."""
        return self.stats.snapshot(self.limiter.rate)

    # -- reads ---------------------------------------------------------------------------

    def fetch_pipelines(self) -> list[PipelineRecord]:
        """Every deal pipeline with its stages (archived ones included, marked)."""
        data = self._call("GET", self.paths.pipelines)
        return [pipeline_from_hubspot(item) for item in data.get("results") or []]

    def iter_owners(self) -> Iterator[OwnerRecord]:
        """Every owner, active then archived (deals keep owners who left)."""
        for archived in (False, True):
            after = None
            while True:
                data = self._call(
                    "GET",
                    self.paths.owners,
                    query={"limit": OWNERS_PAGE, "after": after, "archived": archived},
                )
                for item in data.get("results") or []:
                    yield owner_from_hubspot({**item, "archived": archived or item.get("archived")})
                after = _next_after(data)
                if after is None:
                    break

    def iter_all_deals(
        self, after: str | None = None, archived: bool = False
    ) -> Iterator[DealPage]:
        """Every deal with its complete stage history, a page of 50 at a time, from `after` on."""
        while True:
            data = self._call(
                "GET",
                self.paths.deals,
                query={
                    "limit": HISTORY_PAGE,
                    "after": after,
                    "properties": self.properties.names(),
                    "propertiesWithHistory": [STAGE],
                    "archived": archived,
                },
            )
            deals = [self._deal(item, archived) for item in data.get("results") or []]
            after = _next_after(data)
            yield DealPage(deals, resume=after, done=after is None)
            if after is None:
                return

    def iter_deal_ids(self, archived: bool = False) -> Iterator[list[str]]:
        """Ids of every active (or archived) deal, a page of 100 at a time (no history: cheap)."""
        after = None
        while True:
            data = self._call(
                "GET",
                self.paths.deals,
                query={
                    "limit": IDS_PAGE,
                    "after": after,
                    "properties": ["hs_object_id"],
                    "archived": archived,
                },
            )
            yield [str(item["id"]) for item in data.get("results") or []]
            after = _next_after(data)
            if after is None:
                return

    def fetch_deals(self, ids: Iterable[str]) -> list[DealRecord]:
        """These deals with their histories (batch reads of 100); ids HubSpot does not know are left out."""
        ids = list(dict.fromkeys(str(i) for i in ids))
        deals: list[DealRecord] = []
        for start in range(0, len(ids), BATCH_READ):
            chunk = ids[start : start + BATCH_READ]
            body = BatchReadInputSimplePublicObjectId(
                inputs=[{"id": i} for i in chunk],
                properties=self.properties.names(),
                properties_with_history=[STAGE],
            )
            data = self._call(
                "POST", self.paths.deals_batch_read, query={"archived": False}, body=body
            )
            deals += [self._deal(item, False) for item in data.get("results") or []]
        return deals

    def iter_deals_modified_between(self, start: datetime, end: datetime) -> Iterator[DealPage]:
        """Deals whose hs_lastmodifieddate is in [start, end), with histories, oldest window first.

        The range is cut into windows of at most 10,000 results (halving a window whose
        total exceeds the search cap); within a window, results are paged by hs_object_id
        (keyset), so deals modified during the read cannot shift the pages and make others
        skipped. A page with `resume` set closes a window: everything before it was yielded.
        """
        stack = [(to_millis(start), to_millis(end))]
        while stack:
            low, high = stack.pop()
            if high <= low:
                continue
            total, ids, last_id = self._search_ids(low, high, None)
            if total > self.search_cap and high - low > 1:
                middle = (low + high) // 2
                stack += [(middle, high), (low, middle)]
                continue
            while ids:
                yield DealPage(self.fetch_deals(ids))
                if len(ids) < SEARCH_PAGE:
                    break
                _, ids, last_id = self._search_ids(low, high, last_id)
            yield DealPage([], resume=from_millis(high).isoformat())

    def _search_ids(self, low: int, high: int, after_id: str | None) -> tuple[int, list[str], str]:
        """One search page of deal ids modified in [low, high) ms, ids above after_id, ascending."""
        filters = [
            {"propertyName": "hs_lastmodifieddate", "operator": "GTE", "value": str(low)},
            {"propertyName": "hs_lastmodifieddate", "operator": "LT", "value": str(high)},
        ]
        if after_id is not None:
            filters.append({"propertyName": "hs_object_id", "operator": "GT", "value": after_id})
        request = PublicObjectSearchRequest(
            filter_groups=[{"filters": filters}],
            sorts=[{"propertyName": "hs_object_id", "direction": "ASCENDING"}],
            properties=["hs_object_id"],
            limit=SEARCH_PAGE,
        )
        data = self._call("POST", self.paths.deals_search, body=request, search=True)
        ids = [str(item["id"]) for item in data.get("results") or []]
        return int(data.get("total") or 0), ids, (ids[-1] if ids else after_id or "0")

    # -- write-back ----------------------------------------------------------------------

    def create_note(self, deal_id: str, body: str, timestamp: datetime) -> str:
        """Create a note on the deal (its text as HTML, association 214: note to deal); returns the note id."""
        request = SimplePublicObjectInputForCreate(
            properties={"hs_note_body": note_html(body), "hs_timestamp": timestamp.isoformat()},
            associations=[
                PublicAssociationsForObject(
                    to=PublicObjectId(id=str(deal_id)),
                    types=[
                        AssociationSpec(
                            association_category="HUBSPOT_DEFINED",
                            association_type_id=NOTE_TO_DEAL,
                        )
                    ],
                )
            ],
        )
        return str(self._call("POST", self.paths.notes, body=request)["id"])

    def find_note(self, deal_id: str, marker: str) -> str | None:
        """The id of a note on the deal whose body contains `marker`, if one exists."""
        return self._find_on_deal(self.paths.notes_search, "hs_note_body", deal_id, marker)

    def find_task(self, deal_id: str, marker: str) -> str | None:
        """The id of a task on the deal whose body contains `marker`, if one exists."""
        return self._find_on_deal(self.paths.tasks_search, "hs_task_body", deal_id, marker)

    def _find_on_deal(self, path: str, body: str, deal_id: str, marker: str) -> str | None:
        """A note or task associated with the deal whose `body` property holds the marker."""
        wanted = in_note_html(marker)
        after = None
        while True:
            request = NoteSearchRequest(
                filter_groups=[
                    {
                        "filters": [
                            {
                                "propertyName": "associations.deal",
                                "operator": "EQ",
                                "value": str(deal_id),
                            }
                        ]
                    }
                ],
                properties=[body],
                limit=SEARCH_PAGE,
                after=after,
            )
            data = self._call("POST", path, body=request, search=True)
            for item in data.get("results") or []:
                if wanted in ((item.get("properties") or {}).get(body) or ""):
                    return str(item["id"])
            after = _next_after(data)
            if after is None or int(after) >= SEARCH_CAP:
                return None

    def create_task(
        self, deal_id: str, owner_id: str | None, subject: str, body: str, due: datetime
    ) -> str:
        """Create a task on the deal (association 216: task to deal) for the owner; returns the task id."""
        properties = {
            "hs_task_subject": subject[:500],
            "hs_task_body": note_html(body),
            "hs_timestamp": due.isoformat(),
            "hs_task_status": "NOT_STARTED",
            "hs_task_type": "TODO",
        }
        if owner_id:
            properties["hubspot_owner_id"] = str(owner_id)
        request = TaskInput(
            properties=properties,
            associations=[
                TaskAssociations(
                    to=TaskObjectId(id=str(deal_id)),
                    types=[
                        TaskAssociationSpec(
                            association_category="HUBSPOT_DEFINED",
                            association_type_id=TASK_TO_DEAL,
                        )
                    ],
                )
            ],
        )
        return str(self._call("POST", self.paths.tasks, body=request)["id"])

    # -- the token -----------------------------------------------------------------------

    def introspect_token(
        self, client_secret: str | None, client_id: str | None = None
    ) -> TokenInfo:
        """What HubSpot knows of the access token (active, account, app, scopes); HubSpotAuthError if refused."""
        form = {"token": self._token, "token_type_hint": "access_token"}
        if client_secret:
            form["client_secret"] = client_secret
        if client_id:
            form["client_id"] = client_id
        data = self._call("POST", self.paths.token_introspection, form=form)
        scopes = data.get("scopes") or []
        return TokenInfo(
            active=bool(data.get("active", True)),
            hub_id=_id_text(data.get("hub_id")),
            app_id=_id_text(data.get("app_id")),
            scopes=tuple(str(scope) for scope in scopes if isinstance(scope, str)),
        )

    # -- transport -----------------------------------------------------------------------

    def _deal(self, item: dict, archived: bool) -> DealRecord:
        if archived:
            item = {**item, "archived": True}
        return deal_from_hubspot(item, self.properties)

    def _call(
        self,
        method: str,
        path: str,
        query: dict | None = None,
        body=None,
        form: dict | None = None,
        search: bool = False,
    ) -> dict:
        """Send one request within the rate limits; retry 429, 5xx and network errors; parse JSON."""
        params = [(k, _query_value(v)) for k, v in (query or {}).items() if v is not None]
        lists = {k: "multi" for k, v in params if isinstance(v, list)}
        headers = {"Accept": "application/json"}
        headers["Content-Type"] = (
            "application/x-www-form-urlencoded" if form is not None else "application/json"
        )
        attempt = 0
        while True:
            attempt += 1
            try:
                with self._slots(search):
                    self.stats.count(search)
                    try:
                        response = self._api.call_api(
                            path,
                            method,
                            query_params=list(params),
                            header_params=dict(headers),
                            body=body,
                            post_params=list(form.items()) if form is not None else None,
                            auth_settings=["oauth2"],
                            collection_formats=dict(lists),
                            _preload_content=False,
                            _request_timeout=self._timeout,
                        )
                    except _API_ERRORS as e:
                        self.limiter.observe(getattr(e, "headers", None))
                        raise
                    self.limiter.observe(response.headers)
                    raw = response.data
                    response.release_conn()
                return json.loads(raw) if raw else {}
            except _API_ERRORS as e:
                status = int(e.status or 0)
                wait = self._wait_for(status, e, attempt)
            except (urllib3.exceptions.HTTPError, OSError) as e:
                status = 0
                wait = self._wait_for(0, e, attempt)
            except ValueError as e:  # a body that is not JSON
                raise ExternalServiceError(
                    f"HubSpot answered something that is not JSON: {e}"
                ) from e
            self.stats.failed(str(status) if status else "network")
            log.warning(
                "HubSpot call failed (%s); retry %d in %.2fs", status or "network", attempt, wait
            )
            self._sleep(wait)

    @contextmanager
    def _slots(self, search: bool) -> Iterator[None]:
        """Hold a slot of the overall limit (and of the search limit for a search) while a request is out."""
        with self.search_limiter.slot() if search else nullcontext():
            with self.limiter.slot():
                yield

    def _wait_for(self, status: int, error: Exception, attempt: int) -> float:
        """Seconds to wait before retrying, or raise the product error when retrying cannot help."""
        if status in (401, 403):
            raise HubSpotAuthError(
                f"HubSpot refused the access token ({status}): check HUBSPOT_ACCESS_TOKEN and that "
                f"the app has the scopes {', '.join(SYNC_SCOPES)} (for note write-back also "
                f"{', '.join(WRITEBACK_SCOPES)}); `enablement hubspot check` lists what is missing",
                {"status": status},
            ) from error
        body = _body(error)
        retryable = status == 429 or status == 0 or status >= 500
        if not retryable:
            if status == 404:
                raise NotFound(f"HubSpot: not found ({body[:200]})") from error
            raise ExternalServiceError(
                f"HubSpot rejected a request ({status}): {body[:300]}", {"status": status}
            ) from error
        if status == 429 and _policy(body) == "DAILY":
            resume_by = _resume_by()
            raise CrmDailyLimit(_daily_message(resume_by), resume_by=resume_by) from error
        if attempt >= self.policy.max_attempts:
            if status == 0:
                # NOTE: no details: the one line says it all (the CLI prints details as more lines).
                raise ExternalServiceError(
                    f"HubSpot at {self._host} could not be reached ({network_cause(error)}) "
                    f"after {attempt} attempts: check the network, a proxy or HUBSPOT_API_BASE"
                ) from error
            raise ExternalServiceError(
                f"HubSpot at {self._host} kept failing (status {status}) after {attempt} attempts",
                {"status": status},
            ) from error
        if status == 429:
            headers = getattr(error, "headers", None) or {}
            return self.policy.retry_after(headers.get("Retry-After"))
        return self.policy.backoff(attempt, self._rng)


def network_cause(error: BaseException) -> str:
    """Why a request never got an answer, as people read it: refused, name not found, timed out."""
    reason = getattr(error, "reason", None) or error  # MaxRetryError wraps the first failure
    text = str(reason).lower()
    if isinstance(reason, urllib3.exceptions.NameResolutionError) or "name or service" in text:
        return "the host name does not resolve"
    if "refused" in text:
        return "connection refused"
    # NOTE: after "refused": urllib3's NewConnectionError is a subclass of ConnectTimeoutError.
    if isinstance(reason, urllib3.exceptions.TimeoutError) or "timed out" in text:
        return "the connection timed out"
    if isinstance(reason, urllib3.exceptions.SSLError) or "certificate" in text:
        return "the TLS handshake failed"
    if "reset" in text or "closed" in text or "aborted" in text:
        return "the connection was closed before an answer"
    return f"network error {type(reason).__name__}"


def _query_value(value):
    """A query parameter as HubSpot reads it: booleans as true/false, lists repeated."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return list(value) if isinstance(value, list | tuple) else value


def _id_text(value) -> str | None:
    """A numeric id from HubSpot's JSON as text (None when absent)."""
    return str(value) if isinstance(value, int | str) and str(value).strip() else None


def _next_after(data: dict) -> str | None:
    """The paging cursor of the next page, or None on the last one."""
    return ((data.get("paging") or {}).get("next") or {}).get("after") or None


def _policy(body: str) -> str | None:
    """The policyName of a 429's JSON body (DAILY, TEN_SECONDLY_ROLLING, SECONDLY), if readable."""
    try:
        data = json.loads(body)
    except ValueError:
        return None
    return data.get("policyName") if isinstance(data, dict) else None


def _resume_by() -> datetime:
    """The latest moment HubSpot's daily limit resets: it resets at midnight in the account's time zone."""
    return (datetime.now(UTC) + timedelta(days=1)).replace(second=0, microsecond=0)


def _daily_message(resume_by: datetime) -> str:
    """What to do when the daily limit is used up: when it resets and that the next run resumes."""
    return (
        "HubSpot's daily API limit is used up; it resets at midnight in the HubSpot account's "
        f"time zone (by {resume_by:%Y-%m-%d %H:%M} UTC at the latest): run the sync again then, "
        "it resumes where it stopped"
    )


def _body(error: Exception) -> str:
    body = getattr(error, "body", None)
    if isinstance(body, bytes):
        return body.decode("utf-8", "replace")
    return str(body or error)
