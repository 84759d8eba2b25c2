"""Recommendations for a deal: load the deal and what it got, rank (domain), log the impression.

The deal-independent part of the ranking (every live asset's evidence, engagement, freshness
and voice, per buying stage) is prepared once per engine and reused while the assets, the
effectiveness report and the day are unchanged and the engagement figures are younger than
ENGAGEMENT_MAX_AGE; a request then costs a fixed handful of small queries whatever the number
of assets, deals or shares.
"""

from __future__ import annotations

import threading
import uuid
import weakref
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import and_, bindparam, exists, func, select, text
from sqlalchemy.orm import Session, sessionmaker

from enablement.config import Settings
from enablement.db import reading
from enablement.db.assets import live_condition
from enablement.db.models import (
    Asset,
    Deal,
    LinkView,
    Owner,
    RecommendationImpression,
    RecommendationItem,
    Share,
)
from enablement.db.types import utcnow
from enablement.db.versioning import table_versions
from enablement.domain.effectiveness.recommender_impact import PUSHED_SOURCES
from enablement.domain.recommend import (
    MAX_LIMIT,
    AssetFacts,
    DealFacts,
    SentFacts,
    StageIndex,
    answer_for_deal,
    prepare_index,
)
from enablement.errors import Forbidden, InvalidInput
from enablement.services.deals import (
    DEAL_WITH_STAGE,
    DEAL_WITH_STAGE_ASYNC_COMMIT,
    check_visible,
    is_deal_closed,
    is_plausible_id,
)
from enablement.services.reports import effects as report_effects

# Where an impression was shown; PUSHED_SOURCES (nudge, hubspot_workflow) were not asked for.
SOURCES = ("api", "cli", "hubspot_card", *PUSHED_SOURCES)
# How old the per-asset share/open counts may get before the prepared index is rebuilt.
ENGAGEMENT_MAX_AGE = timedelta(minutes=10)


@dataclass
class _Prepared:
    """A prepared index, what it was built from, and when the assets were last checked."""

    assets_version: tuple
    effects: dict
    day: object
    built_at: datetime
    index: StageIndex
    checked_at: datetime


_INDEXES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_BUILD_LOCK = threading.Lock()


def _engagement(session: Session) -> dict[str, tuple[int, int]]:
    """asset id -> (shares, shares opened at least once by a buyer)."""
    opened = exists().where(LinkView.share_id == Share.id)
    rows = session.execute(
        select(Share.asset_id, func.count(), func.count().filter(opened)).group_by(Share.asset_id)
    )
    return {asset_id: (int(n), int(o)) for asset_id, n, o in rows}


def _live_assets(session: Session, now: datetime) -> list[AssetFacts]:
    """Every live asset with its share and open counts."""
    counts = _engagement(session)
    rows = session.execute(
        select(
            Asset.id,
            Asset.title,
            Asset.url,
            Asset.kind,
            Asset.author,
            Asset.summary,
            Asset.stages,
            Asset.topics,
            Asset.industries,
            Asset.personas,
            Asset.published_at,
            Asset.series,
            Asset.series_order,
            Asset.pitch_flag,
        ).where(live_condition(now.date()))
    )
    facts = []
    for r in rows:
        shares, opened = counts.get(r.id, (0, 0))
        facts.append(
            AssetFacts(
                r.id,
                r.title,
                r.url,
                r.kind,
                r.author,
                r.summary,
                tuple(r.stages or ()),
                tuple(r.topics or ()),
                tuple(r.industries or ()),
                tuple(r.personas or ()),
                r.published_at,
                r.series,
                r.series_order,
                bool(r.pitch_flag),
                shares,
                opened,
            )
        )
    return facts


def prepared_index(
    session: Session,
    effects: dict,
    now: datetime,
    check_every: timedelta,
    max_age: timedelta = ENGAGEMENT_MAX_AGE,
    fill=None,
) -> StageIndex:
    """The engine's prepared index, rebuilt when assets, the effectiveness report or the day change.

    `effects` is services.reports.effects(): the same object while the cached report is unchanged.
    The assets' fingerprint is re-read at most every `check_every`; an index older than
    `max_age` is rebuilt (enablement.warmup rebuilds it a little earlier than requests would).
    `fill(index)`, when given, runs on a new index before requests can see it.
    """
    engine = session.get_bind()
    cached = _INDEXES.get(engine)
    if cached is not None and timedelta(0) <= now - cached.checked_at <= check_every:
        if _fresh(cached, cached.assets_version, effects, now, max_age):
            return cached.index
    version = table_versions(session, (Asset,))
    if _fresh(cached, version, effects, now, max_age):
        cached.checked_at = now
        return cached.index
    with _BUILD_LOCK:  # NOTE: one rebuild per process at a time; others wait and reuse it
        cached = _INDEXES.get(engine)
        if _fresh(cached, version, effects, now, max_age):
            return cached.index
        index = prepare_index(_live_assets(session, now), effects, now)
        if fill is not None:
            fill(index)
        _INDEXES[engine] = _Prepared(version, effects, now.date(), now, index, now)
        return index


