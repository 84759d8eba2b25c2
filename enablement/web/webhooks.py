"""HubSpot's webhook route (verify, validate, hand off, answer) and the inbox counts for operators."""

from __future__ import annotations

import functools
import hashlib
import logging
import time

from flask import Blueprint, jsonify, request
from marshmallow import Schema, fields
from sqlalchemy.exc import SQLAlchemyError

from enablement.context import ctx
from enablement.db.types import utcnow
from enablement.errors import Unauthenticated, Unavailable
from enablement.services.jobs import queue_deal_fetch, queue_nudges, queue_webhook_pending
from enablement.services.webhooks import receive_events, webhook_stats
from enablement.web.endpoint import after_answer, endpoint
from enablement.web.request_guard import read_body
from integrations.hubspot.mapping import DealProperties
from integrations.hubspot.signatures import verify_request
from integrations.hubspot.webhooks import BATCH_LIMIT, read_batch

log = logging.getLogger(__name__)

bp = Blueprint("webhooks", __name__)

# HubSpot's batches (at most 100 small events) are a few tens of kilobytes.
BODY_LIMIT = 1024 * 1024


@bp.post("/webhooks/hubspot")
def hubspot_webhook():
    """Verify HubSpot's v3 signature, store every event durably, apply the new ones, answer 200."""
    started = time.perf_counter()
    container = ctx()
    secret = container.settings.hubspot_client_secret
    if not secret:
        raise Unavailable("webhooks are off: HUBSPOT_CLIENT_SECRET is not set")
    body = read_body(BODY_LIMIT)
    problem = signature_problem(secret, body)
    if problem:
        log.warning("webhook refused: %s", problem)
        raise Unauthenticated("the request is not signed by HubSpot", {"reason": problem})
    properties = DealProperties.from_settings(container.settings)
    batch = read_batch(body, container.settings.hubspot_portal_id, properties)
    if batch.oversized:
        log.warning(
            "webhook batch of %d events (HubSpot sends at most %d)", len(batch.events), BATCH_LIMIT
        )
    result = receive_events(
        container.sessions, batch.events, future_skew=container.settings.webhook_future_skew
    )
    counts = result.counts()
    log.info(
        "webhook batch %s created_deals=%d ms=%.1f",
        " ".join(f"{name}={value}" for name, value in counts.items()),
        len(result.created_deals),
        (time.perf_counter() - started) * 1000,
    )
    # NOTE: follow-ups are jobs, so HubSpot never waits for them and they outlive this worker.
    # Completing deals known only from events is queued before the answer (a worker killed
    # after answering loses nothing); the pass over events an earlier delivery stored but
    # could not apply (the database failed between the two commits) after it, since the
    # scheduler runs that pass every minute anyway. The batch's nudges (NUDGES) are a job
    # queued before the answer too; a sync would also find their stage entries.
    _queue(queue_deal_fetch, container, list(result.unknown_deals))
    origin = hashlib.sha256(body).hexdigest()
    _queue(queue_nudges, container, [e.deal_id for e in batch.events if e.deal_id], origin)
    after_answer(functools.partial(_queue, queue_webhook_pending, container))
    return jsonify(counts), 200


def _queue(queue, container, *args) -> None:
    """Queue a follow-up job; a database failure only logs (the next sync or pass completes it)."""
    try:
        queue(container, *args)
    except SQLAlchemyError as e:
        log.warning("webhook follow-up not queued: %s", type(e).__name__)


def signature_problem(secret: str, body: bytes) -> str | None:
    """Why this request is not signed by HubSpot (v3, within 5 minutes, for our public URL), or None."""
    return verify_request(
        secret,
        ctx().settings.public_base_url,
        request.method,
        request.path,
        request.query_string,
        body,
        request.headers,
        utcnow(),
    )


class WebhookStatsSchema(Schema):
    """Counts over every HubSpot event the inbox holds."""

    stored = fields.Integer(metadata={"description": "events stored (each key once)"})
    duplicates = fields.Integer(metadata={"description": "repeated deliveries of stored events"})
    pending = fields.Integer(metadata={"description": "stored, not applied yet"})
    applied = fields.Integer()
    ignored = fields.Integer(metadata={"description": "nothing to change (untracked or older)"})
    rejected = fields.Integer(metadata={"description": "unreadable; kept with the reason"})


@bp.get("/api/v1/webhooks/stats")
@endpoint(
    summary="Counts of received, duplicate, applied, ignored and rejected webhook events",
    tag="webhooks",
    role="admin",
    response=WebhookStatsSchema,
    errors=(401, 403),
)
def stats(principal):
    """The inbox counts."""
    return webhook_stats(ctx().sessions)
