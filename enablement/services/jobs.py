"""What background work the product has, what each job does, and what the scheduler queues.

Every piece of work that does not belong in a request is one of these kinds, queued on the one
job engine (enablement.queue) under a key that makes it idempotent: asking again while it is
queued or running adds nothing.

- report: compute a report into the report cache (however many hosts ask, once);
- deal_fetch: complete from the CRM the deals a webhook created from its events alone;
- webhook_pending: apply stored events whose apply never ran (the database failed between
  the two commits of a delivery);
- sync: an incremental CRM sync, with the daily deletion sweep when due;
- link_views: store the link views spooled in Redis while the database was away;
- nudges: prepare and deliver the nudges of deals whose stage a webhook changed (NUDGES);
- nudge_delivery: deliver nudges that are due (retries with their own backoff per nudge, and
  preparations whose worker vanished).
"""

from __future__ import annotations

import functools
import hashlib
import logging
from datetime import datetime, timedelta

from enablement.db import jobs as table
from enablement.db.types import utcnow
from enablement.domain.timestamps import format_timestamp, parse_timestamp
from enablement.queue import JobQueue, Kind
from enablement.services.tokens import prune_web_sessions

log = logging.getLogger(__name__)

# Finished jobs are kept this long for the admin's list, then forgotten.
KEEP_SUCCEEDED = timedelta(days=7)
WEBHOOK_PENDING_KEY = "webhook-pending"
LINK_VIEWS_KEY = "link-views"
NUDGE_DELIVERY_KEY = "nudge-delivery"


def _report(container, payload: dict) -> None:
    from enablement.services.reports import get_report

    as_of = parse_timestamp(payload["as_of"]) if payload.get("as_of") else None
    get_report(container.sessions, container.settings, payload["kind"], as_of)


def _deal_fetch(container, payload: dict) -> None:
    from enablement.services.webhooks import complete_from_crm

    if container.crm is None:
        log.warning("deal fetch skipped: no CRM configured in this process")
        return
    complete_from_crm(
        container.sessions, container.crm, list(payload["deal_ids"]), _event_reader(container)
    )
    # The fetched deals' stage entries may deserve a nudge too (idempotent per entry).
    queue_nudges(container, list(payload["deal_ids"]), "deal-fetch")


def _nudges(container, payload: dict) -> None:
    from enablement.services.nudges import after_stage_entries

    after_stage_entries(
        container.sessions, container.settings, container.crm, list(payload["deal_ids"])
    )


def _nudge_delivery(container, payload: dict) -> None:
    from enablement.services.nudges import deliver_pending_nudges

    deliver_pending_nudges(container.sessions, container.settings, container.crm)


# Held webhook events (a stage no pipeline had) looked at again after each sync.
HELD_PER_SYNC = 1000


def apply_held(container):
    """Apply the webhook events held for a stage or pipeline, now that a sync may have brought it."""
    from enablement.services.webhooks import apply_unapplied

    return apply_unapplied(
        container.sessions,
        _event_reader(container),
        held=True,
        limit=HELD_PER_SYNC,
        future_skew=container.settings.webhook_future_skew,
    )


def _event_reader(container):
    """How stored HubSpot events are read again, with this deployment's deal properties."""
    from integrations.hubspot.mapping import DealProperties
    from integrations.hubspot.webhooks import read_event

    return functools.partial(
        read_event, properties=DealProperties.from_settings(container.settings)
    )


def _webhook_pending(container, payload: dict) -> None:
    from enablement.services.webhooks import apply_unapplied

    result = apply_unapplied(
        container.sessions,
        _event_reader(container),
        future_skew=container.settings.webhook_future_skew,
    )
    if result.received:
        log.info(
            "webhook pending pass %s",
            " ".join(f"{name}={value}" for name, value in result.counts().items()),
        )
    queue_deal_fetch(container, result.unknown_deals)


def _sync(container, payload: dict) -> None:
    from enablement.services.sync import sync_crm

    if container.crm is None:
        log.warning("scheduled sync skipped: HubSpot is not configured")
        return
    summary = sync_crm(
        container.sessions,
        container.crm,
        full=bool(payload.get("full")),
        writeback=container.settings.hubspot_writeback == "notes",
        settings=container.settings,
    )
    held = apply_held(container)
    log.info("scheduled sync done: %s; held webhook events looked at: %d", summary, held.received)


def _link_views(container, payload: dict) -> None:
    from enablement.services.link_spool import replay_spooled_views

    replay_spooled_views(container.settings, container.sessions)


