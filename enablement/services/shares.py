"""Sharing an asset to a deal (with a trackable link) and following that link."""

from __future__ import annotations

import hashlib
import json
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from sqlalchemy import and_, bindparam, case, delete, func, insert, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from enablement.config import Settings
from enablement.db import OUTAGE_ERRORS
from enablement.db.models import (
    Asset,
    Deal,
    IdempotencyKey,
    LinkView,
    RecommendationImpression,
    RecommendationItem,
    Share,
)
from enablement.db.report_queries import listed_shares
from enablement.db.types import upsert_insert, utcnow
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
from enablement.services.deals import check_visible, is_plausible_id, visible_deal
from enablement.services.link_spool import HostLinks, LinkTarget, SharedLinks, links_for

MAX_USER_AGENT = 512
# Where a share came from; shares from these are logged as notes on the CRM deal when
# write-back is on (demo shares belong to no real CRM deal).
SOURCES: tuple[str, ...] = ("api", "backfill", "import", "demo")
WRITEBACK_SOURCES: frozenset[str] = frozenset({"api", "backfill", "import"})
# A repeat of the same asset to the same deal by the same person within this window is the
# same share (a double-click, a retried request, two tabs): answered 200 with the first one.
REPEAT_WINDOW = timedelta(minutes=10)
# How long an Idempotency-Key's first answer is kept and replayed (Stripe's convention).
IDEMPOTENCY_TTL = timedelta(hours=24)
MAX_IDEMPOTENCY_KEY = 255


@dataclass(frozen=True)
class Idempotency:
    """An Idempotency-Key as given by one token, with the fingerprint of the request it came with."""

    token_id: int
    key: str
    request_hash: str


def idempotency_for(token_id: int, key: str | None, route: str, body) -> Idempotency | None:
    """The Idempotency of a request, or None without a key; InvalidInput for an unusable key."""
    if key is None:
        return None
    if not 1 <= len(key) <= MAX_IDEMPOTENCY_KEY or not (key.isascii() and key.isprintable()):
        raise InvalidInput(
            f"Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY} printable ASCII characters",
            {"Idempotency-Key": ["not 1 to 255 printable ASCII characters"]},
        )
    canonical = json.dumps([route, body], sort_keys=True, separators=(",", ":"), default=str)
    return Idempotency(token_id, key, hashlib.sha256(canonical.encode("utf-8")).hexdigest())


@dataclass(frozen=True)
class NewShare:
    """A share to store: the asset sent to the deal at shared_at (aware)."""

    deal_id: str
    asset_id: str
    shared_at: datetime
    shared_by: str | None = None  # as people read it
    channel: str | None = None
    impression_id: str | None = None  # the recommendation it was shared from, if any
    actor: str | None = None  # who made it (services.tokens); None from files


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
    ids = session.scalars(
        insert(Share).returning(Share.id, sort_by_parameter_order=True),
        [_share_row(settings, s, source) for s in shares],
    ).all()
    _store_link_hashes(session, settings, ids)
    return list(ids)


def _share_row(settings: Settings, s: NewShare, source: str) -> dict:
    """The shares row of a new share (its link token hash is stored once its id exists)."""
    writeback = (
        "pending" if settings.hubspot_writeback == "notes" and source in WRITEBACK_SOURCES else None
    )
    return {
        "deal_id": s.deal_id,
        "asset_id": s.asset_id,
        "shared_at": s.shared_at.astimezone(UTC),
        "shared_by": s.shared_by,
        "actor": s.actor,
        "channel": s.channel,
        "source": source,
        "impression_id": s.impression_id,
        "writeback_state": writeback,
    }


def _store_link_hashes(session: Session, settings: Settings, ids: Sequence[int]) -> None:
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


