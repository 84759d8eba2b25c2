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

    id = fields.Integer()
    key = fields.String(metadata={"description": "what the job is; one job per key"})
    kind = fields.String(metadata={"description": ", ".join(sorted(KINDS))})
    state = fields.String(metadata={"description": ", ".join(STATES)})
    attempts = fields.Integer()
    max_attempts = fields.Integer()
    last_error = fields.String(allow_none=True)
    owner = fields.String(allow_none=True, metadata={"description": "host:pid running it last"})
    created_at = fields.String()
    updated_at = fields.String()
    run_after = fields.String(metadata={"description": "not started before (retry backoff)"})
    finished_at = fields.String(allow_none=True)


class JobCountsSchema(Schema):
    """Jobs per state."""

    queued = fields.Integer()
    running = fields.Integer()
    succeeded = fields.Integer()
    failed = fields.Integer()


class JobListSchema(Schema):
    """Counts per state and the latest jobs, newest change first."""

    counts = fields.Nested(JobCountsSchema)
    jobs = fields.List(fields.Nested(JobSchema))


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
