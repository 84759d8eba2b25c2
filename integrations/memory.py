"""An in-memory CRM: the complete Crm interface over dicts and lists, for service tests.

It behaves as the product expects of a CRM: the CRM stamps each deal's modification
time from its own clock (set it, or advance it), archived deals leave every read but the
archived listings, purged deals leave every read, notes are kept in a list, and every
read or write is one counted call.
Failures can be injected after any number of calls, so a test can kill a sync at any page.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from enablement.domain.crm import (
    CallCounts,
    DealPage,
    DealRecord,
    OwnerRecord,
    PipelineRecord,
    StageEntry,
)
from enablement.errors import ExternalServiceError

EPOCH = datetime(2024, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Note:
    """A note logged on a deal."""

    id: str
    deal_id: str
    body: str
    timestamp: datetime


@dataclass(frozen=True)
class Task:
    """A task created on a deal for its owner."""

    id: str
    deal_id: str
    owner_id: str | None
    subject: str
    body: str
    due: datetime


@dataclass
class _Failure:
    """Calls to let through (`after`), then calls to fail (`times`, None: all), optionally of one method."""

    after: int
    times: int | None
    error: Callable[[], BaseException]
    method: str | None


def _injected() -> BaseException:
    return ExternalServiceError("the CRM failed (a failure injected into InMemoryCrm)")


def _order(deal_id: str) -> tuple:
    """Numeric ids in numeric order, others after them in text order (the listing's paging order)."""
    return (0, int(deal_id), "") if deal_id.isdigit() else (1, 0, deal_id)


class InMemoryCrm:
    """The Crm interface over plain data held in memory; see the module docstring."""

    def __init__(
        self,
        now: datetime = EPOCH,
        page_size: int = 50,
        batch_size: int = 100,
        ids_page_size: int = 100,
        owners_page_size: int = 500,
    ):
        self.now = now
        self.page_size = page_size
        self.batch_size = batch_size
        self.ids_page_size = ids_page_size
        self.owners_page_size = owners_page_size
        self.pipelines: dict[str, PipelineRecord] = {}
        self.owners: dict[str, OwnerRecord] = {}
        self.deals: dict[str, DealRecord] = {}  # archived ones too, marked deleted
        self.notes: list[Note] = []
        self.tasks: list[Task] = []
        self.log: list[str] = []  # the method of every call that succeeded, in order
        self._calls = 0
        self._note_ids = itertools.count(1)
        self._failures: list[_Failure] = []
        # NOTE: the sync reads pages in a thread while it writes; calls may come from both.
        self._lock = threading.Lock()

    # -- the CRM's clock and data --------------------------------------------------------

    def clock(self) -> datetime:
        """The CRM's current time (pass as the sync's `now` to keep both on one clock)."""
        return self.now

    def advance(self, delta: timedelta) -> datetime:
        """Move the clock on; returns the new time."""
        self.now += delta
        return self.now

    def add_pipeline(self, pipeline: PipelineRecord) -> None:
        """Create or replace a pipeline."""
        self.pipelines[pipeline.id] = pipeline

    def add_owner(self, owner: OwnerRecord) -> None:
        """Create or replace an owner."""
        self.owners[owner.id] = owner

    def put_deal(self, deal: DealRecord) -> DealRecord:
        """Create or replace a deal, stamped as modified now (the CRM's clock, not the record's)."""
        stored = replace(deal, source_modified_at=self.now)
        self.deals[deal.id] = stored
        return stored

    def move_deal(self, deal_id: str, stage_id: str, at: datetime | None = None) -> DealRecord:
        """Put the deal in a stage at `at` (default now); setting its current stage again adds no entry."""
        deal = self.deals[deal_id]
        history = deal.stage_history
        if not history or history[-1].stage_id != stage_id:
            history += (StageEntry(at or self.now, stage_id),)
        return self.put_deal(replace(deal, stage_history=history))

    def archive_deal(self, deal_id: str) -> DealRecord:
        """Archive the deal: from now on it is only in the archived listings."""
        return self.put_deal(replace(self.deals[deal_id], deleted=True))

    def purge_deal(self, deal_id: str) -> None:
        """Delete the deal for good: it leaves every listing, archived ones included."""
        self.deals.pop(deal_id)

    def fail(
        self,
        after: int = 0,
        times: int | None = None,
        error: Callable[[], BaseException] = _injected,
        method: str | None = None,
    ) -> None:
        """Let `after` more calls (of `method`, or any) succeed, then fail `times` of them (None: every one)."""
        self._failures.append(_Failure(after, times, error, method))

    def heal(self) -> None:
        """Forget every injected failure."""
        self._failures.clear()

    def calls_to(self, method: str) -> int:
        """How many calls of this method succeeded."""
        return self.log.count(method)

    # -- the Crm interface ---------------------------------------------------------------

    def fetch_pipelines(self) -> list[PipelineRecord]:
        """Every pipeline with its stages (one call)."""
        self._call("fetch_pipelines")
        return list(self.pipelines.values())

    def iter_owners(self) -> Iterator[OwnerRecord]:
        """Every owner, a page (one call) at a time."""
        owners = list(self.owners.values())
        for chunk in _chunks(owners, self.owners_page_size):
            self._call("iter_owners")
            yield from chunk

    def iter_all_deals(
        self, after: str | None = None, archived: bool = False
    ) -> Iterator[DealPage]:
        """Every active (or archived) deal in id order from after the deal `after`, a page a call."""
        while True:
            self._call("iter_all_deals")
            rows = sorted(
                (d for d in self.deals.values() if d.deleted == archived),
                key=lambda d: _order(d.id),
            )
            if after is not None:
                rows = [d for d in rows if _order(d.id) > _order(after)]
            page, more = rows[: self.page_size], len(rows) > self.page_size
            after = page[-1].id if more else None
            yield DealPage(page, resume=after, done=not more)
            if not more:
                return

    def iter_deal_ids(self, archived: bool = False) -> Iterator[list[str]]:
        """Ids of every active (or archived) deal in id order, a page a call."""
        ids = sorted((d.id for d in self.deals.values() if d.deleted == archived), key=_order)
        for chunk in _chunks(ids, self.ids_page_size):
            self._call("iter_deal_ids")
            yield chunk

    def iter_deals_modified_between(self, start: datetime, end: datetime) -> Iterator[DealPage]:
        """Active deals modified in [start, end), a page a call, then the page that closes the window."""
        rows = sorted(
            (
                d
                for d in self.deals.values()
                if not d.deleted
                and d.source_modified_at is not None
                and start <= d.source_modified_at < end
            ),
            key=lambda d: _order(d.id),
        )
        for chunk in _chunks(rows, self.page_size):
            self._call("iter_deals_modified_between")
            if chunk:
                yield DealPage(chunk)
        yield DealPage([], resume=end.isoformat())

    def fetch_deals(self, ids: Iterable[str]) -> list[DealRecord]:
        """These active deals, a batch a call; unknown or archived ids are left out."""
        ids = list(dict.fromkeys(str(i) for i in ids))
        found: list[DealRecord] = []
        for chunk in _chunks(ids, self.batch_size):
            if not chunk:
                continue
            self._call("fetch_deals")
            found += [self.deals[i] for i in chunk if i in self.deals and not self.deals[i].deleted]
        return found

    def create_note(self, deal_id: str, body: str, timestamp: datetime) -> str:
        """Keep a note on an active deal; returns its id."""
        self._call("create_note")
        deal = self.deals.get(str(deal_id))
        if deal is None or deal.deleted:
            raise ExternalServiceError(f"the CRM has no deal {deal_id} to add a note to")
        with self._lock:
            note = Note(str(next(self._note_ids)), str(deal_id), body, timestamp)
            self.notes.append(note)
        return note.id

    def find_note(self, deal_id: str, marker: str) -> str | None:
        """The first note on the deal whose body contains `marker`, or None."""
        self._call("find_note")
        for note in self.notes:
            if note.deal_id == str(deal_id) and marker in note.body:
                return note.id
        return None

    def find_task(self, deal_id: str, marker: str) -> str | None:
        """The first task on the deal whose body contains `marker`, or None."""
        self._call("find_task")
        for task in self.tasks:
            if task.deal_id == str(deal_id) and marker in task.body:
                return task.id
        return None

    def create_task(
        self, deal_id: str, owner_id: str | None, subject: str, body: str, due: datetime
    ) -> str:
        """Keep a task on an active deal for its owner; returns its id."""
        self._call("create_task")
        deal = self.deals.get(str(deal_id))
        if deal is None or deal.deleted:
            raise ExternalServiceError(f"the CRM has no deal {deal_id} to add a task to")
        with self._lock:
            task = Task(str(next(self._note_ids)), str(deal_id), owner_id, subject, body, due)
            self.tasks.append(task)
        return task.id

    def call_counts(self) -> CallCounts:
        """Calls made so far (a memory never needs a retry)."""
        with self._lock:
            return CallCounts(self._calls, 0)

    # -- calls ---------------------------------------------------------------------------

    def _call(self, method: str) -> None:
        """Count one call, or raise the failure injected for it."""
        with self._lock:
            self._calls += 1
            for failure in self._failures:
                if failure.method not in (None, method):
                    continue
                if failure.after > 0:
                    failure.after -= 1
                    continue
                if failure.times is None or failure.times > 0:
                    if failure.times is not None:
                        failure.times -= 1
                    raise failure.error()
            self._failures = [f for f in self._failures if f.times != 0]
            self.log.append(method)


def _chunks(items: list, size: int) -> Iterator[list]:
    """Consecutive slices of `size`; one empty slice for no items (a read that finds nothing is still a call)."""
    if not items:
        yield []
        return
    for start in range(0, len(items), size):
        yield items[start : start + size]
