"""Nudges: when a deal enters a new buying stage, the top pieces reach its owner (docs/nudges.md).

Two plain, idempotent steps, keyed by (deal, stage entry) in the nudges table:
1. prepare: read the deal's current stage entry; skip it with a recorded reason (too old
   for the window, closed, deleted, unmapped, same buying stage as before), else rank the
   pieces with the recommender (services.recommendations: same ranking, reasons,
   exploration and holdout; the answer is logged as an impression with source `nudge`);
   a holdout deal or a stage with no live piece is skipped with that reason. Each piece
   gets a share (channel `nudge`) so the task can carry its trackable link;
2. deliver: claim the nudge, create the CRM task or note for the deal owner and/or send the
   signed outgoing webhook, and record the outcome. A failure is retried with backoff by
   deliver_pending_nudges until NUDGE_MAX_ATTEMPTS, then it stays `dead` (visible in
   nudge_stats), never dropped.

The webhook, sync and file-import paths call after_stage_entries after their own commit;
a scheduler calls deliver_pending_nudges. Nothing here starts a thread.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import urllib.error
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from enablement.config import Settings
from enablement.db.models import CrmStage, Deal, Nudge, StageChange
from enablement.db.types import utcnow
from enablement.domain.crm import Crm, CrmRefused
from enablement.domain.links import link_token, link_url
from enablement.errors import EnablementError, NotFound
from enablement.services.deals import is_deal_closed
from enablement.services.recommendations import recommend_for_deal
from enablement.services.shares import create_share

log = logging.getLogger(__name__)

SOURCE = "nudge"
ACTOR = "nudge"
# States (see the model) and the reasons a stage entry gets no nudge.
PREPARING, SKIPPED, PENDING, DELIVERING, DELIVERED, FAILED, DEAD = (
    "preparing",
    "skipped",
    "pending",
    "delivering",
    "delivered",
    "failed",
    "dead",
)
REASONS = (
    "too_old",
    "closed",
    "deleted",
    "unmapped",
    "same_buying_stage",
    "holdout",
    "no_live_piece",
)
# A claimed nudge whose worker vanished is taken over after this long.
LEASE = timedelta(minutes=5)
BACKOFF = timedelta(minutes=1)
MAX_BACKOFF = timedelta(hours=1)
WEBHOOK_TIMEOUT = 5.0  # seconds
SIGNATURE_HEADER = "X-Enablement-Signature"


@dataclass
class NudgeResult:
    """What one call did: nudges prepared, entries skipped per reason, deliveries made and failed."""

    prepared: list[int] = field(default_factory=list)
    skipped: dict[str, int] = field(default_factory=dict)
    delivered: int = 0
    failed: int = 0


@dataclass(frozen=True)
class _Entry:
    """A deal's current stage entry with what decides whether it is nudged."""

    deal_id: str
    pipeline_id: str
    stage_id: str
    entered_at: datetime
    buying_stage: str | None
    previous_buying_stage: str | None
    has_previous: bool
    closed: bool
    deleted: bool


def after_stage_entries(
    sessions: sessionmaker[Session],
    settings: Settings,
    crm: Crm | None,
    deal_ids: Iterable[str],
    now: datetime | None = None,
) -> NudgeResult:
    """Prepare and deliver the nudges of these deals' current stage entries (nothing when NUDGES=off).

    Call after the commit that stored the entries. Idempotent: an entry already seen (by any
    path or worker) is left alone.
    """
    result = NudgeResult()
    if settings.nudges == "off":
        return result
    now = now or utcnow()
    ids = sorted({str(i) for i in deal_ids})
    for start in range(0, len(ids), 500):
        prepare_nudges(sessions, settings, ids[start : start + 500], now, result)
    for nudge_id in list(result.prepared):
        _deliver(sessions, settings, crm, nudge_id, now, result)
    return result