def _fresh(
    cached: _Prepared | None,
    version,
    effects,
    now: datetime,
    max_age: timedelta = ENGAGEMENT_MAX_AGE,
) -> bool:
    return (
        cached is not None
        and cached.assets_version == version
        # NOTE: the effects mapping is the same object while the cached report is unchanged
        # (an empty one is built anew each call, so two empties count as the same).
        and (cached.effects is effects or not (cached.effects or effects))
        and cached.day == now.date()
        and now - cached.built_at <= max_age
    )


def warm_index(
    sessions: sessionmaker[Session],
    settings: Settings,
    max_age: timedelta = ENGAGEMENT_MAX_AGE,
    ahead: float = 1.0,
    fill=None,
) -> StageIndex:
    """The prepared index requests use, built now unless fresh (enablement.warmup); reads only.

    With `ahead` < 1 the effects and the assets' fingerprint are re-read when that fraction of
    their time has passed, so that requests (which re-read them after all of it) find them
    fresh: the maintenance thread takes those reads off the request path.
    """
    now = utcnow()
    effects = _recent_effects(sessions, now, settings.recommendation_effects_max_age * ahead)
    with reading(sessions) as session:
        return prepared_index(
            session,
            effects,
            now,
            settings.recommendation_assets_check_every * ahead,
            max_age,
            fill,
        )


_EFFECTS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _recent_effects(sessions: sessionmaker[Session], now: datetime, max_age: timedelta) -> dict:
    """services.reports.effects(), re-read at most every max_age per session factory."""
    held = _EFFECTS.get(sessions)
    if held is not None and timedelta(0) <= now - held[0] <= max_age:
        return held[1]
    effects = report_effects(sessions)
    _EFFECTS[sessions] = (now, effects)
    return effects


def share_effects(source: sessionmaker[Session], target: sessionmaker[Session]) -> None:
    """Let `target` use the effects `source` last read (enablement.warmup's rehearsal sessions
    must see the very object the prepared index was built with, or it would be rebuilt)."""
    held = _EFFECTS.get(source)
    if held is not None:
        _EFFECTS[target] = held


def check_limit(limit) -> int:
    """The number of items asked for, 1..MAX_LIMIT, else InvalidInput."""
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
        raise InvalidInput(
            f"limit must be a whole number from 1 to {MAX_LIMIT}", {"limit": [str(limit)[:20]]}
        )
    return limit


