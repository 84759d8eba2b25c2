"""The CRM sync use case: pipelines, owners, deals with exact stage history, then note write-back.

Talks to the CRM only through the Crm interface (enablement.domain.crm).
Every page of deals is committed in its own transaction together with the resume point
it completes, so a sync killed at any moment and run again ends with the same data as
an uninterrupted run (re-applying a page changes nothing).

Deletions: an incremental run reads only what changed (the CRM's search does not return
archived deals), so deals archived or purged in the CRM are caught by a deletion sweep
that lists the ids of every active deal (a page of 100 per call, no history) and marks
deleted every deal we hold from this CRM that is not among them. It runs with every full
sync (from the ids the sync read) and with the first incremental run after SWEEP_EVERY;
webhooks (deal.deletion) catch deletions in between. The steady-state incremental cost
is therefore independent of how many deals are archived.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from enablement.config import Settings
from enablement.db.crm import (
    UpsertCounts,
    mark_missing_deals_deleted,
    upsert_deals,
    upsert_owners,
    upsert_pipelines,
)
from enablement.db.models import SyncState
from enablement.db.types import utcnow
from enablement.db.webhooks import in_transaction
from enablement.domain.crm import Crm, DealPage, DealRecord, PipelineRecord, StageEntry
from enablement.errors import Conflict
from enablement.services.nudges import after_stage_entries
from enablement.services.writeback import write_back_shares

log = logging.getLogger(__name__)

# NOTE: the product syncs one CRM, HubSpot; these names are stored in existing databases.
SOURCE = "hubspot"
FULL_KEY = "hubspot.full"  # an unfinished full sync: phase, paging cursor, start time
CURSOR_KEY = "hubspot.cursor"  # incremental: every deal modified before modified_since is stored
SWEEP_KEY = "hubspot.sweep"  # the last completed deletion sweep: {"at": ISO 8601}
# NOTE: a day bounds how long a deletion missed by webhooks stays visible; a sweep costs
# one call per 100 active deals (1,000 calls, 100 s, at 100,000 deals).
SWEEP_EVERY = timedelta(hours=24)
# Stage changes from these sources came from files or the demo, never from the CRM: the
# sweep leaves deals known only through them alone.
OFFLINE_SOURCES = ("import", "demo")
# NOTE: a CRM's search index trails its writes (HubSpot's by seconds); re-reading is idempotent.
OVERLAP = timedelta(minutes=5)
OWNER_BATCH = 500
_LOCK_KEY = 0x45_4E_53_59  # the advisory lock every sync takes on PostgreSQL

Progress = Callable[[str, int], None]


@dataclass
class SyncSummary:
    """What a sync did: counts per kind, calls and pace, warnings (the CLI words them)."""

    mode: str = "incremental"
    resumed: bool = False
    pipelines: UpsertCounts = field(default_factory=UpsertCounts)
    owners: UpsertCounts = field(default_factory=UpsertCounts)
    deals: UpsertCounts = field(default_factory=UpsertCounts)
    deals_read: int = 0
    pages: int = 0
    swept: int | None = None  # active deal ids the deletion sweep read (None: no sweep)
    deleted_by_sweep: int = 0  # deals gone from the CRM (archived or purged) found by the sweep
    skipped: int = 0
    notes_written: int = 0
    notes_failed: int = 0
    api_calls: int = 0
    retries: int = 0
    rate_limited: int = 0  # 429 answers among the calls
    rate: float | None = None  # requests per second the client was held to
    seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)

    @property
    def deals_deleted(self) -> int:
        """Deals marked deleted: by the CRM's own changes and by the deletion sweep."""
        return self.deals.deleted + self.deleted_by_sweep


def sync_crm(
    sessions: sessionmaker[Session],
    crm: Crm,
    full: bool = False,
    writeback: bool = False,
    on_progress: Progress | None = None,
    now: Callable[[], datetime] = utcnow,
    sweep: bool | None = None,
    settings: Settings | None = None,
) -> SyncSummary:
    """Sync pipelines, owners and deals (all of them, or those modified since the cursor); then write back notes.

    `sweep`: True runs the deletion sweep with an incremental run, False never, None
    when the last one is older than SWEEP_EVERY (a full sync sweeps from what it read).
    With `settings`, each committed page's stage entries get their nudges (services.nudges).
    """
    run = _Run(sessions, crm, on_progress or (lambda phase, n: None), now)
    run.settings = settings
    before = crm.call_counts()
    started = time.monotonic()
    with _one_sync_at_a_time(sessions):
        run.sync_pipelines()
        run.sync_owners()
        cursor = run.state(CURSOR_KEY)
        if full or not cursor:
            run.summary.mode = "full"
            run.sync_all_deals()
        else:
            run.sync_modified_deals(datetime.fromisoformat(cursor["modified_since"]))
            if sweep or (sweep is None and run.sweep_due()):
                run.sweep_deletions()
        if writeback:
            counts = write_back_shares(sessions, crm)
            run.summary.notes_written = counts.written + counts.recovered
            run.summary.notes_failed = counts.failed
    after = crm.call_counts()
    run.summary.api_calls = after.calls - before.calls
    run.summary.retries = after.retries - before.retries
    run.summary.rate_limited = after.rate_limited - before.rate_limited
    run.summary.rate = after.rate
    run.summary.seconds = time.monotonic() - started
    return run.summary


