"""Reading deals: fuzzy search by name and company, and one deal with its history and shares."""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from dataclasses import dataclass

from rapidfuzz import fuzz, process, utils
from sqlalchemy import and_, bindparam, func, or_, select
from sqlalchemy.orm import Session, sessionmaker

from enablement.config import Settings
from enablement.db import reading
from enablement.db.models import CrmStage, Deal, Pipeline, Share, StageChange
from enablement.db.report_queries import listed_shares
from enablement.db.versioning import table_versions
from enablement.domain.stages import BUYING_STAGES
from enablement.domain.storable import text_problem
from enablement.errors import NotFound

# Matches scoring below this (0..100) are not search results.
MATCH_CUTOFF = 75.0
MAX_QUERY_WORDS = 8


def search_text(name: str, company: str | None) -> str:
    """What a deal is searched by: its name, plus the company when the name lacks it."""
    if not company or company.lower() in (name or "").lower():
        return name or ""
    return f"{name} {company}"


def rank_by_text(
    query: str, ids: Sequence[str], processed_texts: Sequence[str]
) -> list[tuple[str, float]]:
    """(id, score 0-100) of the candidates matching the query, best first.

    The score is the mean over the query's words of each word's best partial match in the
    text, so every word counts and typos are forgiven; ties go to the closer whole string,
    then the id. processed_texts are already passed through rapidfuzz's default_process.
    """
    import numpy as np  # NOTE: loaded on first search, so starting the CLI does not pay for it

    words = utils.default_process(query).split()[:MAX_QUERY_WORDS]
    if not ids or not words:
        return []
    scores = np.mean(
        [
            process.cdist(
                [word], processed_texts, scorer=fuzz.partial_ratio, workers=-1, dtype=np.float32
            )[0]
            for word in words
        ],
        axis=0,
    )
    hits = np.flatnonzero(scores >= MATCH_CUTOFF)
    whole = process.cdist(
        [" ".join(words)], [processed_texts[i] for i in hits], scorer=fuzz.ratio, workers=-1
    )
    closeness = whole[0] if len(hits) else []
    ranked = sorted(
        ((-float(scores[i]), -float(closeness[n]), ids[i]) for n, i in enumerate(hits)),
    )
    return [(deal_id, -score) for score, _, deal_id in ranked]


@dataclass(frozen=True)
class _Candidates:
    """Every live deal's search text and filter attributes, with the versions of the tables read."""

    version: tuple
    ids: list[str]
    texts: list[str]
    owners: list[str | None]
    stages: list[str | None]
    buying: list[str | None]
    closed: list[bool]


# NOTE: one candidate list per engine, rebuilt when a table it reads (deals, the stage map)
# changes, so a search at 100,000 deals only scores, never refetches.
_CANDIDATES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_CANDIDATE_TABLES = (Deal, CrmStage)


def _candidates(session: Session) -> _Candidates:
    """The cached candidate list of the session's engine, rebuilt when deals or the stage map change."""
    engine = session.get_bind()
    # Read the versions first: data committed after them only makes the cache refresh sooner.
    version = table_versions(session, _CANDIDATE_TABLES)
    cached = _CANDIDATES.get(engine)
    if cached is not None and cached.version == version:
        return cached
    ids, texts, owners, stages, buying, closed = [], [], [], [], [], []
    rows = session.connection().execute(
        _stage_join(
            select(Deal.id, Deal.name, Deal.company, Deal.owner_id, Deal.current_stage_id)
            .add_columns(CrmStage.buying_stage, CrmStage.is_closed, Deal.closed_at)
            .where(Deal.deleted_at.is_(None))
        )
    )
    for deal_id, name, company, owner, stage, buying_stage, is_closed, closed_at in rows:
        ids.append(deal_id)
        texts.append(utils.default_process(search_text(name, company)))
        owners.append(owner)
        stages.append(stage)
        buying.append(buying_stage)
        closed.append(is_deal_closed(is_closed, closed_at))
    cached = _Candidates(version, ids, texts, owners, stages, buying, closed)
    _CANDIDATES[engine] = cached
    return cached


def is_deal_closed(stage_is_closed: bool | None, closed_at) -> bool:
    """A deal is closed when its current CRM stage is a closed one or it has a close date."""
    return bool(stage_is_closed) or closed_at is not None


def _open_condition():
    """SQL form of `not is_deal_closed`: the current stage is not closed and no close date."""
    return and_(
        or_(CrmStage.is_closed.is_(None), CrmStage.is_closed.is_(False)), Deal.closed_at.is_(None)
    )


def is_plausible_id(value: str) -> bool:
    """False for ids no row can have: not 1 to 64 characters, or text the database cannot store.

    Checked before querying (enablement.domain.storable): PostgreSQL refuses NUL in a string
    and a lone surrogate cannot be encoded, which would turn a bad id into a server error
    instead of a 404.
    """
    return isinstance(value, str) and 0 < len(value) <= 64 and text_problem(value) is None


