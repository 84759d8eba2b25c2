"""Reading deals: fuzzy search by name and company, and one deal with its history and shares."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from rapidfuzz import fuzz, process, utils
from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session, sessionmaker

from enablement.config import Settings
from enablement.db.models import Asset, CrmStage, Deal, LinkView, Pipeline, Share, StageChange
from enablement.domain.links import link_token, link_url
from enablement.domain.stages import BUYING_STAGES
from enablement.errors import NotFound

# Matches scoring below this (rapidfuzz WRatio, 0..100) are not search results.
MATCH_CUTOFF = 70.0


def rank_by_text(query: str, candidates: Sequence[tuple[str, str]]) -> list[tuple[str, float]]:
    """(id, score) of the candidates (id, text) matching the query, best first, ties by id."""
    if not candidates:
        return []
    texts = [text for _, text in candidates]
    # NOTE: cdist scores every candidate in C on all cores; 100,000 names take ~0.1 s.
    scores = process.cdist(
        [query], texts, scorer=fuzz.WRatio, processor=utils.default_process, workers=-1
    )[0]
    hits = np.flatnonzero(scores >= MATCH_CUTOFF)
    ranked = [(candidates[i][0], float(scores[i])) for i in hits]
    return sorted(ranked, key=lambda m: (-m[1], m[0]))


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
    filters = [Deal.deleted_at.is_(None)]
    if owner_id:
        filters.append(Deal.owner_id == owner_id)
    if stage in BUYING_STAGES:
        filters.append(CrmStage.buying_stage == stage)
    elif stage:
        filters.append(Deal.current_stage_id == stage)
    offset = (page - 1) * per_page
    scores: dict[str, float] = {}
    with sessions() as session:
        if q:
            # NOTE: typo-tolerant matching cannot be prefiltered by LIKE, so rank every
            # candidate's (id, name + company) in rapidfuzz: see benchmarks/deals_100k.py for the figures.
            # Core rows (not ORM) keep fetching 100,000 candidates cheap.
            rows = session.connection().execute(
                _stage_join(select(Deal.id, Deal.name, Deal.company)).where(*filters)
            )
            ranked = rank_by_text(q, [(i, f"{n} {c}" if c else n) for i, n, c in rows])
            total = len(ranked)
            scores = dict(ranked[offset : offset + per_page])
            ids = list(scores)
        else:
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