@contextmanager
def _one_sync_at_a_time(sessions: sessionmaker[Session]):
    """Refuse to start while another sync runs against the same PostgreSQL database.

    NOTE: a session-level advisory lock dies with its connection, so a killed sync never
    leaves a stale lock behind. SQLite is one embedded process; nothing to guard there.
    """
    engine = sessions.kw["bind"]
    if engine.dialect.name != "postgresql":
        yield
        return
    with engine.connect() as conn:
        got = conn.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": _LOCK_KEY}).scalar()
        conn.commit()
        if not got:
            raise Conflict("another sync is running against this database; try again when it ends")
        try:
            yield
        finally:
            conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": _LOCK_KEY})
            conn.commit()


class _Run:
    """One sync run: the pipelines it knows, its counters, and how it commits pages."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        crm: Crm,
        on_progress: Progress,
        now: Callable[[], datetime],
    ):
        self.sessions = sessions
        self.crm = crm
        self.on_progress = on_progress
        self.now = now
        self.summary = SyncSummary()
        self.stages: dict[str, dict[str, None]] = {}  # pipeline id -> its stage ids
        self.stage_owner: dict[str, str] = {}  # stage id -> the one pipeline that has it
        self.refetched = False
        self.seen: set[str] | None = None  # ids a full sync read in this process (None: resumed)
        self.settings: Settings | None = None  # given: nudges for the stage entries synced

    # -- state ---------------------------------------------------------------------------

    def state(self, key: str) -> dict | None:
        """A stored sync state value, or None."""
        with self.sessions.begin() as session:
            row = session.get(SyncState, key)
            return dict(row.value) if row else None

    @staticmethod
    def _put(session: Session, key: str, value: dict | None) -> None:
        row = session.get(SyncState, key)
        if value is None:
            if row is not None:
                session.delete(row)
        elif row is None:
            session.add(SyncState(key=key, value=value))
        else:
            row.value = value

    # -- pipelines and owners ------------------------------------------------------------

    def sync_pipelines(self) -> None:
        """Store every pipeline and stage (new or changed stages get mapping suggestions)."""
        records = self.crm.fetch_pipelines()
        with self.sessions.begin() as session:
            self.summary.pipelines.add(upsert_pipelines(session, records))
        self._index(records)
        self.on_progress("pipelines", len(records))

    def _index(self, records: list[PipelineRecord]) -> None:
        owners: dict[str, set[str]] = {}
        for pipeline in records:
            self.stages[pipeline.id] = {s.id: None for s in pipeline.stages}
            for stage in pipeline.stages:
                owners.setdefault(stage.id, set()).add(pipeline.id)
        self.stage_owner = {s: next(iter(p)) for s, p in owners.items() if len(p) == 1}

    def sync_owners(self) -> None:
        """Store every owner, in batches."""
        batch, seen = [], 0
        for owner in self.crm.iter_owners():
            batch.append(owner)
            if len(batch) >= OWNER_BATCH:
                seen += self._owners(batch)
                batch = []
        seen += self._owners(batch)
        self.on_progress("owners", seen)

    def _owners(self, batch) -> int:
        if batch:
            unique = list({o.id: o for o in batch}.values())
            with self.sessions.begin() as session:
                self.summary.owners.add(upsert_owners(session, unique))
        return len(batch)

    # -- deals ---------------------------------------------------------------------------

    def sync_all_deals(self) -> None:
        """Every deal, active then archived, resuming an interrupted full sync where it stopped."""
        progress = self.state(FULL_KEY)
        if progress:
            self.summary.resumed = True
        else:
            progress = {"phase": "active", "after": None, "started_at": self.now().isoformat()}
            with self.sessions.begin() as session:
                self._put(session, FULL_KEY, progress)
            # NOTE: only a full sync read from its first page in this process saw every id;
            # a resumed one leaves purged deals to the next sweep.
            self.seen = set()
        unchanged_since = utcnow()
        started_at = datetime.fromisoformat(progress["started_at"])
        phases = ["active", "archived"]
        for phase in phases[phases.index(progress["phase"]) :]:
            after = progress["after"] if phase == progress["phase"] else None
            pages = self.crm.iter_all_deals(after=after, archived=phase == "archived")
            for page in prefetch(pages):
                if not page.done:
                    updates = {FULL_KEY: {**progress, "phase": phase, "after": page.resume}}
                elif phase == "active":
                    updates = {FULL_KEY: {**progress, "phase": "archived", "after": None}}
                else:
                    cursor = (started_at - OVERLAP).isoformat()
                    updates = {FULL_KEY: None, CURSOR_KEY: {"modified_since": cursor}}
                if self.seen is not None:
                    self.seen.update(d.id for d in page.deals)
                self.apply(page.deals, updates)
        if self.seen is not None:
            self._mark_missing(self.seen, unchanged_since, started_at)

    def sync_modified_deals(self, since: datetime) -> None:
        """Deals modified since the cursor (with overlap): a cost that grows with the changes only."""
        start, end = since, self.now()
        for page in prefetch(self.crm.iter_deals_modified_between(start, end)):
            updates = {}
            if page.resume:
                moved = max(datetime.fromisoformat(page.resume) - OVERLAP, since)
                updates[CURSOR_KEY] = {"modified_since": moved.isoformat()}
            self.apply(page.deals, updates)

    def sweep_due(self) -> bool:
        """Whether the last deletion sweep is older than SWEEP_EVERY (or there was none)."""
        last = self.state(SWEEP_KEY)
        return not last or self.now() - datetime.fromisoformat(last["at"]) >= SWEEP_EVERY

    def sweep_deletions(self) -> None:
        """List every active deal's id; deals we hold from the CRM that are not listed are gone: mark them deleted."""
        unchanged_since, started_at = utcnow(), self.now()
        present: set[str] = set()
        for ids in self.crm.iter_deal_ids():
            present.update(ids)
            self.on_progress("sweep", len(present))
        self._mark_missing(present, unchanged_since, started_at)

    def _mark_missing(self, present: set[str], unchanged_since: datetime, at: datetime) -> None:
        """Mark deleted our live deals from this CRM that are not in `present`, and record the sweep."""
        with self.sessions.begin() as session:
            # NOTE: a deal written after the listing began (a webhook, say) may be missing
            # from it without being gone: only deals unchanged since then are judged.
            gone = mark_missing_deals_deleted(session, present, OFFLINE_SOURCES, unchanged_since)
            self._put(session, SWEEP_KEY, {"at": at.isoformat()})
        self.summary.swept = len(present)
        self.summary.deleted_by_sweep += gone

    def apply(self, deals: list[DealRecord], updates: dict[str, dict | None]) -> None:
        """Commit one page of deals together with the resume point it completes."""
        records = self._resolve(deals)

        def write(session: Session) -> UpsertCounts | None:
            counts = upsert_deals(session, records, SOURCE) if records else None
            for key, value in updates.items():
                self._put(session, key, value)
            return counts

        # NOTE: a webhook completing the same new deals at this moment can deadlock with this
        # page on PostgreSQL; PostgreSQL aborts one of the two, and the page is simply run again.
        counts = in_transaction(self.sessions, write)
        if counts is not None:
            self.summary.deals.add(counts)
        if records and self.settings is not None:
            ids = [r.id for r in records]
            after_stage_entries(self.sessions, self.settings, self.crm, ids, self.now())
        self.summary.deals_read += len(deals)
        self.summary.pages += 1
        self.on_progress("pages", self.summary.pages)
        if deals:
            self.on_progress("deals", self.summary.deals_read)

    def _resolve(self, deals: list[DealRecord]) -> list[DealRecord]:
        """Deals whose pipeline is known (refetching pipelines once), each entry tagged with its pipeline."""
        if any(d.pipeline_id not in self.stages for d in deals) and not self.refetched:
            self.refetched = True
            self.sync_pipelines()
        resolved: dict[str, DealRecord] = {}
        for deal in deals:
            if deal.pipeline_id not in self.stages:
                self.summary.skipped += 1
                message = f"deal {deal.id} skipped: unknown pipeline {deal.pipeline_id!r}"
                log.warning(message)
                if len(self.summary.warnings) < 20:
                    self.summary.warnings.append(message)
                continue
            resolved[deal.id] = _tag_pipelines(
                deal, self.stages[deal.pipeline_id], self.stage_owner
            )
        return list(resolved.values())