def prepare_nudges(
    sessions: sessionmaker[Session],
    settings: Settings,
    deal_ids: list[str],
    now: datetime,
    result: NudgeResult,
) -> None:
    """Record each deal's current stage entry once: skipped with its reason, or prepared (pending)."""
    with sessions.begin() as session:
        entries = _current_entries(session, deal_ids)
        claimed = []
        for entry in entries:
            reason = _skip_reason(entry, now - settings.nudge_window)
            nudge_id = _insert(session, entry, reason, now)
            if nudge_id is None:
                continue  # seen before, by this path or another
            if reason is not None:
                result.skipped[reason] = result.skipped.get(reason, 0) + 1
            else:
                claimed.append(nudge_id)
    for nudge_id in claimed:
        _prepare(sessions, settings, nudge_id, now, result)


def _current_entries(session: Session, deal_ids: list[str]) -> list[_Entry]:
    """The latest stage entry of each deal (and the buying stage of the one before it)."""
    if not deal_ids:
        return []
    stages = {
        (p, s): (b, bool(c))
        for p, s, b, c in session.execute(
            select(CrmStage.pipeline_id, CrmStage.id, CrmStage.buying_stage, CrmStage.is_closed)
        )
    }
    deals = {
        d.id: d
        for d in session.execute(
            select(Deal.id, Deal.closed_at, Deal.deleted_at, Deal.merged_into_id).where(
                Deal.id.in_(deal_ids)
            )
        )
    }
    history: dict[str, list] = {}
    for row in session.execute(
        select(
            StageChange.deal_id,
            StageChange.pipeline_id,
            StageChange.stage_id,
            StageChange.entered_at,
        )
        .where(StageChange.deal_id.in_(deal_ids))
        .order_by(StageChange.deal_id, StageChange.entered_at, StageChange.id)
    ):
        history.setdefault(row.deal_id, []).append(row)
    entries = []
    for deal_id, rows in history.items():
        deal = deals.get(deal_id)
        if deal is None:
            continue
        last = rows[-1]
        buying, stage_closed = stages.get((last.pipeline_id, last.stage_id), (None, False))
        before = rows[-2] if len(rows) > 1 else None
        previous = (
            stages.get((before.pipeline_id, before.stage_id), (None, False))[0] if before else None
        )
        entries.append(
            _Entry(
                deal_id,
                last.pipeline_id,
                last.stage_id,
                last.entered_at,
                buying,
                previous,
                before is not None,
                is_deal_closed(stage_closed, deal.closed_at),
                deal.deleted_at is not None or deal.merged_into_id is not None,
            )
        )
    return entries


def _skip_reason(entry: _Entry, oldest: datetime) -> str | None:
    """Why this stage entry gets no nudge before ranking, or None."""
    if entry.entered_at < oldest:
        return "too_old"
    if entry.deleted:
        return "deleted"
    if entry.closed:
        return "closed"
    if entry.buying_stage is None:
        return "unmapped"
    if entry.has_previous and entry.previous_buying_stage == entry.buying_stage:
        return "same_buying_stage"
    return None


def _insert(session: Session, entry: _Entry, reason: str | None, now: datetime) -> int | None:
    """Insert the entry's nudge unless one exists (any worker); its id, or None when it existed."""
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    statement = (
        insert(Nudge)
        .values(
            deal_id=entry.deal_id,
            pipeline_id=entry.pipeline_id,
            stage_id=entry.stage_id,
            entered_at=entry.entered_at,
            buying_stage=entry.buying_stage,
            state=SKIPPED if reason else PREPARING,
            reason=reason,
            items=[],
            attempts=0,
            # NOTE: the inserting worker holds the preparation for a lease; a later pass takes it over.
            next_attempt_at=None if reason else now + LEASE,
            created_at=now,
        )
        .on_conflict_do_nothing(index_elements=["deal_id", "pipeline_id", "stage_id", "entered_at"])
        .returning(Nudge.id)
    )
    return session.execute(statement).scalar()


