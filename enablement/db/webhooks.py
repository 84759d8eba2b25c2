"""The webhook inbox: events stored once per key, their status, and the counts operators read.

Callers own the transaction; nothing here commits.
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TypeVar

from sqlalchemy import func, select, tuple_, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from enablement.db.models import WebhookEvent
from enablement.db.types import upsert_insert, utcnow
from enablement.domain.deal_events import APPLIED, PENDING, STATUSES
from enablement.domain.deal_history import HELD_FOR_STAGE

KEY = ("portal_id", "subscription_id", "event_id", "occurred_at")
# Rows a statement carries at once (SQLite allows 32,766 bound values; 12 columns a row).
_CHUNK = 500
# A transaction that meets a transient failure runs at most this often, pausing PAUSE x attempt seconds.
ATTEMPTS = 3
PAUSE = 0.05
# Driver errors (psycopg's names) a second run of the same transaction may not meet.
_TRANSIENT = {"DeadlockDetected", "SerializationFailure", "LockNotAvailable"}

T = TypeVar("T")


def is_transient(error: DBAPIError) -> bool:
    """A failure that the same transaction run again may not meet (deadlock, serialisation, lock wait)."""
    return type(error.orig).__name__ in _TRANSIENT or "locked" in str(error.orig).lower()


def in_transaction(
    sessions: sessionmaker[Session],
    work: Callable[[Session], T],
    attempts: int = ATTEMPTS,
    pause: float = PAUSE,
) -> T:
    """work(session) in one committed transaction, run again when it fails transiently; the last error re-raised.

    The webhook path's one retry policy: a deadlock or serialisation failure between two
    workers is retried; any other database error (a lost connection, a constraint) is not.
    """
    for attempt in range(1, attempts + 1):
        try:
            with sessions.begin() as session:
                return work(session)
        except DBAPIError as e:
            if attempt == attempts or not is_transient(e):
                raise
            time.sleep(pause * attempt)
    raise ValueError("attempts must be at least 1")


def store_events(session: Session, rows: Sequence[dict]) -> tuple[dict[tuple, int], list[tuple]]:
    """Insert inbox rows unless their key is stored already; count a repeat on the stored row.

    Returns ({key: id} of the rows this call inserted, [keys that were repeats]). Two
    workers storing the same event at once: exactly one insert wins (ON CONFLICT DO NOTHING
    on the unique key), the other sees a repeat.
    """
    now = utcnow()
    unique: dict[tuple, dict] = {}
    repeats: list[tuple] = []
    for row in rows:
        key = tuple(row[k] for k in KEY)
        if key in unique:
            repeats.append(key)
        else:
            unique[key] = {"received_at": now, "duplicates": 0, **row}
    inserted: dict[tuple, int] = {}
    # NOTE: keys in one global order, so two workers storing overlapping batches take the
    # unique index's locks in the same order and cannot deadlock each other.
    values = [unique[key] for key in sorted(unique, key=_order)]
    table = WebhookEvent.__table__
    # NOTE: one cached statement run over many parameter sets (SQLAlchemy batches them into
    # multi-row INSERTs itself); a .values(list) statement is compiled anew for every batch.
    statement = (
        upsert_insert(session, table)
        .on_conflict_do_nothing(index_elements=list(KEY))
        .returning(table.c.id, *(table.c[k] for k in KEY))
    )
    if values:
        for row_id, *key in session.execute(statement, values):
            inserted[tuple(key)] = row_id
    repeats += [key for key in unique if key not in inserted]
    _count_repeats(session, repeats)
    return inserted, repeats


def _count_repeats(session: Session, repeats: list[tuple]) -> None:
    """Add each repeated delivery to its stored row's duplicate count (rows locked in id order)."""
    if not repeats:
        return
    times = Counter(repeats)
    columns = [getattr(WebhookEvent, k) for k in KEY]
    ids: dict[int, list[int]] = defaultdict(list)
    keys = sorted(times, key=_order)
    for start in range(0, len(keys), _CHUNK):
        chunk = keys[start : start + _CHUNK]
        for row_id, *key in session.execute(
            select(WebhookEvent.id, *columns).where(tuple_(*columns).in_(chunk))
        ):
            ids[times[tuple(key)]].append(row_id)
    for n, row_ids in ids.items():
        session.execute(
            update(WebhookEvent)
            .where(WebhookEvent.id.in_(sorted(row_ids)))
            .values(duplicates=WebhookEvent.duplicates + n)
        )


def _order(key: tuple) -> tuple:
    """A total order of event keys (the same in every worker)."""
    portal, subscription, event_id, occurred_at = key
    return (portal, subscription, event_id, occurred_at.isoformat())