def recommend_for_deal(
    sessions: sessionmaker[Session],
    settings: Settings,
    deal_id: str,
    limit: int = 5,
    *,
    owner_scope: str | None = None,
    requested_by: str | None = None,
    token_id: int | None = None,
    source: str = "api",
    now: datetime | None = None,
) -> dict:
    """The recommendation answer for a deal, logged as an impression (holdout and closed included)."""
    check_limit(limit)
    if source not in SOURCES:
        raise ValueError(f"unknown impression source {source!r}")
    now = now or utcnow()
    # NOTE: read before our transaction opens: on SQLite every transaction holds the write lock.
    effects = _recent_effects(sessions, now, settings.recommendation_effects_max_age)
    with sessions.begin() as session:
        postgresql = session.get_bind().dialect.name == "postgresql"
        # NOTE: the impression is an analytics record: on PostgreSQL its commit does not wait
        # for the WAL flush (synchronous_commit off for this transaction, set by the deal read
        # itself to save a round trip); a database crash can lose the last moments of them.
        deal, sent = _deal_and_sent(session, deal_id, owner_scope, async_commit=postgresql)
        facts = DealFacts(
            id=deal.id,
            name=deal.name or "",
            buying_stage=deal.stage_buying_stage,
            closed=is_deal_closed(deal.stage_is_closed, deal.closed_at),
            industry=deal.industry,
            personas=tuple(deal.personas or ()),
            topics=tuple(deal.topics or ()),
        )
        index = prepared_index(session, effects, now, settings.recommendation_assets_check_every)
        answer = answer_for_deal(facts, index, sent, limit, settings.recommendation_holdout)
        impression_id = uuid.uuid4().hex
        impression = {
            "id": impression_id,
            "deal_id": deal.id,
            "buying_stage": facts.buying_stage,
            "holdout": answer["holdout"],
            "source": source,
            "requested_by": (requested_by or "")[:255] or None,
            "token_id": token_id,
            "created_at": now,
        }
        items = [
            {
                "impression_id": impression_id,
                "asset_id": item["asset"]["id"],
                "rank": item["rank"],
                "score": item["score"],
                "exploration": item["exploration"],
            }
            for item in answer["items"]
        ]
        _log_impression(session, impression, items, postgresql)
        deal_part = {
            "id": deal.id,
            "name": deal.name,
            "owner_id": deal.owner_id,
            # A deal known only from webhook events may have no stage yet: null, as on the deal.
            "crm_stage": (
                {"id": deal.current_stage_id, "label": deal.stage_label}
                if deal.current_stage_id
                else None
            ),
            "buying_stage": facts.buying_stage,
        }
    return {"deal": deal_part, **answer, "impression_id": impression_id}


_IMPRESSIONS, _ITEMS = RecommendationImpression.__table__, RecommendationItem.__table__


# PostgreSQL only. created_at is bound as naive UTC, as db.types.UTCDateTime stores it.
_IMPRESSION_WITH_ITEMS = text(
    "WITH impression AS ("
    " INSERT INTO recommendation_impressions"
    " (id, deal_id, buying_stage, holdout, source, requested_by, token_id, created_at)"
    " VALUES (:id, :deal_id, :buying_stage, :holdout, :source, :requested_by, :token_id,"
    " :created_at))"
    " INSERT INTO recommendation_items (impression_id, asset_id, rank, score, exploration)"
    " SELECT :id, a, r, s, e FROM unnest(CAST(:assets AS varchar[]), CAST(:ranks AS integer[]),"
    " CAST(:scores AS double precision[]), CAST(:explorations AS boolean[])) AS u(a, r, s, e)"
)


def _log_impression(session: Session, impression: dict, items: list[dict], postgresql: bool):
    """Store the impression and its items: one statement on PostgreSQL (the items' insert with
    the impression's as a data-modifying WITH), two elsewhere."""
    if postgresql and items:
        # NOTE: the foreign key of the items is checked at the statement's end, when the
        # impression row of its WITH exists. The items go in as arrays (unnest), so the
        # statement is the same text whatever their number: prepared once, never recompiled.
        session.execute(
            _IMPRESSION_WITH_ITEMS,
            {
                **impression,
                "created_at": impression["created_at"].astimezone(UTC).replace(tzinfo=None),
                "assets": [i["asset_id"] for i in items],
                "ranks": [i["rank"] for i in items],
                "scores": [float(i["score"]) for i in items],
                "explorations": [bool(i["exploration"]) for i in items],
            },
        )
        return
    session.execute(_IMPRESSIONS.insert(), [impression])
    if items:
        session.execute(_ITEMS.insert(), items)


def _sent(session: Session, deal_id: str) -> list[SentFacts]:
    """What this deal already got: asset, its series position, and whether the buyer opened it."""
    rows = session.execute(_SENT, {"deal_id": deal_id})
    return [SentFacts(a, s, o, bool(v)) for a, s, o, v in rows]


def _deal_and_sent(session: Session, deal_id: str, owner_scope: str | None, async_commit: bool):
    """services.deals.visible_deal_with_stage and _sent in one statement: the deal's row joined
    to each of its shares (one row, with no share, when it has none)."""
    rows = (
        session.execute(
            _DEAL_AND_SENT_ASYNC_COMMIT if async_commit else _DEAL_AND_SENT, {"deal_id": deal_id}
        ).all()
        if is_plausible_id(deal_id)
        else []
    )
    deal = check_visible(rows[0] if rows else None, deal_id, owner_scope)
    sent = [
        SentFacts(r.sent_asset_id, r.sent_series, r.sent_series_order, bool(r.sent_opened))
        for r in rows
        if r.sent_asset_id is not None
    ]
    return deal, sent