def _prepare(
    sessions: sessionmaker[Session],
    settings: Settings,
    nudge_id: int,
    now: datetime,
    result: NudgeResult,
) -> None:
    """Rank the pieces for a claimed nudge (an impression with source `nudge`) and give each a share."""
    with sessions() as session:
        row = session.get(Nudge, nudge_id)
        deal_id = row.deal_id
    try:
        answer = recommend_for_deal(
            sessions,
            settings,
            deal_id,
            settings.nudge_limit,
            requested_by=ACTOR,
            source=SOURCE,
            now=now,
        )
    except NotFound:  # deleted since the entry was read
        answer = {"holdout": False, "items": [], "impression_id": None, "deleted": True}
    reason = "holdout" if answer["holdout"] else None
    if answer.get("deleted"):
        reason = "deleted"
    if reason is None and not answer["items"]:
        reason = "no_live_piece"
    items = []
    if reason is None:
        for item in answer["items"]:
            try:
                share, _ = create_share(
                    sessions,
                    settings,
                    deal_id,
                    item["asset"]["id"],
                    actor=ACTOR,
                    shared_by=ACTOR,
                    channel=SOURCE,
                    impression_id=answer["impression_id"],
                )
            except EnablementError as e:  # retired meanwhile: the others still go
                log.info("nudge %s: piece %s left out: %s", nudge_id, item["asset"]["id"], e)
                continue
            items.append(
                {
                    "asset_id": item["asset"]["id"],
                    "title": item["asset"]["title"],
                    "reason": (item["reasons"] or [""])[0],
                    "share_id": share["id"],
                    "exploration": item["exploration"],
                }
            )
        if not items:
            reason = "no_live_piece"
    with sessions.begin() as session:
        session.execute(
            update(Nudge)
            .where(Nudge.id == nudge_id, Nudge.state == PREPARING)
            .values(
                state=SKIPPED if reason else PENDING,
                reason=reason,
                impression_id=answer["impression_id"],
                items=items,
                next_attempt_at=None if reason else now,
            )
        )
    if reason:
        result.skipped[reason] = result.skipped.get(reason, 0) + 1
    else:
        result.prepared.append(nudge_id)


def deliver_pending_nudges(
    sessions: sessionmaker[Session],
    settings: Settings,
    crm: Crm | None,
    now: datetime | None = None,
    limit: int = 100,
) -> NudgeResult:
    """For a scheduler: finish preparations whose worker vanished, and deliver nudges that are due (retries with backoff)."""
    result = NudgeResult()
    if settings.nudges == "off":
        return result
    now = now or utcnow()
    with sessions() as session:
        due = session.execute(
            select(Nudge.id, Nudge.state)
            .where(
                Nudge.state.in_((PREPARING, PENDING, FAILED, DELIVERING)),
                Nudge.next_attempt_at <= now,
            )
            .order_by(Nudge.next_attempt_at, Nudge.id)
            .limit(limit)
        ).all()
    for nudge_id, state in due:
        if state == PREPARING:
            if _take_over_preparation(sessions, nudge_id, now):
                _prepare(sessions, settings, nudge_id, now, result)
        else:
            result.prepared.append(nudge_id)
    for nudge_id in list(result.prepared):
        _deliver(sessions, settings, crm, nudge_id, now, result)
    return result


def _take_over_preparation(sessions: sessionmaker[Session], nudge_id: int, now: datetime) -> bool:
    with sessions.begin() as session:
        return bool(
            session.execute(
                update(Nudge)
                .where(Nudge.id == nudge_id, Nudge.state == PREPARING, Nudge.next_attempt_at <= now)
                .values(next_attempt_at=now + LEASE)
            ).rowcount
        )


def _claim(sessions: sessionmaker[Session], nudge_id: int, now: datetime) -> bool:
    """Take a due nudge for delivery (one worker wins); counts the attempt."""
    with sessions.begin() as session:
        return bool(
            session.execute(
                update(Nudge)
                .where(
                    Nudge.id == nudge_id,
                    Nudge.state.in_((PENDING, FAILED, DELIVERING)),
                    Nudge.next_attempt_at <= now,
                )
                .values(
                    state=DELIVERING,
                    attempts=Nudge.attempts + 1,
                    next_attempt_at=now + LEASE,
                )
            ).rowcount
        )


