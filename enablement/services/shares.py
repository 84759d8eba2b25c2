"""Sharing an asset to a deal (with a trackable link) and following that link."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from enablement.config import Settings
from enablement.db.models import (
    Asset,
    LinkView,
    RecommendationImpression,
    RecommendationItem,
    Share,
)
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
from enablement.errors import Conflict, Forbidden, InvalidInput, NotFound
from enablement.services.deals import visible_deal

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
    impression_id: str | None = None  # the recommendation it was shared from, if any


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
        "pending" if settings.hubspot_writeback == "notes" and source in WRITEBACK_SOURCES else None
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
                "impression_id": s.impression_id,
                "writeback_state": writeback,
            }
            for s in shares
        ],
    ).all()
    # NOTE: the token is an HMAC of the share id, so it can only be made once the id exists.
    session.execute(
        update(Share),
        [
            {
                "id": share_id,
                "link_token_hash": token_hash(link_token(settings.secret_key, share_id)),
            }
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
    return {
        "id": share_id,
        "link": link_url(settings.public_base_url, token),
        "shared_at": shared_at,
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
    owner_scope: str | None = None,
    impression_id: str | None = None,
) -> tuple[dict, bool]:
    """Share a live asset to a deal; returns ({id, link, shared_at}, created).

    A share already stored at the same (deal, asset, shared_at) is returned unchanged, also
    when two workers race to create it. Only callers allowed to backfill may give shared_at.
    `owner_scope` limits a scoped sales caller to its owner's deals; `impression_id` names the
    recommendation the share came from, which must be one shown for this deal listing this asset.
    """
    if shared_at is not None and not may_backfill:
        raise Forbidden("only an admin may give shared_at (a backfilled share)")
    when = (shared_at or utcnow()).astimezone(UTC)
    with sessions.begin() as session:
        visible_deal(session, deal_id, owner_scope)
        asset = session.get(Asset, asset_id)
        if asset is None:
            raise NotFound(f"no asset {asset_id!r}")
        if not is_live(asset.status, asset.review_by, utcnow().date()):
            state = (
                "stale (past its review-by date)" if asset.status == "approved" else asset.status
            )
            raise Conflict(
                f"asset {asset_id!r} is not live ({state}); only approved assets not past "
                "their review-by date can be shared",
                {
                    "status": asset.status,
                    "review_by": asset.review_by and asset.review_by.isoformat(),
                },
            )
        if impression_id is not None:
            _check_impression(session, impression_id, deal_id, asset_id)
        existing = _find(session, deal_id, asset_id, when)
        if existing is not None:
            return _answer(settings, existing.id, existing.shared_at), False
        new = NewShare(deal_id, asset_id, when, shared_by, channel, impression_id)
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


def _check_impression(session: Session, impression_id: str, deal_id: str, asset_id: str) -> None:
    """InvalidInput unless the impression was shown for this deal and listed this asset."""
    listed = session.execute(
        select(RecommendationItem.asset_id)
        .join(
            RecommendationImpression,
            RecommendationImpression.id == RecommendationItem.impression_id,
        )
        .where(
            RecommendationItem.impression_id == impression_id,
            RecommendationItem.asset_id == asset_id,
            RecommendationImpression.deal_id == deal_id,
        )
    ).first()
    if listed is None:
        raise InvalidInput(
            "impression_id must name a recommendation shown for this deal that listed this asset",
            {"impression_id": ["not a recommendation of this asset for this deal"]},
        )


def list_shares(
    sessions: sessionmaker[Session],
    settings: Settings,
    shared_by: str,
    page: int = 1,
    per_page: int = 50,
) -> dict:
    """A page of the shares made by one person (newest first), with buyer views and links."""
    views = (
        select(LinkView.share_id, func.count().label("n")).group_by(LinkView.share_id).subquery()
    )
    with sessions() as session:
        total = session.scalar(
            select(func.count()).select_from(Share).where(Share.shared_by == shared_by)
        )
        rows = session.execute(
            select(Share, Asset.title, func.coalesce(views.c.n, 0))
            .join(Asset, Asset.id == Share.asset_id)
            .outerjoin(views, views.c.share_id == Share.id)
            .where(Share.shared_by == shared_by)
            .order_by(Share.shared_at.desc(), Share.id.desc())
            .offset((page - 1) * per_page)
            .limit(per_page)
        ).all()
        items = [
            {
                "id": share.id,
                "deal_id": share.deal_id,
                "asset_id": share.asset_id,
                "asset_title": title,
                "shared_at": share.shared_at,
                "shared_by": share.shared_by,
                "channel": share.channel,
                "impression_id": share.impression_id,
                "views": count,
                "link": link_url(
                    settings.public_base_url, link_token(settings.secret_key, share.id)
                ),
            }
            for share, title, count in rows
        ]
    return {"items": items, "page": page, "per_page": per_page, "total": total}


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