def mark(session: Session, outcomes: dict[int, tuple[str, str | None]]) -> None:
    """Record what applying each event did: {row id: (status, reason)}; applied_at once not pending."""
    groups: dict[tuple[str, str | None], list[int]] = defaultdict(list)
    for row_id, outcome in outcomes.items():
        groups[outcome].append(row_id)
    now = utcnow()
    for (status, error), row_ids in groups.items():
        values = {"status": status, "error": error}
        if status != PENDING:
            values["applied_at"] = now
        session.execute(
            update(WebhookEvent).where(WebhookEvent.id.in_(sorted(row_ids))).values(**values)
        )


def claim_pending(session: Session, ids: Sequence[int]) -> set[int]:
    """Those of `ids` still pending, locked for this transaction (so no event is applied twice)."""
    if not ids:
        return set()
    # NOTE: waits for a row another worker holds (it may only be counting a duplicate on it);
    # skipping it instead would leave the event pending for good. Id order: no deadlock.
    query = (
        select(WebhookEvent.id)
        .where(WebhookEvent.id.in_(list(ids)), WebhookEvent.status == PENDING)
        .order_by(WebhookEvent.id)
        .with_for_update()
    )
    return set(session.scalars(query))


def settle_pending(session: Session, deal_ids: Sequence[str], note: str) -> int:
    """Mark the pending events of these deals applied (their effect arrived another way); returns how many."""
    if not deal_ids:
        return 0
    result = session.execute(
        update(WebhookEvent)
        .where(WebhookEvent.object_id.in_(list(deal_ids)), WebhookEvent.status == PENDING)
        .values(status=APPLIED, applied_at=utcnow(), error=note)
    )
    return result.rowcount


def newest_applied(session: Session, deal_ids: Sequence[str]) -> dict[tuple[str, str], datetime]:
    """{(deal, field): when its newest applied change occurred}, for these deals."""
    if not deal_ids:
        return {}
    rows = session.execute(
        select(
            WebhookEvent.object_id, WebhookEvent.property_name, func.max(WebhookEvent.occurred_at)
        )
        .where(
            WebhookEvent.object_id.in_(sorted(set(deal_ids))),
            WebhookEvent.property_name.is_not(None),
            WebhookEvent.status == APPLIED,
        )
        .group_by(WebhookEvent.object_id, WebhookEvent.property_name)
    )
    return {(deal_id, name): moment for deal_id, name, moment in rows}


def unapplied(session: Session, received_before: datetime, limit: int) -> list[tuple[int, dict]]:
    """(id, payload) of the oldest pending events no apply has looked at, received before a moment.

    These were stored but their apply transaction failed (the database went away between
    the two commits); events waiting for something (a pipeline) carry a reason and wait
    for the CRM or the next sync instead.
    """
    return list(
        session.execute(
            select(WebhookEvent.id, WebhookEvent.payload)
            .where(
                WebhookEvent.status == PENDING,
                WebhookEvent.error.is_(None),
                WebhookEvent.received_at < received_before,
            )
            .order_by(WebhookEvent.id)
            .limit(limit)
        ).all()
    )


def held(session: Session, limit: int) -> list[tuple[int, dict]]:
    """(id, payload) of the oldest pending events held with a reason (waiting for a stage or pipeline)."""
    return list(
        session.execute(
            select(WebhookEvent.id, WebhookEvent.payload)
            .where(WebhookEvent.status == PENDING, WebhookEvent.error.is_not(None))
            .order_by(WebhookEvent.id)
            .limit(limit)
        ).all()
    )


def held_for(session: Session, deal_ids: Sequence[str]) -> list[tuple[int, dict]]:
    """(id, payload) of these deals' pending events held for a stage no stored pipeline had."""
    if not deal_ids:
        return []
    return list(
        session.execute(
            select(WebhookEvent.id, WebhookEvent.payload)
            .where(
                WebhookEvent.object_id.in_(list(deal_ids)),
                WebhookEvent.status == PENDING,
                WebhookEvent.error.startswith(HELD_FOR_STAGE, autoescape=True),
            )
            .order_by(WebhookEvent.id)
        ).all()
    )


def inbox_counts(session: Session) -> dict:
    """Stored events per status, and repeated deliveries, over the whole inbox."""
    counts = dict.fromkeys(STATUSES, 0)
    for status, n in session.execute(
        select(WebhookEvent.status, func.count()).group_by(WebhookEvent.status)
    ):
        counts[status] = int(n)
    duplicates = session.scalar(select(func.coalesce(func.sum(WebhookEvent.duplicates), 0)))
    return {"stored": sum(counts.values()), "duplicates": int(duplicates), **counts}
