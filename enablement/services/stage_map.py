"""The stage map: which buying stage each CRM stage means, suggested or confirmed by a person."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from enablement.db.models import CrmStage, Pipeline
from enablement.db.types import utcnow
from enablement.domain.stages import BUYING_STAGES, review_problem, suggest_buying_stage
from enablement.errors import InvalidInput, NotFound


def stage_item(stage: CrmStage, pipeline: Pipeline) -> dict:
    """One stage of the map with its review flags."""
    suggested = stage.mapping_source != "confirmed"
    confidence = stage.mapping_confidence
    archived = stage.archived or pipeline.archived
    problem = review_problem(
        stage.mapping_source, stage.buying_stage, confidence, stage.is_closed, archived
    )
    reason = None
    if suggested:
        reason = suggest_buying_stage(stage.label, stage.probability, stage.is_closed).reason
    return {
        "pipeline_id": pipeline.id,
        "pipeline_label": pipeline.label,
        "stage_id": stage.id,
        "label": stage.label,
        "display_order": stage.display_order,
        "probability": stage.probability,
        "is_closed": stage.is_closed,
        "is_won": stage.is_won,
        "archived": archived,
        "buying_stage": stage.buying_stage,
        "source": "confirmed" if not suggested else "suggested",
        "confidence": confidence,
        "low_confidence": problem == "low_confidence",
        "unmapped": problem == "unmapped",
        "problem": problem,
        "reason": reason,
        "mapped_by": stage.mapped_by,
        "mapped_at": stage.mapped_at,
    }


def _rows(session: Session):
    return session.execute(
        select(CrmStage, Pipeline)
        .join(Pipeline, Pipeline.id == CrmStage.pipeline_id)
        .order_by(Pipeline.display_order, Pipeline.id, CrmStage.display_order, CrmStage.id)
    ).all()


def show_stage_map(sessions: sessionmaker[Session]) -> dict:
    """Every CRM stage, plus the ones a person should review (unmapped or low confidence).

    Returns {"items": [...], "needs_review": [{pipeline_id, stage_id, label, reason}]};
    archived stages are listed but never flagged.
    """
    with sessions() as session:
        items = [stage_item(stage, pipeline) for stage, pipeline in _rows(session)]
    review = [
        {
            "pipeline_id": item["pipeline_id"],
            "stage_id": item["stage_id"],
            "label": item["label"],
            "problem": item["problem"],
            "buying_stage": item["buying_stage"],
            "confidence": item["confidence"],
        }
        for item in items
        if item["problem"] is not None
    ]
    return {"items": items, "needs_review": review}


def set_stage_mapping(
    sessions: sessionmaker[Session],
    pipeline_id: str,
    stage_id: str,
    buying_stage: str | None,
    mapped_by: str | None,
) -> dict:
    """Confirm a stage's buying stage (None: deliberately none); returns the stage's item."""
    if buying_stage is not None and buying_stage not in BUYING_STAGES:
        raise InvalidInput(
            f"{buying_stage!r} is not a buying stage; use one of {', '.join(BUYING_STAGES)} or none",
            {"buying_stage": [f"must be one of {', '.join(BUYING_STAGES)} or null"]},
        )
    with sessions.begin() as session:
        stage = session.get(CrmStage, (pipeline_id, stage_id))
        if stage is None:
            raise NotFound(f"no stage {stage_id!r} in pipeline {pipeline_id!r}")
        changed = (
            stage.buying_stage != buying_stage
            or stage.mapping_source != "confirmed"
            or stage.mapping_confidence != 1.0
        )
        if changed:
            stage.buying_stage = buying_stage
            stage.mapping_source = "confirmed"
            stage.mapping_confidence = 1.0
            stage.mapped_by = mapped_by
            stage.mapped_at = utcnow()
            session.flush()
        return stage_item(stage, stage.pipeline)


def pipeline_names(sessions: sessionmaker[Session]) -> dict[str, str]:
    """Pipeline id -> its name in the CRM (for pages that group stages by pipeline)."""
    with sessions() as session:
        return {p.id: p.label or p.id for p in session.scalars(select(Pipeline))}