def _deliver(
    sessions: sessionmaker[Session],
    settings: Settings,
    crm: Crm | None,
    nudge_id: int,
    now: datetime,
    result: NudgeResult,
) -> None:
    """Deliver one nudge by the configured channel and webhook; record success or the failure."""
    if not _claim(sessions, nudge_id, now):
        return
    with sessions() as session:
        nudge = session.get(Nudge, nudge_id)
        deal = session.get(Deal, nudge.deal_id)
        stage = session.get(CrmStage, (nudge.pipeline_id, nudge.stage_id))
        message = _message(settings, nudge, deal, stage)
        attempts, crm_object_id, sent_at = (
            nudge.attempts,
            nudge.crm_object_id,
            nudge.webhook_sent_at,
        )
    values: dict = {}
    try:
        if settings.nudges in ("task", "note") and crm_object_id is None:
            if crm is None:
                raise _Failure("no CRM is configured (set HUBSPOT_ACCESS_TOKEN)")
            deal_id, marker = message["deal"]["id"], nudge_marker(nudge_id)
            # NOTE: an earlier attempt may have made the task or note and died before recording
            # it: look for its marker first, so a crash never leaves the rep two of them.
            find = crm.find_task if settings.nudges == "task" else crm.find_note
            crm_object_id = find(deal_id, marker) if attempts > 1 else None
            if crm_object_id is None and settings.nudges == "task":
                crm_object_id = crm.create_task(
                    deal_id, message["deal"]["owner_id"], message["subject"], message["text"], now
                )
            elif crm_object_id is None:
                crm_object_id = crm.create_note(deal_id, message["text"], now)
            values.update(channel=settings.nudges, crm_object_id=crm_object_id)
        if settings.nudge_webhook_url and sent_at is None:
            _post_webhook(settings, message)
            values["webhook_sent_at"] = now
    except (EnablementError, _Failure) as e:
        error = getattr(e, "message", None) or str(e)
        dead = attempts >= settings.nudge_max_attempts or isinstance(e, CrmRefused)
        backoff = min(BACKOFF * 2 ** (attempts - 1), MAX_BACKOFF)
        log.warning("nudge %s not delivered (attempt %d): %s", nudge_id, attempts, error)
        values.update(
            state=DEAD if dead else FAILED,
            last_error=error[:2000],
            next_attempt_at=None if dead else now + backoff,
        )
        result.failed += 1
    else:
        values.update(state=DELIVERED, last_error=None, next_attempt_at=None, delivered_at=now)
        result.delivered += 1
    with sessions.begin() as session:
        session.execute(update(Nudge).where(Nudge.id == nudge_id).values(**values))


class _Failure(Exception):
    """A delivery that could not be made (no CRM, the outgoing webhook refused it)."""


def nudge_marker(nudge_id: int) -> str:
    """The text that identifies a nudge's task or note in the CRM."""
    return f"[enablement nudge {nudge_id}]"


def _message(settings: Settings, nudge: Nudge, deal: Deal, stage: CrmStage | None) -> dict:
    """The nudge as the task, the note and the outgoing webhook carry it."""
    items = [
        {
            "asset_id": item["asset_id"],
            "title": item["title"],
            "reason": item["reason"],
            "link": link_url(
                settings.public_base_url, link_token(settings.secret_key, item["share_id"])
            ),
        }
        for item in nudge.items
    ]
    label = stage.label if stage is not None else nudge.stage_id
    name = deal.name or deal.id
    lines = [f"{name} entered {label} ({nudge.buying_stage}). Pieces to send now:"]
    for rank, item in enumerate(items, 1):
        lines.append(" ".join(f"{rank}. {item['title']}: {item['reason']}".split()))
        lines.append(item["link"])
    lines.append(nudge_marker(nudge.id))
    top = items[0]["title"] if items else ""
    return {
        "event": "nudge",
        "nudge_id": nudge.id,
        "deal": {"id": deal.id, "name": deal.name, "owner_id": deal.owner_id},
        "stage": {"pipeline_id": nudge.pipeline_id, "id": nudge.stage_id, "label": label},
        "buying_stage": nudge.buying_stage,
        "entered_at": nudge.entered_at.isoformat().replace("+00:00", "Z"),
        "items": items,
        "subject": " ".join(f"Send “{top}” to {name} ({nudge.buying_stage})".split())[:500],
        "text": "\n".join(lines),
    }


