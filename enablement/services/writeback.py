"""Write-back: each share becomes a note on its CRM deal, exactly once, retried until it lands."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from enablement.db.models import Asset, Share
from enablement.domain.crm import Crm, CrmRefused
from enablement.errors import EnablementError

log = logging.getLogger(__name__)

OPEN_STATES = ("pending", "failed")


@dataclass
class WritebackCounts:
    """Notes written, shares that failed (kept for the next sync) and notes found already written."""

    written: int = 0
    failed: int = 0
    recovered: int = 0


def note_marker(share_id: int) -> str:
    """The text that identifies a share's note in the CRM (found again after a crash)."""
    return f"[enablement share {share_id}]"


def note_text(
    share_id: int, title: str, url: str, kind: str, shared_by: str | None, channel: str | None
) -> str:
    """The note's plain text, a paragraph a line: what was shared, its address, who shared it, the marker."""
    who = shared_by or "a salesperson"
    via = f" via {channel}" if channel else ""
    what = f"{who} shared the {kind.replace('_', ' ')} “{title}”{via}."
    # NOTE: one line each (line breaks in a title folded), the address alone so that it can be linked.
    return "\n".join([" ".join(what.split()), url, note_marker(share_id)])


def write_back_shares(
    sessions: sessionmaker[Session], crm: Crm, batch: int = 100
) -> WritebackCounts:
    """Create a note for every share whose write-back is pending or failed.

    Each attempt is committed before the CRM is called, so a share whose note may exist
    (an earlier attempt that crashed before recording success) is first looked up by its
    marker instead of being created twice. Failures stay 'failed' for the next sync; a
    refused credential stops everything (raised).
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
            if not _claim(sessions, row.id):
                continue  # another sync finished it meanwhile
            try:
                note_id = (
                    crm.find_note(row.deal_id, note_marker(row.id))
                    if row.writeback_attempts
                    else None
                )
                recovered = note_id is not None
                if not recovered:
                    text = note_text(
                        row.id, row.title, row.url, row.kind, row.shared_by, row.channel
                    )
                    note_id = crm.create_note(row.deal_id, text, row.shared_at)
            except CrmRefused:
                raise
            except EnablementError as e:
                log.warning("write-back of share %s failed: %s", row.id, e.message)
                _finish(sessions, row.id, "failed", None, e.message)
                counts.failed += 1
                continue
            _finish(sessions, row.id, "done", note_id, None)
            # NOTE: counted once: a note found again is not also a note written now.
            if recovered:
                counts.recovered += 1
            else:
                counts.written += 1


def _claim(sessions: sessionmaker[Session], share_id: int) -> bool:
    """Count an attempt on a share still open; False when it is no longer open."""
    with sessions.begin() as session:
        return bool(
            session.execute(
                update(Share)
                .where(Share.id == share_id, Share.writeback_state.in_(OPEN_STATES))
                .values(writeback_attempts=Share.writeback_attempts + 1)
            ).rowcount
        )


def _finish(sessions, share_id: int, state: str, note_id: str | None, error: str | None) -> None:
    with sessions.begin() as session:
        session.execute(
            update(Share)
            .where(Share.id == share_id)
            .values(writeback_state=state, writeback_note_id=note_id, writeback_error=error)
        )
