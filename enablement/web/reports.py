"""Routes for reports: coverage, cycle time and effectiveness as JSON or CSV (marketing and up)."""

from __future__ import annotations

from flask import Blueprint, Response
from marshmallow import Schema, fields, validate

from enablement.context import ctx
from enablement.render import render, render_api_json
from enablement.services.reports import get_report
from enablement.web.endpoint import endpoint
from enablement.web.schemas import StrictSchema, Timestamp

bp = Blueprint("reports", __name__)


class ReportQuery(StrictSchema):
    """format and as_of of every report."""

    format = fields.String(load_default="json", validate=validate.OneOf(["json", "csv"]))
    as_of = Timestamp(load_default=None)


class EffectSchema(Schema):
    """One (asset, buying stage) effect; null numbers carry a reason."""

    asset_id = fields.String()
    title = fields.String()
    buying_stage = fields.String()
    exposed_episodes = fields.Integer()
    exposed_advances = fields.Integer()
    hazard_ratio = fields.Float(allow_none=True)
    ci_low = fields.Float(allow_none=True)
    ci_high = fields.Float(allow_none=True)
    p_value = fields.Float(allow_none=True)
    q_value = fields.Float(allow_none=True)
    median_days_exposed = fields.Float(allow_none=True)
    median_days_unexposed = fields.Float(allow_none=True)
    verdict = fields.String(
        validate=validate.OneOf(["shortens", "lengthens", "no_evidence", "insufficient_data"])
    )
    reason = fields.String(allow_none=True)


class EffectivenessReportSchema(Schema):
    """The effectiveness report."""

    as_of = fields.String()
    method = fields.String()
    items = fields.List(fields.Nested(EffectSchema))


class CoverageCellSchema(Schema):
    """One stage x dimension value cell."""

    stage = fields.String()
    dimension = fields.String()
    value = fields.String()
    live_assets = fields.Integer()
    stale_assets = fields.Integer()
    shares_90d = fields.Integer()
    open_deals = fields.Integer()
    status = fields.String(validate=validate.OneOf(["gap", "thin", "ok"]))


class CoverageReportSchema(Schema):
    """The coverage report."""

    as_of = fields.String()
    min_assets = fields.Integer()
    stages = fields.List(fields.Dict())
    cells = fields.List(fields.Nested(CoverageCellSchema))
    gaps = fields.List(fields.Nested(CoverageCellSchema))
    unmapped_stages = fields.List(fields.Dict())
    untagged_assets = fields.List(fields.Dict())
    product_pitch_assets = fields.List(fields.Dict())
    never_opened_assets = fields.List(fields.Dict())
    never_shared_assets = fields.List(fields.Dict())
    authors = fields.List(fields.Dict())


class StageTimeSchema(Schema):
    """Counts and Kaplan-Meier days of one CRM or buying stage."""

    pipeline_id = fields.String()
    stage_id = fields.String()
    label = fields.String()
    buying_stage = fields.String(allow_none=True)
    entered = fields.Integer()
    advanced = fields.Integer()
    lost = fields.Integer()
    open = fields.Integer()
    other = fields.Integer()
    median_days = fields.Float(allow_none=True)
    p25_days = fields.Float(allow_none=True)
    p75_days = fields.Float(allow_none=True)


class CycleTimeReportSchema(Schema):
    """The cycle-time report."""

    as_of = fields.String()
    method = fields.String()
    crm_stages = fields.List(fields.Nested(StageTimeSchema))
    buying_stages = fields.List(fields.Nested(StageTimeSchema))
    won_cycle_by_month = fields.List(fields.Dict())


def _answer(kind: str, query: dict) -> Response:
    """Compute (or read the cached) report and answer it as JSON or CSV."""
    container = ctx()
    report = get_report(container.sessions, container.settings, kind, query["as_of"])
    if query["format"] == "csv":
        return Response(
            render(kind, report, "csv"),
            mimetype="text/csv",
            headers={"Content-Disposition": f'attachment; filename="{kind}.csv"'},
        )
    # NOTE: the payload is already plain JSON data; dumping thousands of items through
    # marshmallow again would only cost time. The schemas document the shape.
    return Response(render_api_json(report), mimetype="application/json")


@bp.get("/api/v1/reports/coverage")
@endpoint(
    summary="Coverage: buying stage x persona/industry/topic, gaps, unmapped stages, pitches",
    tag="reports",
    role="marketing",
    query=ReportQuery,
    response=CoverageReportSchema,
)
def coverage_report(principal, query):
    """The coverage report."""
    return _answer("coverage", query)


@bp.get("/api/v1/reports/cycle-time")
@endpoint(
    summary="Cycle time per CRM and buying stage (Kaplan-Meier, open deals censored)",
    tag="reports",
    role="marketing",
    query=ReportQuery,
    response=CycleTimeReportSchema,
)
def cycle_time_report(principal, query):
    """The cycle-time report."""
    return _answer("cycle-time", query)


@bp.get("/api/v1/reports/effectiveness")
@endpoint(
    summary="Effectiveness: hazard ratio of advancing per (asset, stage), time-varying exposure",
    tag="reports",
    role="marketing",
    query=ReportQuery,
    response=EffectivenessReportSchema,
)
def effectiveness_report(principal, query):
    """The effectiveness report."""
    return _answer("effectiveness", query)