def _store_one(session: Session, settings: Settings, new: NewShare, source: str) -> int | None:
    """Insert one share unless one is stored at the same (deal, asset, shared_at); its id, or None.

    NOTE: ON CONFLICT DO NOTHING instead of a savepoint around a plain insert: a concurrent
    insert of the same share makes this one wait for it and then insert nothing, in one
    statement (a savepoint and its release were two more).
    """
    statement = (
        upsert_insert(session, Share)
        .values(_share_row(settings, new, source))
        .on_conflict_do_nothing(index_elements=["deal_id", "asset_id", "shared_at"])
        .returning(Share.id)
    )
    share_id = session.execute(statement).scalar()
    if share_id is not None:
        _store_link_hashes(session, settings, [share_id])
    return share_id


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
    actor: str,
    shared_by: str | None,
    channel: str | None = None,
    shared_at: datetime | None = None,
    may_backfill: bool = False,
    owner_scope: str | None = None,
    impression_id: str | None = None,
    idempotency: Idempotency | None = None,
) -> tuple[dict, bool]:
    """Share a live asset to a deal; returns ({id, link, shared_at}, created).

    The same share is answered (created False) instead of a new one: a share already stored at
    the same (deal, asset, shared_at), also when two workers race to create it; and, for shares
    made now, one of the same asset to the same deal by the same actor within REPEAT_WINDOW.
    `actor` is who shares (services.tokens), `shared_by` how people read it.
    With `idempotency`, a repeat of the key by the same token answers the first answer again
    (InvalidInput when the request differs). Only callers allowed to backfill may give shared_at.
    `owner_scope` limits a scoped sales caller to its owner's deals; `impression_id` names the
    recommendation the share came from, which must be one shown for this deal listing this asset.
    """
    if shared_at is not None and not may_backfill:
        raise Forbidden("only an admin may give shared_at (a backfilled share)")
    when = (shared_at or utcnow()).astimezone(UTC)
    with sessions.begin() as session:
        if idempotency is not None:
            replay = _claim_key(session, idempotency)
            if replay is not None:
                return replay
        answer, created = _create_share(
            session,
            settings,
            NewShare(deal_id, asset_id, when, shared_by, channel, impression_id, actor),
            shared_at is not None,
            owner_scope,
        )
        if idempotency is not None:
            session.execute(
                update(IdempotencyKey)
                .where(
                    IdempotencyKey.token_id == idempotency.token_id,
                    IdempotencyKey.key == idempotency.key,
                )
                .values(
                    status=201 if created else 200,
                    response={**answer, "shared_at": answer["shared_at"].isoformat()},
                )
            )
    # NOTE: only now, committed, is the new link remembered (a rolled-back id may be reused).
    for remember in session.info.get("links_to_remember", []):
        remember()
    return answer, created


def _create_share(
    session: Session,
    settings: Settings,
    new: NewShare,
    backfill: bool,
    owner_scope: str | None,
) -> tuple[dict, bool]:
    """The body of create_share inside its transaction."""
    deal_id, asset_id = new.deal_id, new.asset_id
    if backfill:
        visible_deal(session, deal_id, owner_scope)
        asset = session.execute(_ASSET_STATE, {"asset_id": asset_id}).first()
    else:
        # NOTE: the deal's row lock serialises shares to one deal (PostgreSQL; SQLite's BEGIN
        # IMMEDIATE already does), so the repeat-window check below cannot race an insert; the
        # share's time is taken under the lock, so a later share never carries an earlier time.
        # The locked row is also the one the scope rule is checked on, and the asset's state
        # comes with it (one statement: the deal locked, the asset joined).
        row = (
            session.execute(
                _LOCK_DEAL_WITH_ASSET, {"deal_id": deal_id, "asset_id": asset_id}
            ).first()
            if is_plausible_id(deal_id)
            else None
        )
        check_visible(row[0] if row else None, deal_id, owner_scope)
        asset = row if row.asset_found else None
        new = replace(new, shared_at=utcnow().astimezone(UTC))
    when = new.shared_at
    if asset is None:
        raise NotFound(f"no asset {asset_id!r}")
    if not is_live(asset.status, asset.review_by, utcnow().date()):
        state = "stale (past its review-by date)" if asset.status == "approved" else asset.status
        raise Conflict(
            f"asset {asset_id!r} is not live ({state}); only approved assets not past "
            "their review-by date can be shared",
            {
                "status": asset.status,
                "review_by": asset.review_by and asset.review_by.isoformat(),
            },
        )
    if new.impression_id is not None:
        _check_impression(session, new.impression_id, deal_id, asset_id)
    existing = _same_or_repeat(session, new, repeat=not backfill)
    if existing is not None:
        return _answer(settings, existing.id, existing.shared_at), False
    share_id = _store_one(session, settings, new, "backfill" if backfill else "api")
    if share_id is None:
        # Another worker stored the same share between our read and our insert.
        existing = _find(session, deal_id, asset_id, when)
        if existing is None:
            raise RuntimeError("a share conflicted on insert and then could not be found")
        return _answer(settings, existing.id, existing.shared_at), False
    if is_redirectable(asset.url):
        # NOTE: remembered once committed, so this host can send the buyer on during an outage.
        token = link_token(settings.secret_key, share_id)
        target = LinkTarget(share_id, asset.url)
        session.info.setdefault("links_to_remember", []).append(
            lambda: links_for(settings).remember(token_hash(token), target)
        )
    return _answer(settings, share_id, when), True


