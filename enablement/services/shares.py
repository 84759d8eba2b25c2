"""Sharing an asset to a deal (with a trackable link) and following that link."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from enablement.config import Settings
from enablement.db.models import Asset, Deal, LinkView, Share
from enablement.db.types import utcnow
from enablement.db.versioning import ENGAGEMENT, bump_data_version
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


def _find(session: Session, deal_id: str, asset_id: str, shared_at: datetime) -> Share | None:
    return session.scalars(
        select(Share).where(
            Share.deal_id == deal_id, Share.asset_id == asset_id, Share.shared_at == shared_at
        )
    ).first()


def _answer(settings: Settings, share: Share) -> dict:
    token = link_token(settings.secret_key, share.id)
    return {
        "id": share.id,
        "link": link_url(settings.public_base_url, token),
        "shared_at": share.shared_at,
    }


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
        if asset.status != "approved" or asset.retired_at is not None:
            raise Conflict(
                f"asset {asset_id!r} is not live (status {asset.status}); only approved, "
                "unretired assets can be shared",
                {"status": asset.status},
            )
        existing = _find(session, deal_id, asset_id, when)
        if existing is not None:
            return _answer(settings, existing), False
        share = Share(
            deal_id=deal_id,
            asset_id=asset_id,
            shared_at=when,
            shared_by=shared_by,
            channel=channel,
            source="backfill" if shared_at is not None else "api",
            writeback_state="pending" if settings.hubspot_writeback == "notes" else None,
        )
        try:
            with session.begin_nested():
                session.add(share)
                session.flush()
        except IntegrityError:
            # Another worker stored the same share between our read and our insert.
            existing = _find(session, deal_id, asset_id, when)
            if existing is None:
                raise
            return _answer(settings, existing), False
        share.link_token_hash = token_hash(link_token(settings.secret_key, share.id))
        session.flush()
        bump_data_version(session)
        return _answer(settings, share), True


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
            bump_data_version(session, ENGAGEMENT)
        return row.url
