"""Routes of the stage map: list every CRM stage's buying stage, confirm one."""

from __future__ import annotations

from flask import Blueprint
from marshmallow import Schema, fields, pre_load, validate

from enablement.context import ctx
from enablement.domain.stages import BUYING_STAGES
from enablement.services.stage_map import set_stage_mapping, show_stage_map
from enablement.web.endpoint import endpoint
from enablement.web.schemas import StrictSchema, Timestamp

bp = Blueprint("stage_map", __name__)


class StageMapItemSchema(Schema):
    """A CRM stage and its buying stage."""

    pipeline_id = fields.String()
    pipeline_label = fields.String()
    stage_id = fields.String()
    label = fields.String()
    display_order = fields.Integer()
    probability = fields.Float(allow_none=True)
    is_closed = fields.Boolean()
    is_won = fields.Boolean()
    archived = fields.Boolean()
    buying_stage = fields.String(allow_none=True)
    source = fields.String(metadata={"enum": ["suggested", "confirmed"]})
    confidence = fields.Float(allow_none=True)
    low_confidence = fields.Boolean()
    problem = fields.String(
        allow_none=True,
        metadata={"enum": ["unmapped", "low_confidence"], "description": "why it needs review"},
    )
    unmapped = fields.Boolean()
    reason = fields.String(allow_none=True)
    mapped_by = fields.String(allow_none=True)
    mapped_at = Timestamp(allow_none=True)


class ReviewItemSchema(Schema):
    """A stage a person should look at."""

    pipeline_id = fields.String()
    stage_id = fields.String()
    label = fields.String()
    problem = fields.String(metadata={"enum": ["unmapped", "low_confidence"]})
    buying_stage = fields.String(allow_none=True)
    confidence = fields.Float(allow_none=True)


class StageMapSchema(Schema):
    """Every stage, and the ones that need review."""

    items = fields.List(fields.Nested(StageMapItemSchema))
    needs_review = fields.List(fields.Nested(ReviewItemSchema))


class StageMappingBody(StrictSchema):
    """A confirmed buying stage; null means the stage maps to no buying stage."""

    buying_stage = fields.String(
        required=True,
        allow_none=True,
        validate=validate.OneOf(BUYING_STAGES),
        metadata={"description": "awareness, interest, evaluation, closing (any case), or null"},
    )

    @pre_load
    def _lower(self, data, **_):
        # NOTE: the same value the CLI accepts (`stage-map set p1 demo Closing`) is accepted here.
        if isinstance(data, dict) and isinstance(data.get("buying_stage"), str):
            return {**data, "buying_stage": data["buying_stage"].strip().lower()}
        return data


@bp.get("/api/v1/stage-map")
@endpoint(
    summary="Every CRM stage with its buying stage, and the stages that need review",
    tag="stage map",
    role="marketing",
    response=StageMapSchema,
)
def get_stage_map(principal):
    """The stage map."""
    return show_stage_map(ctx().sessions)


@bp.put("/api/v1/stage-map/<pipeline_id>/<stage_id>")
@endpoint(
    summary="Confirm the buying stage of a CRM stage",
    tag="stage map",
    role="admin",
    body=StageMappingBody,
    response=StageMapItemSchema,
    errors=(404,),
)
def put_stage_mapping(principal, body, pipeline_id, stage_id):
    """Confirm one mapping."""
    return set_stage_mapping(
        ctx().sessions, pipeline_id, stage_id, body["buying_stage"], principal.name
    )