_ASSET_STATE = select(Asset.status, Asset.review_by, Asset.url).where(
    Asset.id == bindparam("asset_id")
)
# NOTE: as lock_deals (a row lock on PostgreSQL, ordered by id: one deal here), with the asset's
# state joined; only the deal's row is locked.
_LOCK_DEAL_WITH_ASSET = (
    select(
        Deal,
        Asset.status,
        Asset.review_by,
        Asset.url,
        Asset.id.is_not(None).label("asset_found"),
    )
    .outerjoin(Asset, Asset.id == bindparam("asset_id"))
    .where(Deal.id == bindparam("deal_id"))
    .with_for_update(of=Deal)
)


def _same_or_repeat(session: Session, new: NewShare, repeat: bool):
    """In one statement: the share stored at the same (deal, asset, shared_at), else (with
    `repeat`) the newest of this asset to this deal by this actor within REPEAT_WINDOW; or None."""
    exact = Share.shared_at == new.shared_at
    match = exact
    if repeat:
        match = or_(
            exact,
            and_(
                Share.actor == new.actor,
                Share.shared_at >= new.shared_at - REPEAT_WINDOW,
                Share.shared_at <= new.shared_at,
            ),
        )
    return session.execute(
        select(Share.id, Share.shared_at)
        .where(Share.deal_id == new.deal_id, Share.asset_id == new.asset_id, match)
        .order_by(case((exact, 0), else_=1), Share.shared_at.desc(), Share.id.desc())
        .limit(1)
    ).first()


def _claim_key(session: Session, idem: Idempotency) -> tuple[dict, bool] | None:
    """Claim an Idempotency-Key for this request; the first answer when it was used before.

    The key's row is inserted first in the share's own transaction: a concurrent repeat waits
    on the primary key until this one commits (then replays it) or rolls back (then proceeds).
    A key older than IDEMPOTENCY_TTL is forgotten: its row is taken over by this request.
    """
    now = utcnow()
    _purge_expired_keys(session, now)
    values = {
        "token_id": idem.token_id,
        "key": idem.key,
        "request_hash": idem.request_hash,
        "status": 0,
        "response": {},
        "created_at": now,
    }
    # NOTE: one statement claims a new key (ON CONFLICT DO NOTHING waits for a concurrent
    # claim of the same key, like a plain insert, but needs no savepoint around it).
    claimed = session.execute(
        upsert_insert(session, IdempotencyKey)
        .values(values)
        .on_conflict_do_nothing(index_elements=["token_id", "key"])
        .returning(IdempotencyKey.token_id)
    ).scalar()
    if claimed is not None:
        return None
    cutoff = now - IDEMPOTENCY_TTL
    row = session.execute(
        select(
            IdempotencyKey.request_hash,
            IdempotencyKey.status,
            IdempotencyKey.response,
            IdempotencyKey.created_at,
            (IdempotencyKey.created_at < cutoff).label("expired"),
        ).where(IdempotencyKey.token_id == idem.token_id, IdempotencyKey.key == idem.key)
    ).one()
    if row.expired:
        taken = session.execute(
            update(IdempotencyKey)
            .where(
                IdempotencyKey.token_id == idem.token_id,
                IdempotencyKey.key == idem.key,
                IdempotencyKey.created_at < cutoff,
            )
            .values(values)
        ).rowcount
        if taken:
            return None
        # A concurrent request took the expired key over first (and has committed): replay it.
        return _claim_key(session, idem)
    if row.request_hash != idem.request_hash:
        raise InvalidInput(
            "this Idempotency-Key was already used with another request; use a new key",
            {"Idempotency-Key": ["used before with a different request"]},
        )
    answer = dict(row.response)
    answer["shared_at"] = datetime.fromisoformat(answer["shared_at"])
    return answer, row.status == 201


