"""Reading deals: fuzzy search by name and company, and one deal with its history and shares."""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from dataclasses import dataclass

from rapidfuzz import fuzz, process, utils
from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session, sessionmaker

from enablement.config import Settings
from enablement.db.models import Asset, CrmStage, Deal, LinkView, Pipeline, Share, StageChange
from enablement.db.versioning import table_versions
from enablement.domain.links import link_token, link_url
from enablement.domain.stages import BUYING_STAGES
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
    ids, texts, owners, stages, buying = [], [], [], [], []
    rows = session.connection().execute(
        _stage_join(
            select(Deal.id, Deal.name, Deal.company, Deal.owner_id, Deal.current_stage_id)
            .add_columns(CrmStage.buying_stage)
            .where(Deal.deleted_at.is_(None))
        )
    )
    for deal_id, name, company, owner, stage, buying_stage in rows:
        ids.append(deal_id)
        texts.append(utils.default_process(search_text(name, company)))
        owners.append(owner)
        stages.append(stage)
        buying.append(buying_stage)
    cached = _Candidates(version, ids, texts, owners, stages, buying)
    _CANDIDATES[engine] = cached
    return cached


def _stage_join(stmt):
    return stmt.outerjoin(
        CrmStage,
        and_(CrmStage.pipeline_id == Deal.pipeline_id, CrmStage.id == Deal.current_stage_id),
    )


def search_deals(
    sessions: sessionmaker[Session],
    q: str | None = None,
    owner_id: str | None = None,
    stage: str | None = None,
    page: int = 1,
    per_page: int = 50,
) -> dict:
    """A page of live (not deleted) deals, best fuzzy match first when q is given, else newest first.

    `stage` is a buying stage (awareness, interest, evaluation, closing) or a CRM stage id.
    """
    q = (q or "").strip()
    offset = (page - 1) * per_page
    scores: dict[str, float] = {}
    with sessions() as session:
        if q:
            ranked = _fuzzy(_candidates(session), q, owner_id, stage)
            total = len(ranked)
            scores = dict(ranked[offset : offset + per_page])
            ids = list(scores)
        else:
            filters = [Deal.deleted_at.is_(None)]
            if owner_id:
                filters.append(Deal.owner_id == owner_id)
            if stage in BUYING_STAGES:
                filters.append(CrmStage.buying_stage == stage)
            elif stage:
                filters.append(Deal.current_stage_id == stage)
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


def _fuzzy(c: _Candidates, q: str, owner_id: str | None, stage: str | None):
    """Rank the candidates that pass the filters."""
    # NOTE: typo-tolerant matching cannot be prefiltered with LIKE, so every candidate is scored.
    if not owner_id and not stage:
        return rank_by_text(q, c.ids, c.texts)
    column = c.buying if stage in BUYING_STAGES else c.stages
    keep = [
        i
        for i in range(len(c.ids))
        if (not owner_id or c.owners[i] == owner_id) and (not stage or column[i] == stage)
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


def get_deal(sessions: sessionmaker[Session], settings: Settings, deal_id: str) -> dict:
    """A deal with its current CRM and buying stage, full stage history and shares (with views)."""
    with sessions() as session:
        deal = session.get(Deal, deal_id)
        if deal is None:
            raise NotFound(f"no deal {deal_id!r}")
        history = session.execute(
            select(StageChange.pipeline_id, StageChange.stage_id, StageChange.entered_at)
            .where(StageChange.deal_id == deal_id)
            .order_by(StageChange.entered_at, StageChange.id)
        ).all()
        pipelines = {deal.pipeline_id} | {p for p, _, _ in history}
        stages = {
            (s.pipeline_id, s.id): s
            for s in session.scalars(select(CrmStage).where(CrmStage.pipeline_id.in_(pipelines)))
        }
        pipeline = session.get(Pipeline, deal.pipeline_id)
        views = (
            select(LinkView.share_id, func.count().label("n"))
            .group_by(LinkView.share_id)
            .subquery()
        )
        shares = session.execute(
            select(Share, Asset.title, func.coalesce(views.c.n, 0))
            .join(Asset, Asset.id == Share.asset_id)
            .outerjoin(views, views.c.share_id == Share.id)
            .where(Share.deal_id == deal_id)
            .order_by(Share.shared_at, Share.id)
        ).all()
        current = stages.get((deal.pipeline_id, deal.current_stage_id))
        result = _summary(
            deal, current.label if current else None, current.buying_stage if current else None
        )
        result.update(
            pipeline={"id": deal.pipeline_id, "label": pipeline.label if pipeline else None},
            personas=list(deal.personas or []),
            topics=list(deal.topics or []),
            deleted_at=deal.deleted_at,
            stage_history=[
                {
                    "pipeline_id": p,
                    "stage_id": s,
                    "label": stages[(p, s)].label if (p, s) in stages else None,
                    "buying_stage": stages[(p, s)].buying_stage if (p, s) in stages else None,
                    "entered_at": t,
                }
                for p, s, t in history
            ],
            shares=[
                {
                    "id": share.id,
                    "asset_id": share.asset_id,
                    "asset_title": title,
                    "shared_at": share.shared_at,
                    "shared_by": share.shared_by,
                    "channel": share.channel,
                    "views": count,
                    "link": link_url(
                        settings.public_base_url, link_token(settings.secret_key, share.id)
                    ),
                }
                for share, title, count in shares
            ],
        )
        return result