def reaches(owner_scope: str | None, deal_owner_id: str | None) -> bool:
    """The one sales-scope rule: a caller scoped to an owner reaches that owner's deals only.

    `owner_scope` is services.tokens.Principal.owner_scope (None: every deal); the SQL form of
    the rule is _reach_condition.
    """
    return owner_scope is None or deal_owner_id == owner_scope


def _reach_condition(owner_scope: str | None):
    """SQL form of `reaches` (None when every deal is reached)."""
    return None if owner_scope is None else Deal.owner_id == owner_scope


def visible_deal(session: Session, deal_id: str, owner_scope: str | None) -> Deal:
    """The deal (not deleted) as the caller may see it; NotFound when missing or another owner's.

    The one sales-scope rule: a caller scoped to an owner (a sales token bound to a CRM owner)
    sees that owner's deals only, and another owner's deal looks exactly like a missing one.
    """
    deal = session.get(Deal, deal_id) if is_plausible_id(deal_id) else None
    return check_visible(deal, deal_id, owner_scope)


def check_visible(deal: Deal | None, deal_id: str, owner_scope: str | None) -> Deal:
    """The sales-scope rule on a loaded deal (see visible_deal): the deal, or NotFound."""
    if deal is None or deal.deleted_at is not None or not reaches(owner_scope, deal.owner_id):
        raise NotFound(f"no deal {deal_id!r}")
    return deal


def visible_deal_with_stage(
    session: Session, deal_id: str, owner_scope: str | None, async_commit: bool = False
):
    """visible_deal with its current CRM stage, in one query: a row with the deal's columns and
    stage_label, stage_buying_stage, stage_is_closed (None when the stage is unknown).

    `async_commit` (PostgreSQL only): the same query also sets synchronous_commit off for the
    rest of the transaction (its commit does not wait for the WAL flush).
    """
    statement = DEAL_WITH_STAGE_ASYNC_COMMIT if async_commit else DEAL_WITH_STAGE
    row = (
        session.execute(statement, {"deal_id": deal_id}).first()
        if is_plausible_id(deal_id)
        else None
    )
    return check_visible(row, deal_id, owner_scope)


def _stage_join(stmt):
    """Join a deal query to its current CRM stage (outer: unmapped or unknown stages stay)."""
    return stmt.outerjoin(
        CrmStage,
        and_(CrmStage.pipeline_id == Deal.pipeline_id, CrmStage.id == Deal.current_stage_id),
    )


# NOTE: asked on every recommendation: one Core statement built once (compiled once, cached).
DEAL_WITH_STAGE = _stage_join(
    select(
        *(
            Deal.__table__.c[name]
            for name in (
                "id",
                "name",
                "owner_id",
                "current_stage_id",
                "deleted_at",
                "closed_at",
                "industry",
                "personas",
                "topics",
            )
        ),
        CrmStage.__table__.c.label.label("stage_label"),
        CrmStage.__table__.c.buying_stage.label("stage_buying_stage"),
        CrmStage.__table__.c.is_closed.label("stage_is_closed"),
    )
).where(Deal.__table__.c.id == bindparam("deal_id"))
# NOTE: set_config(..., true) is SET LOCAL as a function: one round trip fewer than a SET of its own.
DEAL_WITH_STAGE_ASYNC_COMMIT = DEAL_WITH_STAGE.add_columns(
    func.set_config("synchronous_commit", "off", True).label("async_commit")
)


def search_deals(
    sessions: sessionmaker[Session],
    q: str | None = None,
    owner_id: str | None = None,
    stage: str | None = None,
    page: int = 1,
    per_page: int = 50,
    open: bool | None = None,
    owner_scope: str | None = None,
) -> dict:
    """A page of live (not deleted) deals, best fuzzy match first when q is given, else newest first.

    `stage` is a buying stage (awareness, interest, evaluation, closing) or a CRM stage id;
    `open=True` keeps deals not closed (False: closed ones); `owner_scope` (a scoped sales
    caller) limits the list to that owner's deals whatever `owner_id` asks.
    """
    q = (q or "").strip()
    if owner_scope is not None:
        if owner_id is not None and not reaches(owner_scope, owner_id):
            return {"items": [], "page": page, "per_page": per_page, "total": 0}
        owner_id = owner_scope
    # NOTE: from here on owner_id is the scope the list is limited to (asked for, or imposed).
    owner_id = owner_id or None
    offset = (page - 1) * per_page
    scores: dict[str, float] = {}
    with sessions() as session:
        if q:
            ranked = _fuzzy(_candidates(session), q, owner_id, stage, open)
            total = len(ranked)
            scores = dict(ranked[offset : offset + per_page])
            ids = list(scores)
        else:
            filters = [Deal.deleted_at.is_(None)]
            if owner_id is not None:
                filters.append(_reach_condition(owner_id))
            if stage in BUYING_STAGES:
                filters.append(CrmStage.buying_stage == stage)
            elif stage:
                filters.append(Deal.current_stage_id == stage)
            if open is not None:
                filters.append(_open_condition() if open else ~_open_condition())
            total = session.scalar(
                _stage_join(select(func.count()).select_from(Deal)).where(*filters)
            )
            ids = list(
                session.scalars(
                    _stage_join(select(Deal.id))
                    .where(*filters)
                    .order_by(Deal.created_at.desc(), Deal.id)
                    .offset(offset)
                    .limit(per_page)
                )
            )
        items = _summaries(session, ids)
    for item in items:
        item["score"] = round(scores[item["id"]], 1) if q else None
    return {"items": items, "page": page, "per_page": per_page, "total": total}