# Expired keys are deleted at most this often per process (a share's own key is checked for
# expiry when it is used again, so this only keeps the table small).
PURGE_KEYS_EVERY = timedelta(minutes=10)
_KEYS_PURGED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _purge_expired_keys(session: Session, now: datetime) -> None:
    """Delete the keys older than IDEMPOTENCY_TTL, at most every PURGE_KEYS_EVERY per engine."""
    engine = session.get_bind()
    last = _KEYS_PURGED.get(engine)
    if last is not None and timedelta(0) <= now - last < PURGE_KEYS_EVERY:
        return
    _KEYS_PURGED[engine] = now
    session.execute(delete(IdempotencyKey).where(IdempotencyKey.created_at < now - IDEMPOTENCY_TTL))


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
    actor: str,
    page: int = 1,
    per_page: int = 50,
) -> dict:
    """A page of the shares one actor made (newest first), with buyer views and links.

    `actor` is who made them as services.tokens spells it (an owner: every token bound to
    that owner and the app card acting for it; else one token).
    """
    with sessions() as session:
        total = session.scalar(select(func.count()).select_from(Share).where(Share.actor == actor))
        items = listed_shares(
            session,
            Share.actor == actor,
            (Share.shared_at.desc(), Share.id.desc()),
            public_base_url=settings.public_base_url,
            secret_key=settings.secret_key,
            offset=(page - 1) * per_page,
            limit=per_page,
        )
    return {"items": items, "page": page, "per_page": per_page, "total": total}


def follow_link(
    sessions: sessionmaker[Session],
    token: str,
    user_agent: str | None,
    count: bool = True,
    links: HostLinks | SharedLinks | None = None,
    queue_replay: Callable[[], None] | None = None,
) -> str:
    """The asset URL behind a link token; records a view for a human visitor when count is True.

    Unknown or malformed tokens, and assets without an absolute http(s) URL, are NotFound.
    With `links` (services.link_spool.links_for), while the database is unavailable a link
    created or resolved before still redirects to its stored asset URL and its view is spooled
    (see link_spool for where, and who replays it: queue_replay queues that job); another
    link re-raises the outage (503).
    """
    if not looks_like_token(token):
        raise NotFound("no such link")
    digest = token_hash(token)
    record = count and is_human_visitor(user_agent)
    agent = (user_agent or "")[:MAX_USER_AGENT]
    try:
        with sessions.begin() as session:
            row = session.execute(
                select(Share.id, Asset.url)
                .join(Asset, Asset.id == Share.asset_id)
                .where(Share.link_token_hash == digest)
            ).first()
            if row is None or not is_redirectable(row.url):
                raise NotFound("no such link")
            if record:
                session.add(LinkView(share_id=row.id, viewed_at=utcnow(), user_agent=agent))
    except OUTAGE_ERRORS:
        target = links.recall(digest) if links is not None else None
        if target is None:
            raise
        if record:
            links.spool(target.share_id, utcnow(), agent)
        return target.url
    if links is not None:
        links.remember(digest, LinkTarget(row.id, row.url))
        links.settle(sessions, queue_replay)
    return row.url
