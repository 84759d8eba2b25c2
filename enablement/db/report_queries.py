"""Read-only queries for reports and listings: plain rows and data frames, no business rules."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from enablement.db.models import (
    Asset,
    CrmStage,
    Deal,
    LinkView,
    Pipeline,
    RecommendationImpression,
    Share,
    StageChange,
)
from enablement.domain.links import link_token, link_url

if TYPE_CHECKING:
    import pandas as pd

# NOTE: pandas is imported inside the functions that build frames, so the web app and the CLI
# start without it (tests/test_startup.py).

STAGE_COLUMNS = [
    "pipeline_id",
    "stage_id",
    "label",
    "display_order",
    "buying_stage",
    "is_closed",
    "is_won",
    "mapping_source",
    "mapping_confidence",
    "pipeline_label",
]


def reads(*models):
    """Mark a query with the tables it reads: a cache of what it returns is versioned by them."""

    def mark(query):
        query.tables = tuple(model.__table__ for model in models)
        return query

    return mark


def _live_deals():
    """Deals that count: not deleted, not merged into another."""
    return Deal.deleted_at.is_(None) & Deal.merged_into_id.is_(None)


@reads(CrmStage, Pipeline)
def stage_map(session: Session) -> pd.DataFrame:
    """Every CRM stage with its mapping and its pipeline's label."""
    import pandas as pd

    rows = session.execute(
        select(
            CrmStage.pipeline_id,
            CrmStage.id,
            CrmStage.label,
            CrmStage.display_order,
            CrmStage.buying_stage,
            CrmStage.is_closed,
            CrmStage.is_won,
            CrmStage.mapping_source,
            CrmStage.mapping_confidence,
            Pipeline.label,
        )
        .join(Pipeline, Pipeline.id == CrmStage.pipeline_id)
        .where(CrmStage.archived.is_(False))
    ).all()
    return pd.DataFrame(rows, columns=STAGE_COLUMNS)


@reads(StageChange, Deal)
def stage_history(session: Session) -> pd.DataFrame:
    """Stage changes of live deals: deal_id, pipeline_id, stage_id, entered_at (ordered by deal, time, id)."""
    import pandas as pd

    rows = session.execute(
        select(
            StageChange.deal_id,
            StageChange.pipeline_id,
            StageChange.stage_id,
            StageChange.entered_at,
        )
        .join(Deal, Deal.id == StageChange.deal_id)
        .where(_live_deals())
        .order_by(StageChange.deal_id, StageChange.entered_at, StageChange.id)
    ).all()
    return pd.DataFrame(rows, columns=["deal_id", "pipeline_id", "stage_id", "entered_at"])


@reads(Deal)
def deals(session: Session) -> pd.DataFrame:
    """Live deals with the attributes reports use."""
    import pandas as pd

    rows = session.execute(
        select(
            Deal.id,
            Deal.pipeline_id,
            Deal.amount,
            Deal.industry,
            Deal.owner_id,
            Deal.personas,
            Deal.topics,
            Deal.created_at,
            Deal.closed_at,
        ).where(_live_deals())
    ).all()
    return pd.DataFrame(
        rows,
        columns=[
            "deal_id",
            "pipeline_id",
            "amount",
            "industry",
            "owner_id",
            "personas",
            "topics",
            "created_at",
            "closed_at",
        ],
    )


@reads(Share, Deal)
def shares(session: Session) -> pd.DataFrame:
    """Shares to live deals: share_id, deal_id, asset_id, shared_at, shared_by."""
    import pandas as pd

    rows = session.execute(
        select(Share.id, Share.deal_id, Share.asset_id, Share.shared_at, Share.shared_by)
        .join(Deal, Deal.id == Share.deal_id)
        .where(_live_deals())
    ).all()
    return pd.DataFrame(rows, columns=["share_id", "deal_id", "asset_id", "shared_at", "shared_by"])


@reads(RecommendationImpression, Deal)
def impressions(session: Session) -> pd.DataFrame:
    """Recommendation answers for live deals: deal_id, shown_at, holdout, source (api, nudge, ...)."""
    import pandas as pd

    rows = session.execute(
        select(
            RecommendationImpression.deal_id,
            RecommendationImpression.created_at,
            RecommendationImpression.holdout,
            RecommendationImpression.source,
        )
        .join(Deal, Deal.id == RecommendationImpression.deal_id)
        .where(_live_deals())
    ).all()
    return pd.DataFrame(rows, columns=["deal_id", "shown_at", "holdout", "source"])


@reads(Share, Deal, LinkView)
def shares_with_views(session: Session) -> pd.DataFrame:
    """Shares to live deals with their recorded view counts (a views column), for the reports.

    Every share of every live deal at once; listed_shares is its paged twin for the API.
    """
    import pandas as pd

    views = (
        select(LinkView.share_id, func.count(LinkView.id).label("views"))
        .group_by(LinkView.share_id)
        .subquery()
    )
    rows = session.execute(
        select(
            Share.id,
            Share.deal_id,
            Share.asset_id,
            Share.shared_at,
            Share.shared_by,
            func.coalesce(views.c.views, 0),
        )
        .join(Deal, Deal.id == Share.deal_id)
        .outerjoin(views, views.c.share_id == Share.id)
        .where(_live_deals())
    ).all()
    return pd.DataFrame(
        rows, columns=["share_id", "deal_id", "asset_id", "shared_at", "shared_by", "views"]
    )


def listed_shares(
    session: Session,
    where,
    order_by,
    *,
    public_base_url: str,
    secret_key: str,
    offset: int = 0,
    limit: int | None = None,
) -> list[dict]:
    """Shares matching `where` as the API lists them: asset title, buyer views and the link.

    Deleted deals included (a deal's page still shows its shares). NOTE: views are counted per
    share through the link_views index (a correlated count): an aggregate over every view
    joined in would cost the whole table on every request.
    """
    views = (
        select(func.count()).where(LinkView.share_id == Share.id).correlate(Share).scalar_subquery()
    )
    rows = session.execute(
        select(Share, Asset.title, views)
        .join(Asset, Asset.id == Share.asset_id)
        .where(where)
        .order_by(*order_by)
        .offset(offset)
        .limit(limit)
    ).all()
    return [
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
            "link": link_url(public_base_url, link_token(secret_key, share.id)),
        }
        for share, title, count in rows
    ]


@reads(Asset)
def assets(session: Session) -> list[dict]:
    """Every asset with the fields reports use (plain dicts)."""
    rows = session.execute(
        select(
            Asset.id,
            Asset.title,
            Asset.author,
            Asset.status,
            Asset.review_by,
            Asset.retired_at,
            Asset.stages,
            Asset.personas,
            Asset.industries,
            Asset.topics,
            Asset.pitch_score,
            Asset.pitch_flag,
        ).order_by(Asset.id)
    ).all()
    return [row._asdict() for row in rows]


@reads(Asset)
def asset_titles(session: Session) -> dict[str, str]:
    """asset id -> title."""
    return dict(session.execute(select(Asset.id, Asset.title)).all())


@reads(Asset)
def asset_published(session: Session) -> dict:
    """asset id -> published_at (None when not recorded)."""
    return dict(session.execute(select(Asset.id, Asset.published_at)).all())
