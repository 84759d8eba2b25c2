"""Sharing an asset to a deal (with a trackable link) and following that link."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from enablement.config import Settings
from enablement.db.models import Asset, Deal, LinkView, Share
from enablement.db.types import utcnow
from enablement.domain.assets import is_live
from enablement.domain.links import (
    is_human_visitor,
    is_redirectable,
    link_token,
    link_url,
    looks_like_token,
    token_hash,
)
from enablement.errors import Conflict, Forbidden, NotFound

MAX_USER_AGENT = 512
# Where a share came from; shares from these are logged as notes on the CRM deal when
# write-back is on (demo shares belong to no real CRM deal).
SOURCES: tuple[str, ...] = ("api", "backfill", "import", "demo")
WRITEBACK_SOURCES: frozenset[str] = frozenset({"api", "backfill", "import"})


@dataclass(frozen=True)
class NewShare:
    """A share to store: the asset sent to the deal at shared_at (aware)."""

    deal_id: str
    asset_id: str
    shared_at: datetime
    shared_by: str | None = None
    channel: str | None = None


def store_shares(
    session: Session, settings: Settings, shares: Sequence[NewShare], source: str
) -> list[int]:
    """Insert shares with their trackable-link token hashes; returns their ids in order.

    The one way a share is made (API, file import, demo): every stored share has a
    working link, and write-back is queued by the same rule everywhere.
    """
    if source not in SOURCES:
        raise ValueError(f"unknown share source {source!r}")
    if not shares:
        return []
    writeback = (
        "pending"
        if settings.hubspot_writeback == "notes" and source in WRITEBACK_SOURCES
        else None
    )
    ids = session.scalars(
        insert(Share).returning(Share.id, sort_by_parameter_order=True),
        [
            {
                "deal_id": s.deal_id,
                "asset_id": s.asset_id,
                "shared_at": s.shared_at.astimezone(UTC),
                "shared_by": s.shared_by,
                "channel": s.channel,
                "source": source,
                "writeback_state": writeback,
            }
            for s in shares
        ],
    ).all()
    # NOTE: the token is an HMAC of the share id, so it can only be made once the id exists.
    session.execute(
        update(Share),
        [
            {"id": share_id, "link_token_hash": token_hash(link_token(settings.secret_key, share_id))}
            for share_id in ids
        ],
    )
    return list(ids)


def _find(session: Session, deal_id: str, asset_id: str, shared_at: datetime) -> Share | None:
    return session.scalars(
        select(Share).where(
            Share.deal_id == deal_id, Share.asset_id == asset_id, Share.shared_at == shared_at
        )
    ).first()


def _answer(settings: Settings, share_id: int, shared_at: datetime) -> dict:
    """What share creation answers: {id, link, shared_at}."""
    token = link_token(settings.secret_key, share_id)
    return {"id": share_id, "link": link_url(settings.public_base_url, token), "shared_at": shared_at}


def create_share(
    sessions: sessionmaker[Session],
    settings: Settings,
    deal_id: str,
    asset_id: str,
    *,
    shared_by: str | None,
    channel: str | None = None,
    shared_at: datetime | None = None,
    may_backfill: bool = False,
) -> tuple[dict, bool]:
    """Share a live asset to a deal; returns ({id, link, shared_at}, created).

    A share already stored at the same (deal, asset, shared_at) is returned unchanged, also
    when two workers race to create it. Only callers allowed to backfill may give shared_at.
    """
    if shared_at is not None and not may_backfill:
        raise Forbidden("only an admin may give shared_at (a backfilled share)")
    when = (shared_at or utcnow()).astimezone(UTC)
    with sessions.begin() as session:
        deal = session.get(Deal, deal_id)
        if deal is None or deal.deleted_at is not None:
            raise NotFound(f"no deal {deal_id!r}")
        asset = session.get(Asset, asset_id)
        if asset is None:
            raise NotFound(f"no asset {asset_id!r}")
        if not is_live(asset.status, asset.review_by, utcnow().date()):
            state = "stale (past its review-by date)" if asset.status == "approved" else asset.status
            raise Conflict(
                f"asset {asset_id!r} is not live ({state}); only approved assets not past "
                "their review-by date can be shared",
                {"status": asset.status, "review_by": asset.review_by and asset.review_by.isoformat()},
            )
        existing = _find(session, deal_id, asset_id, when)
        if existing is not None:
            return _answer(settings, existing.id, existing.shared_at), False
        new = NewShare(deal_id, asset_id, when, shared_by, channel)
        try:
            with session.begin_nested():
                (share_id,) = store_shares(
                    session, settings, [new], "backfill" if shared_at is not None else "api"
                )
        except IntegrityError:
            # Another worker stored the same share between our read and our insert.
            existing = _find(session, deal_id, asset_id, when)
            if existing is None:
                raise
            return _answer(settings, existing.id, existing.shared_at), False
        return _answer(settings, share_id, when), True


def follow_link(
    sessions: sessionmaker[Session], token: str, user_agent: str | None, count: bool = True
) -> str:
    """The asset URL behind a link token; records a view for a human visitor when count is True.

    Unknown or malformed tokens, and assets without an absolute http(s) URL, are NotFound.
    """
    if not looks_like_token(token):
        raise NotFound("no such link")
    digest = token_hash(token)
    record = count and is_human_visitor(user_agent)
    with sessions.begin() as session:
        row = session.execute(
            select(Share.id, Asset.url)
            .join(Asset, Asset.id == Share.asset_id)
            .where(Share.link_token_hash == digest)
        ).first()
        if row is None or not is_redirectable(row.url):
            raise NotFound("no such link")
        if record:
            session.add(
                LinkView(
                    share_id=row.id,
                    viewed_at=utcnow(),
                    user_agent=(user_agent or "")[:MAX_USER_AGENT],
                )
            )
        return row.url
