"""The admin's view of background work: how many jobs per state, and the latest ones."""

from __future__ import annotations

from flask import Blueprint
from marshmallow import Schema, fields, validate

from enablement.context import ctx
from enablement.db.jobs import STATES
from enablement.services.jobs import KINDS, list_jobs
from enablement.web.endpoint import endpoint
from enablement.web.schemas import StrictSchema

bp = Blueprint("jobs", __name__)


class JobQuery(StrictSchema):
    """Filters of the job list."""

    state = fields.String(
        validate=validate.OneOf(STATES),
        load_default=None,
        metadata={"description": "only jobs in this state"},
    )
    kind = fields.String(validate=validate.OneOf(sorted(KINDS)), load_default=None)
    limit = fields.Integer(validate=validate.Range(1, 1000), load_default=100)


class JobSchema(Schema):
    """One job: its key (what it is), state, attempts and last error."""

    id = fields.Integer(metadata={"description": "the job's number"})
    key = fields.String(metadata={"description": "what the job is; one job per key"})
    kind = fields.String(metadata={"description": ", ".join(sorted(KINDS))})
    state = fields.String(metadata={"description": ", ".join(STATES)})
    attempts = fields.Integer(metadata={"description": "runs started so far"})
    max_attempts = fields.Integer(metadata={"description": "runs allowed before it fails"})
    last_error = fields.String(
        allow_none=True, metadata={"description": "the last failed run's error, or null"}
    )
    owner = fields.String(allow_none=True, metadata={"description": "host:pid running it last"})
    created_at = fields.String(metadata={"description": "first asked for (UTC)"})
    updated_at = fields.String(metadata={"description": "last change of state (UTC)"})
    run_after = fields.String(metadata={"description": "not started before (retry backoff)"})
    finished_at = fields.String(
        allow_none=True, metadata={"description": "when it last ended, or null"}
    )


class JobCountsSchema(Schema):
    """Jobs per state."""

    queued = fields.Integer(metadata={"description": "waiting for a worker"})
    running = fields.Integer(metadata={"description": "held by a worker"})
    succeeded = fields.Integer(metadata={"description": "ended well (kept 7 days)"})
    failed = fields.Integer(metadata={"description": "out of attempts"})


class JobListSchema(Schema):
    """Counts per state and the latest jobs, newest change first."""

    counts = fields.Nested(JobCountsSchema, metadata={"description": "jobs per state"})
    jobs = fields.List(
        fields.Nested(JobSchema), metadata={"description": "the latest, newest change first"}
    )


@bp.get("/api/v1/jobs")
@endpoint(
    summary="Background jobs: counts per state and the latest (queued, running, failed)",
    tag="jobs",
    role="admin",
    query=JobQuery,
    response=JobListSchema,
    errors=(401, 403, 422),
)
def jobs(principal, query):
    """The job list."""
    states = (query["state"],) if query["state"] else ()
    return list_jobs(ctx().sessions, states, query["kind"], query["limit"])
