"""Write-back: each share becomes a note on its HubSpot deal, exactly once, retried until it lands."""

from __future__ import annotations

import html
import logging
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from enablement.db.models import Asset, Share
from enablement.errors import EnablementError
from integrations.hubspot.client import HubSpotAuthError

log = logging.getLogger(__name__)

OPEN_STATES = ("pending", "failed")


@dataclass
class WritebackCounts:
    """Notes written, shares that failed (kept for the next sync) and notes found already written."""

    written: int = 0
    failed: int = 0
    recovered: int = 0


def note_marker(share_id: int) -> str:
    """The text that identifies a share's note in HubSpot (found again after a crash)."""
    return f"[enablement share {share_id}]"


def note_body(
    share_id: int, title: str, url: str, kind: str, shared_by: str | None, channel: str | None
) -> str:
    """The note's HTML: what was shared, its address, who shared it, and the share's marker."""
    who = html.escape(shared_by) if shared_by else "a salesperson"
    via = f" via {html.escape(channel)}" if channel else ""
    return (
        f"<p>{who} shared the {html.escape(kind.replace('_', ' '))} "
        f'<a href="{html.escape(url, quote=True)}">{html.escape(title)}</a>{via}.</p>'
        f"<p>{html.escape(url)}</p>"
        f"<p>{note_marker(share_id)}</p>"
    )


def write_back_shares(sessions: sessionmaker[Session], crm, batch: int = 100) -> WritebackCounts:
    """Create a note for every share whose write-back is pending or failed.

    Each attempt is committed before HubSpot is called, so a share whose note may exist
    (an earlier attempt that crashed before recording success) is first looked up by its
    marker instead of being created twice. Failures stay 'failed' for the next sync; an
    authentication failure stops everything (raised).
    """
    counts = WritebackCounts()
    last_id = 0
    while True:
        with sessions.begin() as session:
            rows = session.execute(
                select(
                    Share.id,
                    Share.deal_id,
                    Share.shared_at,
                    Share.shared_by,
                    Share.channel,
                    Share.writeback_attempts,
                    Asset.title,
                    Asset.url,
                    Asset.kind,
                )
                .join(Asset, Asset.id == Share.asset_id)
                .where(Share.writeback_state.in_(OPEN_STATES), Share.id > last_id)
                .order_by(Share.id)
                .limit(batch)
            ).all()
        if not rows:
            return counts
        for row in rows:
            last_id = row.id
            with sessions.begin() as session:
                claimed = session.execute(
                    update(Share)
                    .where(Share.id == row.id, Share.writeback_state.in_(OPEN_STATES))
                    .values(writeback_attempts=Share.writeback_attempts + 1)
                ).rowcount
            if not claimed:
                continue
            marker = note_marker(row.id)
            try:
                note_id = crm.find_note(row.deal_id, marker) if row.writeback_attempts else None
                if note_id is not None:
                    counts.recovered += 1
                else:
                    body = note_body(
                        row.id, row.title, row.url, row.kind, row.shared_by, row.channel
                    )
                    note_id = crm.create_note(row.deal_id, body, row.shared_at)
            except HubSpotAuthError:
                raise
            except EnablementError as e:
                log.warning("write-back of share %s failed: %s", row.id, e.message)
                _finish(sessions, row.id, "failed", None, e.message)
                counts.failed += 1
                continue
            _finish(sessions, row.id, "done", note_id, None)
            counts.written += 1


def _finish(sessions, share_id: int, state: str, note_id: str | None, error: str | None) -> None:
    with sessions.begin() as session:
        session.execute(
            update(Share)
            .where(Share.id == share_id)
            .values(writeback_state=state, writeback_note_id=note_id, writeback_error=error)
        )