KINDS: dict[str, Kind] = {
    "report": Kind(_report, queue="slow", max_attempts=2, background_priority=True),
    "deal_fetch": Kind(_deal_fetch, max_attempts=5),
    "webhook_pending": Kind(_webhook_pending, max_attempts=3),
    "sync": Kind(_sync, queue="slow", max_attempts=3),
    "link_views": Kind(_link_views, max_attempts=5),
    "nudges": Kind(_nudges, max_attempts=3),
    "nudge_delivery": Kind(_nudge_delivery, max_attempts=3),
}


def job_queue(container) -> JobQueue:
    """The job queue of an app's container, with the product's kinds."""
    return JobQueue(container, KINDS)


def queue_report(container, key: str, kind: str, as_of: datetime | None) -> None:
    """Compute this report in a worker unless it is already queued or running."""
    payload = {"kind": kind, "as_of": format_timestamp(as_of) if as_of else None}
    container.jobs.enqueue("report", f"report:{key}", payload)


def queue_deal_fetch(container, deal_ids: list[str]) -> None:
    """Complete these webhook-created deals from the CRM (when one is configured), once per set."""
    if not deal_ids or container.crm is None:
        return
    ids = sorted(set(deal_ids))
    digest = hashlib.sha256("\n".join(ids).encode()).hexdigest()[:32]
    container.jobs.enqueue("deal_fetch", f"deal-fetch:{digest}", {"deal_ids": ids})


def queue_nudges(container, deal_ids: list[str], origin: str) -> None:
    """Prepare and deliver the nudges of these deals' current stage entries.

    origin names what changed them (a digest of the webhook delivery's body, a fetch): a
    delivery HubSpot repeats is one job, while a new delivery for the same deals is a job of
    its own, even if the last one is still running (it may have read the entries already).
    """
    if not deal_ids or container.settings.nudges == "off":
        return
    ids = sorted(set(deal_ids))
    digest = hashlib.sha256("\n".join([origin, *ids]).encode()).hexdigest()[:32]
    container.jobs.enqueue("nudges", f"nudges:{digest}", {"deal_ids": ids})


def queue_webhook_pending(container) -> None:
    """A pass over stored events whose apply never ran."""
    container.jobs.enqueue("webhook_pending", WEBHOOK_PENDING_KEY)


def queue_link_views(container) -> None:
    """Store the link views spooled while the database was away."""
    container.jobs.enqueue("link_views", LINK_VIEWS_KEY)


def sync_key(now: datetime, every_minutes: int) -> str:
    """One scheduled sync per period, however many schedulers run: the period's start is the key."""
    period = int(now.timestamp() // (every_minutes * 60)) * every_minutes * 60
    return f"sync:{format_timestamp(datetime.fromtimestamp(period, now.tzinfo))}"


def tick(container, now: datetime | None = None) -> dict:
    """The scheduler's periodic pass: queue what is due, rescue stranded jobs, forget old ones."""
    now = now or utcnow()
    every = container.settings.sync_every_minutes
    if every and container.crm is not None:
        container.jobs.enqueue("sync", sync_key(now, every))
    queue_webhook_pending(container)
    if container.settings.redis_url:
        queue_link_views(container)
    if container.settings.nudges != "off":
        container.jobs.enqueue("nudge_delivery", NUDGE_DELIVERY_KEY)
    resent = container.jobs.resend_stranded()
    with container.sessions.begin() as session:
        pruned = table.prune(session, KEEP_SUCCEEDED)
    prune_web_sessions(container.sessions)
    return {"resent": resent, "pruned": pruned}


def list_jobs(sessions, states=(), kind: str | None = None, limit: int = 100) -> dict:
    """The admin's view: counts per state and the latest jobs (newest change first)."""
    with sessions() as session:
        rows = table.listed(session, states, kind, limit)
        counts = table.counts(session)
    return {
        "counts": counts,
        "jobs": [
            {
                "id": row.id,
                "key": row.key,
                "kind": row.kind,
                "state": row.state,
                "attempts": row.attempts,
                "max_attempts": row.max_attempts,
                "last_error": row.last_error,
                "owner": row.owner,
                "created_at": format_timestamp(row.created_at),
                "updated_at": format_timestamp(row.updated_at),
                "run_after": format_timestamp(row.run_after),
                "finished_at": format_timestamp(row.finished_at) if row.finished_at else None,
            }
            for row in rows
        ],
    }
