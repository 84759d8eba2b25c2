"""The CRM webhook use case: store every event durably, then apply each one exactly once.

Order of work for a batch (house style: verify, validate, store, apply, answer):
1. every event, readable or not, is committed to the inbox (webhook_events) under its
   unique key; a repeat delivery only counts a duplicate on the stored row;
2. the events this delivery stored first are applied in a second transaction: the
   deals they touch are locked (row locks on PostgreSQL, so writers queue per deal and
   never behind one shared row), each event is claimed while still pending, applied in
   occurredAt order and marked, so an event is never applied twice;
3. deals the service did not know are created from the events at once, and, when a CRM
   is configured, completed from it by a background job after the answer (HubSpot
   waits at most 5 seconds for it; the CRM's rate limit and retries could take longer):
   the result names them (unknown_deals) and the caller queues the job.

What an event does to a deal (history entries, the newest change wins, merges) is
decided by enablement.domain.deal_history on plain records; this module loads the
locked deals, calls it and stores the result. Both transactions run under the inbox's
one retry policy (inbox.in_transaction).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from enablement.db import webhooks as inbox
from enablement.db.crm import (
    WEBHOOK_SOURCE,
    create_deal_if_absent,
    deal_states,
    lock_deals,
    save_deal_states,
    stage_index,
    upsert_deals,
    upsert_pipelines,
)
from enablement.db.models import Deal, Pipeline
from enablement.db.types import utcnow
from enablement.domain.crm import Crm
from enablement.domain.deal_events import (
    APPLIED,
    DEFAULT_FUTURE_SKEW,
    IGNORED,
    PENDING,
    REJECTED,
    STAGE,
    DealEvent,
    IgnoredEvent,
    RejectedEvent,
    reject_if_ahead,
)
from enablement.domain.deal_history import apply_events, stage_pipeline
from enablement.errors import Unavailable

log = logging.getLogger(__name__)

SOURCE = WEBHOOK_SOURCE
# A stored event whose apply never ran is picked up by a later delivery's pass after this long.
RETRY_AFTER = timedelta(minutes=1)

Event = DealEvent | RejectedEvent


@dataclass
class BatchResult:
    """What one delivery did, for the answer, the log line and the tests."""

    received: int = 0
    stored: int = 0
    duplicates: int = 0
    rejected: int = 0
    applied: int = 0
    ignored: int = 0
    pending: int = 0
    created_deals: list[str] = field(default_factory=list)
    # Deals the events named that were not stored before (created, or waiting for a pipeline).
    unknown_deals: list[str] = field(default_factory=list)
    # (inbox id, event) of the events left pending (held for a stage the CRM fetch may bring).
    held: list[tuple[int, DealEvent]] = field(default_factory=list, repr=False)

    def counts(self) -> dict:
        """The counters as a plain dict (the HTTP answer)."""
        return {
            "received": self.received,
            "stored": self.stored,
            "duplicates": self.duplicates,
            "rejected": self.rejected,
            "applied": self.applied,
            "ignored": self.ignored,
            "pending": self.pending,
        }


def receive_events(
    sessions: sessionmaker[Session],
    events: Sequence[Event],
    future_skew: timedelta = DEFAULT_FUTURE_SKEW,
) -> BatchResult:
    """Store a delivery's events durably (one commit; Unavailable if the database fails), then apply the new ones.

    Events dated more than `future_skew` past this host's clock are stored as rejected.
    """
    now = utcnow()
    events = [reject_if_ahead(event, now, future_skew) for event in events]
    result = BatchResult(received=len(events))
    rows = [_row(event) for event in events]
    inserted, repeats = _store(sessions, rows)
    result.stored, result.duplicates = len(inserted), len(repeats)
    todo: list[tuple[int, DealEvent]] = []
    for event in events:
        row_id = inserted.pop(_key(event), None)
        if row_id is None:
            continue
        if isinstance(event, IgnoredEvent):
            result.ignored += 1
        elif isinstance(event, RejectedEvent):
            result.rejected += 1
        else:
            todo.append((row_id, event))
    apply_stored(sessions, todo, result)
    return result


def _store(sessions: sessionmaker[Session], rows: list[dict]) -> tuple[dict, list]:
    """Commit the inbox rows (retrying a deadlock); Unavailable when the database keeps failing."""
    try:
        return inbox.in_transaction(sessions, lambda session: inbox.store_events(session, rows))
    except DBAPIError as e:
        # NOTE: not acknowledged, so HubSpot delivers the batch again later.
        log.warning("webhook events not stored: database error %s", type(e.orig).__name__)
        raise Unavailable("the database is not available; the events were not stored") from None


def apply_stored(
    sessions: sessionmaker[Session], todo: list[tuple[int, DealEvent]], result: BatchResult
) -> None:
    """Apply stored events (retrying a deadlock); on a lasting database failure they stay pending."""
    if not todo:
        return
    try:
        counts = inbox.in_transaction(sessions, lambda session: _apply_all(session, todo))
    except DBAPIError as e:
        log.warning(
            "webhook events stored but not applied (%s); they stay pending", type(e.orig).__name__
        )
        result.pending += len(todo)
        return
    result.applied += counts[APPLIED]
    result.ignored += counts[IGNORED]
    result.pending += counts[PENDING]
    result.created_deals += counts["created"]
    result.unknown_deals += counts["unknown"]
    result.held += counts["held"]


def _apply_all(session: Session, todo: list[tuple[int, DealEvent]]) -> dict:
    """Claim the still-pending events, lock their deals, apply them (domain rules), store the deals and marks."""
    claimed = inbox.claim_pending(session, [row_id for row_id, _ in todo])
    items = [(row_id, e) for row_id, e in todo if row_id in claimed]
    ids = {e.deal_id for _, e in items} | {i for _, e in items for i in e.merged_ids}
    rows = lock_deals(session, ids)
    unknown = sorted({e.deal_id for _, e in items} - rows.keys())
    created = _create_missing(session, [e for _, e in items], rows)
    before = deal_states(session, rows.values(), inbox.newest_applied(session, list(rows)))
    after, outcomes = apply_events(before, items, stage_index(session))
    save_deal_states(session, before, after, SOURCE)
    inbox.mark(session, {row_id: (o.status, o.reason) for row_id, o in outcomes.items()})
    counts = {APPLIED: 0, IGNORED: 0, PENDING: 0, "created": created, "unknown": unknown}
    counts["held"] = [(k, e) for k, e in items if k in outcomes and outcomes[k].held_stage]
    for outcome in outcomes.values():
        counts[outcome.status] += 1
    return counts


def _create_missing(session: Session, events: list[DealEvent], deals: dict[str, Deal]) -> list[str]:
    """Create the deals events name that are not stored yet, in id order; returns their ids."""
    created = []
    stages = None
    for deal_id in sorted({e.deal_id for e in events} - deals.keys()):
        stages = stages if stages is not None else stage_index(session)
        own = [e for e in events if e.deal_id == deal_id]
        values = _new_deal_values(session, own, deals, stages)
        if values is None:
            continue
        create_deal_if_absent(session, {"id": deal_id, **values})
        deals.update(lock_deals(session, [deal_id]))
        created.append(deal_id)
    return created


def _new_deal_values(
    session: Session, events: list[DealEvent], deals: dict[str, Deal], stages: dict
) -> dict | None:
    """Attributes of a deal known only from its events (a merge copies the primary deal's); None without a pipeline."""
    values: dict = {"created_at": min(e.occurred_at for e in events), "source_modified_at": None}
    merged_from = [deals[i] for e in events for i in e.merged_ids if i in deals]
    if merged_from:
        first = next((d for d in merged_from if d.id == events[0].primary_id), merged_from[0])
        for name in (
            "name",
            "company",
            "amount",
            "currency",
            "industry",
            "owner_id",
            "pipeline_id",
        ):
            values[name] = getattr(first, name)
        values["personas"], values["topics"] = list(first.personas), list(first.topics)
        values["created_at"] = min(d.created_at for d in merged_from)
        return values
    pipeline = _pipeline_from_events(session, events, stages)
    if pipeline is None:
        return None
    values["pipeline_id"] = pipeline
    return values


def _pipeline_from_events(session: Session, events: list[DealEvent], stages: dict) -> str | None:
    """The pipeline a new deal's events point at, else the first stored pipeline; None when none is stored."""
    for event in events:
        if event.field == "pipeline_id" and session.get(Pipeline, event.value) is not None:
            return event.value
    first = session.scalars(
        select(Pipeline.id)
        .order_by(Pipeline.archived, Pipeline.display_order, Pipeline.id)
        .limit(1)
    ).first()
    if first is None:
        return None
    for event in events:
        if event.field == STAGE:
            return stage_pipeline(stages, event.value, first)
    return first


def apply_unapplied(
    sessions: sessionmaker[Session],
    read_event: Callable[[dict], Event],
    older_than: timedelta = RETRY_AFTER,
    limit: int = 100,
    held: bool = False,
    future_skew: timedelta = DEFAULT_FUTURE_SKEW,
) -> BatchResult:
    """A later pass: apply stored events whose apply never ran, re-read from their stored payload.

    held: instead, the events held with a reason (an unknown stage or pipeline), after a
    sync may have brought what they wait for; those still waiting stay held.
    """
    result = BatchResult()
    with sessions() as session:
        if held:
            rows = inbox.held(session, limit)
        else:
            rows = inbox.unapplied(session, utcnow() - older_than, limit)
    todo, unreadable = [], {}
    now = utcnow()
    for row_id, payload in rows:
        event = reject_if_ahead(read_event(payload), now, future_skew)
        if isinstance(event, RejectedEvent):
            unreadable[row_id] = (REJECTED, event.reason[:2000])
        else:
            todo.append((row_id, event))
    if unreadable:
        with sessions.begin() as session:
            inbox.mark(session, unreadable)
        result.rejected += len(unreadable)
    result.received = len(rows)
    apply_stored(sessions, todo, result)
    return result


def complete_from_crm(
    sessions: sessionmaker[Session],
    crm: Crm,
    deal_ids: list[str],
    read_event: Callable[[dict], Event] | None = None,
) -> int:
    """Fetch deals the webhook created from the CRM and store them by the sync's rule; returns how many.

    Runs as a job after the answer. Entries the events added after the CRM's copy was read
    are kept. A failure raises (EnablementError from the CRM, SQLAlchemyError): the job is
    tried again with backoff, and the next `enablement sync` completes the deals anyway.
    """
    records = crm.fetch_deals(deal_ids)
    with sessions.begin() as session:
        known = set(session.scalars(select(Pipeline.id)))
    if any(r.pipeline_id not in known for r in records):
        pipelines = crm.fetch_pipelines()
        with sessions.begin() as session:
            upsert_pipelines(session, pipelines)
            known = set(session.scalars(select(Pipeline.id)))
    records = [r for r in records if r.pipeline_id in known]

    fetched = [r.id for r in records]

    def store(session: Session) -> None:
        lock_deals(session, [r.id for r in records])
        # Entries events added after HubSpot's copy was modified are kept by upsert_deals.
        upsert_deals(session, records, "hubspot")
        # Events held for a stage the fetch has just stored apply now, by the usual rules.
        if read_event is not None:
            held = [(k, read_event(payload)) for k, payload in inbox.held_for(session, fetched)]
            held = [(k, e) for k, e in held if not isinstance(e, RejectedEvent)]
            if held:
                _apply_all(session, held)
        # The CRM's copy was read after these events occurred, so it already holds them.
        inbox.settle_pending(
            session, [r.id for r in records], "included in the CRM's copy of the deal"
        )

    # NOTE: a sync page storing the same new deals can deadlock with this on PostgreSQL; the
    # inbox's retry policy runs it again (and the job itself is retried after that).
    inbox.in_transaction(sessions, store)
    log.info("webhook deals completed from the CRM: fetched=%d", len(records))
    return len(records)


def webhook_stats(sessions: sessionmaker[Session]) -> dict:
    """Counts over the whole inbox: stored per status and repeated deliveries."""
    with sessions() as session:
        return inbox.inbox_counts(session)


def _key(event: Event) -> tuple:
    k = event.key
    return (k.portal_id, k.subscription_id, k.event_id, k.occurred_at)


def _row(event: Event) -> dict:
    """The inbox row of an event."""
    k = event.key
    common = {
        "portal_id": k.portal_id,
        "subscription_id": k.subscription_id,
        "event_id": k.event_id,
        "occurred_at": k.occurred_at,
        "subscription_type": event.subscription_type[:64],
        "object_id": event.deal_id,
        "payload": event.payload,
    }
    if isinstance(event, RejectedEvent):
        return {
            **common,
            "status": IGNORED if isinstance(event, IgnoredEvent) else REJECTED,
            "error": event.reason[:2000],
            "property_name": None,
        }
    return {**common, "status": PENDING, "error": None, "property_name": event.ordering_field}
