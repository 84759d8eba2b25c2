"""The nudges' counts for operators: per state, per skip reason, and the deliveries failing."""

from __future__ import annotations

from flask import Blueprint
from marshmallow import Schema, fields

from enablement.context import ctx
from enablement.services.nudges import nudge_stats
from enablement.web.endpoint import endpoint
from enablement.web.schemas import Timestamp

bp = Blueprint("nudges", __name__)


class NudgeStatesSchema(Schema):
    """Nudges per state."""

    skipped = fields.Integer(metadata={"description": "stage entries that got no nudge"})
    pending = fields.Integer(metadata={"description": "prepared, to deliver"})
    delivering = fields.Integer(metadata={"description": "claimed by a worker right now"})
    delivered = fields.Integer(metadata={"description": "a task, note or webhook was made"})
    failed = fields.Integer(metadata={"description": "a delivery failed; retried with backoff"})
    dead = fields.Integer(metadata={"description": "NUDGE_MAX_ATTEMPTS used up; not retried"})
    preparing = fields.Integer(metadata={"description": "being ranked"})


class NudgeSkipsSchema(Schema):
    """Stage entries that got no nudge, per reason."""

    too_old = fields.Integer(metadata={"description": "entered before NUDGE_WINDOW_HOURS"})
    closed = fields.Integer(metadata={"description": "the deal is closed"})
    deleted = fields.Integer(metadata={"description": "the deal was deleted or merged away"})
    unmapped = fields.Integer(metadata={"description": "the CRM stage has no buying stage"})
    same_buying_stage = fields.Integer(
        metadata={"description": "a move within the buying stage it was in"}
    )
    holdout = fields.Integer(metadata={"description": "the deal is in the RECOMMENDATION_HOLDOUT"})
    no_live_piece = fields.Integer(metadata={"description": "no live piece for that stage"})


class FailingNudgeSchema(Schema):
    """A nudge whose delivery failed."""

    id = fields.Integer(metadata={"description": "the nudge's number"})
    deal_id = fields.String(metadata={"description": "the deal it is for"})
    state = fields.String(metadata={"description": "failed or dead"})
    attempts = fields.Integer(metadata={"description": "deliveries tried"})
    last_error = fields.String(allow_none=True, metadata={"description": "the last failure"})
    next_attempt_at = Timestamp(allow_none=True)


class NudgeStatsSchema(Schema):
    """Counts over every nudge, and the latest deliveries that failed."""

    states = fields.Nested(NudgeStatesSchema)
    skipped = fields.Nested(NudgeSkipsSchema)
    failing = fields.List(fields.Nested(FailingNudgeSchema))


@bp.get("/api/v1/nudges/stats")
@endpoint(
    summary="Nudges per state and skip reason, and the latest failed or dead deliveries",
    tag="nudges",
    role="admin",
    response=NudgeStatsSchema,
    errors=(401, 403),
)
def stats(principal):
    """The nudges' counts."""
    return nudge_stats(ctx().sessions)