def prefetch(pages: Iterator[DealPage], depth: int = 2) -> Iterator[DealPage]:
    """Read up to `depth` pages ahead in a thread, so the CRM's latency overlaps our writes.

    Memory stays bounded by `depth` pages; an error in the reader is raised here, in order.
    """
    slots: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    end = object()

    def read() -> None:
        try:
            for page in pages:
                while not stop.is_set():
                    try:
                        slots.put(("page", page), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            slots.put(("end", end))
        except BaseException as e:  # handed to the consumer, raised there
            slots.put(("error", e))

    reader = threading.Thread(target=read, name="crm-prefetch", daemon=True)
    reader.start()
    try:
        while True:
            kind, item = slots.get()
            if kind == "end":
                return
            if kind == "error":
                raise item
            yield item
    finally:
        stop.set()
        reader.join(timeout=5)


def _tag_pipelines(deal: DealRecord, own_stages: dict, stage_owner: dict[str, str]) -> DealRecord:
    """Entries in a stage of another pipeline (the deal moved) carry that pipeline; unknown stages stay the deal's."""
    entries = []
    changed = False
    for entry in deal.stage_history:
        other = None if entry.stage_id in own_stages else stage_owner.get(entry.stage_id)
        if other and other != entry.pipeline_id:
            entries.append(StageEntry(entry.entered_at, entry.stage_id, other))
            changed = True
        else:
            entries.append(entry)
    if not changed:
        return deal
    return replace(deal, stage_history=tuple(entries))