# NOTE: asked on every recommendation: one Core statement built once (compiled once, cached).
_SHARES, _ASSETS, _VIEWS = Share.__table__, Asset.__table__, LinkView.__table__
_SENT = (
    select(
        _SHARES.c.asset_id,
        _ASSETS.c.series,
        _ASSETS.c.series_order,
        exists().where(_VIEWS.c.share_id == _SHARES.c.id),
    )
    .join(_ASSETS, _ASSETS.c.id == _SHARES.c.asset_id)
    .where(_SHARES.c.deal_id == bindparam("deal_id"))
    .order_by(_SHARES.c.shared_at, _SHARES.c.id)
)


def _with_sent(deal_query):
    return (
        deal_query.add_columns(
            _SHARES.c.asset_id.label("sent_asset_id"),
            _ASSETS.c.series.label("sent_series"),
            _ASSETS.c.series_order.label("sent_series_order"),
            exists().where(_VIEWS.c.share_id == _SHARES.c.id).label("sent_opened"),
        )
        # NOTE: two chained outer joins, not one to (shares JOIN assets): SQLite materialises
        # a parenthesised join, every share of every deal, before filtering it (its plan said
        # MATERIALIZE and SCAN assets); chained, both engines use ix_shares_deal. Every share
        # has its asset (a foreign key), so the second outer join loses nothing.
        .outerjoin(_SHARES, _SHARES.c.deal_id == Deal.__table__.c.id)
        .outerjoin(_ASSETS, _ASSETS.c.id == _SHARES.c.asset_id)
        .order_by(_SHARES.c.shared_at, _SHARES.c.id)
    )


# NOTE: the deal, its stage and what it already got in one round trip (built once, cached).
_DEAL_AND_SENT = _with_sent(DEAL_WITH_STAGE)
_DEAL_AND_SENT_ASYNC_COMMIT = _with_sent(DEAL_WITH_STAGE_ASYNC_COMMIT)


def owner_for_hubspot_user(session: Session, email: str | None) -> Owner:
    """The active CRM owner behind a HubSpot user (matched by e-mail), else Forbidden."""
    email = (email or "").strip()
    owner = None
    if email and len(email) <= 320:
        owner = session.scalars(
            select(Owner)
            .where(func.lower(Owner.email) == email.lower(), Owner.archived.is_(False))
            .order_by(Owner.id)
        ).first()
    if owner is None:
        raise Forbidden(
            "this HubSpot user is not a deal owner known to the service (run `enablement sync`)",
            {"reason": "not_an_owner"},
        )
    return owner


def recommendation_funnel(
    sessions: sessionmaker[Session], asset_id: str | None = None
) -> list[dict]:
    """Per asset: times recommended, shares made from a recommendation, and those the buyer opened."""
    with sessions() as session:
        listed = select(RecommendationItem.asset_id, func.count().label("recommended")).group_by(
            RecommendationItem.asset_id
        )
        opened = exists().where(LinkView.share_id == Share.id)
        shared = (
            select(
                Share.asset_id,
                func.count().label("shared"),
                func.count().filter(opened).label("opened"),
            )
            .join(
                RecommendationItem,
                and_(
                    RecommendationItem.impression_id == Share.impression_id,
                    RecommendationItem.asset_id == Share.asset_id,
                ),
            )
            .group_by(Share.asset_id)
        )
        if asset_id is not None:
            listed = listed.where(RecommendationItem.asset_id == asset_id)
            shared = shared.where(Share.asset_id == asset_id)
        counts = {
            a: {"asset_id": a, "recommended": int(n), "shared": 0, "opened": 0}
            for a, n in session.execute(listed)
        }
        for a, n, o in session.execute(shared):
            row = counts.setdefault(a, {"asset_id": a, "recommended": 0, "shared": 0, "opened": 0})
            row["shared"], row["opened"] = int(n), int(o)
    return [counts[a] for a in sorted(counts)]


def holdout_counts(sessions: sessionmaker[Session]) -> dict:
    """Distinct deals that were shown recommendations and that were held out."""
    with sessions() as session:
        rows = session.execute(
            select(
                RecommendationImpression.holdout,
                func.count(func.distinct(RecommendationImpression.deal_id)),
            ).group_by(RecommendationImpression.holdout)
        ).all()
    by = {bool(h): int(n) for h, n in rows}
    return {"recommended_deals": by.get(False, 0), "holdout_deals": by.get(True, 0)}