def webhook_signature(secret: str, body: bytes) -> str:
    """The outgoing webhook's signature header value: sha256=<hex HMAC-SHA256 of the raw body>."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _post_webhook(settings: Settings, message: dict) -> None:
    """POST the nudge to NUDGE_WEBHOOK_URL, signed; a non-2xx answer or no answer is a failure."""
    payload = {k: v for k, v in message.items() if k not in ("subject", "text")}
    body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
    request = urllib.request.Request(  # noqa: S310 (an http(s) URL checked by config)
        settings.nudge_webhook_url,
        data=body,
        method="POST",
        headers={
            "Content-Type": "application/json",
            SIGNATURE_HEADER: webhook_signature(settings.nudge_webhook_secret or "", body),
            "X-Enablement-Nudge-Id": str(message["nudge_id"]),
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=WEBHOOK_TIMEOUT) as answer:  # noqa: S310
            answer.read(1024)
    except urllib.error.HTTPError as e:
        raise _Failure(f"the nudge webhook answered {e.code}") from None
    except (urllib.error.URLError, OSError) as e:
        raise _Failure(f"the nudge webhook could not be reached ({type(e).__name__})") from None


def prepared_pieces(
    sessions: sessionmaker[Session], settings: Settings, deal_id: str
) -> dict | None:
    """The pieces already prepared for the deal's current stage entry (a nudge), or None.

    {"impression_id", "items": [{"asset_id", "title", "reason", "link"}]}: the workflow action
    answers these instead of ranking (and logging) again.
    """
    with sessions() as session:
        entries = _current_entries(session, [deal_id])
        if not entries:
            return None
        entry = entries[0]
        nudge = session.scalars(
            select(Nudge).where(
                Nudge.deal_id == deal_id,
                Nudge.pipeline_id == entry.pipeline_id,
                Nudge.stage_id == entry.stage_id,
                Nudge.entered_at == entry.entered_at,
                Nudge.state.in_((PENDING, DELIVERING, DELIVERED, FAILED, DEAD)),
            )
        ).first()
        if nudge is None or not nudge.items:
            return None
        deal = session.get(Deal, deal_id)
        message = _message(settings, nudge, deal, None)
    return {"impression_id": nudge.impression_id, "items": message["items"]}


def nudge_stats(sessions: sessionmaker[Session], recent: int = 20) -> dict:
    """Counts per state and per skip reason, and the latest failed or dead deliveries with their error."""
    with sessions() as session:
        states = dict(
            session.execute(select(Nudge.state, func.count()).group_by(Nudge.state)).all()
        )
        reasons = dict(
            session.execute(
                select(Nudge.reason, func.count())
                .where(Nudge.state == SKIPPED)
                .group_by(Nudge.reason)
            ).all()
        )
        failing = session.execute(
            select(
                Nudge.id,
                Nudge.deal_id,
                Nudge.state,
                Nudge.attempts,
                Nudge.last_error,
                Nudge.next_attempt_at,
            )
            .where(Nudge.state.in_((FAILED, DEAD)))
            .order_by(Nudge.id.desc())
            .limit(recent)
        ).all()
    return {
        "states": {
            s: int(states.get(s, 0))
            for s in (SKIPPED, PENDING, DELIVERING, DELIVERED, FAILED, DEAD, PREPARING)
        },
        "skipped": {r: int(reasons.get(r, 0)) for r in REASONS},
        "failing": [
            {
                "id": r.id,
                "deal_id": r.deal_id,
                "state": r.state,
                "attempts": r.attempts,
                "last_error": r.last_error,
                "next_attempt_at": r.next_attempt_at,
            }
            for r in failing
        ],
    }