def _fuzzy(c: _Candidates, q: str, owner_id: str | None, stage: str | None, open: bool | None):
    """Rank the candidates that pass the filters."""
    # NOTE: typo-tolerant matching cannot be prefiltered with LIKE, so every candidate is scored.
    if owner_id is None and not stage and open is None:
        return rank_by_text(q, c.ids, c.texts)
    column = c.buying if stage in BUYING_STAGES else c.stages
    keep = [
        i
        for i in range(len(c.ids))
        if reaches(owner_id, c.owners[i])
        and (not stage or column[i] == stage)
        and (open is None or c.closed[i] != open)
    ]
    return rank_by_text(q, [c.ids[i] for i in keep], [c.texts[i] for i in keep])


def _summaries(session: Session, ids: list[str]) -> list[dict]:
    """Deal summaries in the order of ids."""
    if not ids:
        return []
    rows = session.execute(
        _stage_join(select(Deal, CrmStage.label, CrmStage.buying_stage)).where(Deal.id.in_(ids))
    ).all()
    by_id = {deal.id: _summary(deal, label, buying) for deal, label, buying in rows}
    return [by_id[i] for i in ids if i in by_id]


def _summary(deal: Deal, stage_label: str | None, buying_stage: str | None) -> dict:
    return {
        "id": deal.id,
        "name": deal.name,
        "company": deal.company,
        "pipeline_id": deal.pipeline_id,
        "stage": {"id": deal.current_stage_id, "label": stage_label}
        if deal.current_stage_id
        else None,
        "buying_stage": buying_stage,
        "amount": deal.amount,
        "currency": deal.currency,
        "industry": deal.industry,
        "owner_id": deal.owner_id,
        "created_at": deal.created_at,
        "closed_at": deal.closed_at,
    }


def get_deal(
    sessions: sessionmaker[Session],
    settings: Settings,
    deal_id: str,
    owner_scope: str | None = None,
) -> dict:
    """A deal with its current CRM and buying stage, full stage history and shares (with views)."""
    with reading(sessions) as session:
        # NOTE: three statements whatever the deal: the deal with its stage and pipeline, its
        # history with each stage's label, and its shares.
        row = (
            session.execute(_DEAL_DETAIL, {"deal_id": deal_id}).first()
            if is_plausible_id(deal_id)
            else None
        )
        # NOTE: deleted deals stay readable here (deleted_at is shown), but never across owners.
        if row is None or not reaches(owner_scope, row[0].owner_id):
            raise NotFound(f"no deal {deal_id!r}")
        deal, stage_label, buying_stage, pipeline_label = row
        history = session.execute(_DEAL_HISTORY, {"deal_id": deal_id}).all()
        shares = listed_shares(
            session,
            Share.deal_id == deal_id,
            (Share.shared_at, Share.id),
            public_base_url=settings.public_base_url,
            secret_key=settings.secret_key,
        )
        result = _summary(deal, stage_label, buying_stage)
        result.update(
            pipeline={"id": deal.pipeline_id, "label": pipeline_label},
            personas=list(deal.personas or []),
            topics=list(deal.topics or []),
            deleted_at=deal.deleted_at,
            stage_history=[
                {
                    "pipeline_id": p,
                    "stage_id": s,
                    "label": label,
                    "buying_stage": buying,
                    "entered_at": t,
                }
                for p, s, t, label, buying in history
            ],
            shares=shares,
        )
        return result


# NOTE: the deal page and GET /api/v1/deals/<id> read these: built once (compiled once, cached).
_DEAL_DETAIL = (
    _stage_join(select(Deal, CrmStage.label, CrmStage.buying_stage, Pipeline.label))
    .outerjoin(Pipeline, Pipeline.id == Deal.pipeline_id)
    .where(Deal.id == bindparam("deal_id"))
)
_DEAL_HISTORY = (
    select(
        StageChange.pipeline_id,
        StageChange.stage_id,
        StageChange.entered_at,
        CrmStage.label,
        CrmStage.buying_stage,
    )
    .outerjoin(
        CrmStage,
        and_(CrmStage.pipeline_id == StageChange.pipeline_id, CrmStage.id == StageChange.stage_id),
    )
    .where(StageChange.deal_id == bindparam("deal_id"))
    .order_by(StageChange.entered_at, StageChange.id)
)
