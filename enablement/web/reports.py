"""Routes for reports: coverage, cycle time, effectiveness and recommendations as JSON or CSV (marketing and up)."""

from __future__ import annotations

import functools
import hashlib

from flask import Blueprint, Response, jsonify, request
from marshmallow import Schema, fields, pre_load, validate

from enablement.context import ctx
from enablement.domain.effectiveness.verdicts import VERDICTS
from enablement.domain.report_filters import EffectFilter, filter_effectiveness
from enablement.domain.stages import BUYING_STAGES
from enablement.domain.timestamps import format_timestamp
from enablement.render import render, render_api_json
from enablement.services.jobs import queue_report
from enablement.services.reports import ReportAnswer, request_report
from enablement.web.endpoint import endpoint
from enablement.web.schemas import StrictSchema, Timestamp

bp = Blueprint("reports", __name__)


class ReportComputingSchema(Schema):
    """202: the report is being computed; the same URL answers it once done."""

    status = fields.String(metadata={"description": "always computing"})
    report = fields.String(metadata={"description": "which report"})
    as_of = Timestamp(allow_none=True)
    retry_after = fields.Integer(metadata={"description": "seconds until asking again"})


COMPUTING = (
    (
        202,
        "Being computed: ask the same URL again after Retry-After seconds",
        ReportComputingSchema,
    ),
)


class ReportQuery(StrictSchema):
    """format and as_of of every report."""

    format = fields.String(
        load_default="json",
        validate=validate.OneOf(["json", "csv"]),
        metadata={"description": "json (default) or csv (the main table, one row per item)"},
    )
    as_of = Timestamp(
        load_default=None,
        metadata={
            "description": "report as of this moment (ISO 8601 with a zone); "
            "later data are ignored. Default: now"
        },
    )

    @pre_load
    def _lower(self, data, **_):
        # NOTE: filters are case-insensitive, like tags and the stage map (`stage=Closing`).
        return {
            k: (
                v.strip().lower()
                if k in ("verdict", "stage", "format") and isinstance(v, str)
                else v
            )
            for k, v in data.items()
        }


class FormatQuery(StrictSchema):
    """format of a report that has no as_of (it counts everything logged so far)."""

    format = fields.String(
        load_default="json",
        validate=validate.OneOf(["json", "csv"]),
        metadata={"description": "json (default) or csv (the funnel, one row per asset)"},
    )

    @pre_load
    def _lower(self, data, **_):
        return {
            k: v.strip().lower() if k == "format" and isinstance(v, str) else v
            for k, v in data.items()
        }


class CoverageQuery(ReportQuery):
    """The coverage report can also be the self-contained HTML page."""

    format = fields.String(
        load_default="json",
        validate=validate.OneOf(["json", "csv", "html"]),
        metadata={
            "description": "json (default), csv (the cells), or html: the same self-contained "
            "page as `enablement report coverage --format html`"
        },
    )


class EffectivenessQuery(ReportQuery):
    """Filters of the effectiveness report (case-insensitive)."""

    verdict = fields.String(
        load_default=None,
        validate=validate.OneOf(VERDICTS),
        metadata={"description": "only rows with this verdict: " + ", ".join(VERDICTS)},
    )
    stage = fields.String(
        load_default=None,
        validate=validate.OneOf(BUYING_STAGES),
        metadata={"description": "only rows of this buying stage"},
    )
    asset = fields.String(
        load_default=None,
        validate=validate.Length(min=1, max=64),
        metadata={"description": "only rows of this asset id"},
    )
    include_insufficient = fields.Boolean(
        load_default=False,
        metadata={
            "description": "also list insufficient_data rows (by default they are only "
            "counted, in hidden_insufficient_data)"
        },
    )


class _EstimateSchema(Schema):
    """What every estimated effect carries: the hazard ratio, its interval, verdict and reason."""

    buying_stage = fields.String()
    hazard_ratio = fields.Float(allow_none=True)
    ci_low = fields.Float(allow_none=True)
    ci_high = fields.Float(allow_none=True)
    p_value = fields.Float(allow_none=True)
    verdict = fields.String(validate=validate.OneOf(VERDICTS))
    reason = fields.String(allow_none=True)
    diagnostics = fields.Dict(
        allow_none=True,
        metadata={
            "description": "where a model was fitted: balance (standardised differences), "
            "proportional_hazards (test of the effect against log days in stage), e_value, "
            "e_value_ci, offset_only_hazard_ratio, co_send (share, partners, flag), calendar "
            "(entry_periods, period_edges)"
        },
    )


class EffectSchema(_EstimateSchema):
    """One (asset, buying stage) effect; null numbers carry a reason."""

    asset_id = fields.String()
    title = fields.String()
    exposed_episodes = fields.Integer()
    exposed_advances = fields.Integer()
    q_value = fields.Float(allow_none=True)
    median_days_exposed = fields.Float(allow_none=True)
    median_days_unexposed = fields.Float(allow_none=True)
    inseparable_from = fields.List(fields.String())
    joint_of = fields.List(fields.String(), allow_none=True)


class RecommenderImpactSchema(_EstimateSchema):
    """The recommender's own effect in one buying stage: recommended group versus holdout."""

    recommended_episodes = fields.Integer()
    recommended_advances = fields.Integer()
    holdout_episodes = fields.Integer()
    holdout_advances = fields.Integer()
    trigger = fields.String(
        metadata={
            "description": "any: every recommendation request; nudged: only the lists pushed on "
            "entering a stage (nudges, HubSpot workflows); asked: only those a person asked for"
        }
    )
    method = fields.String()


class EffectivenessReportSchema(Schema):
    """The effectiveness report."""

    as_of = fields.String()
    method = fields.String()
    items = fields.List(fields.Nested(EffectSchema))
    recommender_impact = fields.List(
        fields.Nested(RecommenderImpactSchema),
        metadata={
            "description": "one row per buying stage: does asking for recommendations (versus "
            "the RECOMMENDATION_HOLDOUT group) shorten the stage?"
        },
    )
    hidden_insufficient_data = fields.Integer(
        metadata={
            "description": "insufficient_data rows left out of items "
            "(include_insufficient=true lists them)"
        }
    )


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
    advanced_at_median = fields.Float(allow_none=True)
    advanced_30d = fields.Float(allow_none=True)
    lost_30d = fields.Float(allow_none=True)
    advanced_90d = fields.Float(allow_none=True)
    lost_90d = fields.Float(allow_none=True)
    cif_median_days = fields.Float(allow_none=True)


class CycleTimeReportSchema(Schema):
    """The cycle-time report."""

    as_of = fields.String()
    method = fields.String()
    crm_stages = fields.List(fields.Nested(StageTimeSchema))
    buying_stages = fields.List(fields.Nested(StageTimeSchema))
    won_cycle_by_month = fields.List(fields.Dict())


class FunnelRowSchema(Schema):
    """One asset: how often it was recommended, shared from a recommendation, and opened."""

    asset_id = fields.String()
    title = fields.String()
    recommended = fields.Integer(
        metadata={"description": "times listed in a recommendation answer"}
    )
    shared = fields.Integer(
        metadata={"description": "shares made with the impression_id of an answer listing it"}
    )
    opened = fields.Integer(metadata={"description": "of those shares, the ones a buyer opened"})


class RecommendationGroupsSchema(Schema):
    """Distinct deals per group of the holdout."""

    recommended_deals = fields.Integer(
        metadata={
            "description": "distinct deals that asked for recommendations and were shown them"
        }
    )
    holdout_deals = fields.Integer(
        metadata={"description": "distinct deals that asked and were held out (shown nothing)"}
    )


class RecommendationsReportSchema(Schema):
    """The recommendations report: the funnel per asset and the holdout groups."""

    as_of = fields.String(metadata={"description": "when the counts were taken"})
    method = fields.String()
    holdout_fraction = fields.Float(metadata={"description": "RECOMMENDATION_HOLDOUT now"})
    groups = fields.Nested(
        RecommendationGroupsSchema, metadata={"description": "deals per holdout group"}
    )
    funnel = fields.List(
        fields.Nested(FunnelRowSchema),
        metadata={"description": "one row per asset ever recommended, ordered by asset id"},
    )


def report_runner():
    """How this app queues a report computation (a job), or None when reports compute inline."""
    container = ctx()
    if container.settings.job_queue == "inline":
        return None
    return functools.partial(queue_report, container)


def _answer(kind: str, query: dict) -> Response:
    """The report as JSON, CSV or (coverage) HTML: fresh, the last one marked stale, or 202."""
    container = ctx()
    answer = request_report(
        container.sessions, container.settings, report_runner(), kind, query.get("as_of")
    )
    if answer.report is None:
        return _computing(kind, query, answer)
    report = answer.report
    if kind == "effectiveness":
        report = filter_effectiveness(
            report,
            EffectFilter(
                query["verdict"], query["stage"], query["asset"], query["include_insufficient"]
            ),
        )
    if query["format"] == "html":
        # NOTE: the page is self-contained (inline CSS, no script), so the strictest policy fits.
        response = Response(
            render(kind, report, "html"),
            mimetype="text/html",
            headers={
                "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'",
                "Cache-Control": "private, no-store",
            },
        )
    elif query["format"] == "csv":
        response = Response(
            render(kind, report, "csv"),
            mimetype="text/csv",
            headers={"Content-Disposition": f'attachment; filename="{kind}.csv"'},
        )
    else:
        # NOTE: the payload is already plain JSON data; dumping thousands of items through
        # marshmallow again would only cost time. The schemas document the shape.
        response = Response(render_api_json(report), mimetype="application/json")
    return _marked(response, answer)


def _marked(response: Response, answer: ReportAnswer) -> Response:
    """Say whether the report is current, which data version it was computed on, and when."""
    response.headers["X-Report-State"] = answer.state
    if answer.version is not None:
        digest = hashlib.sha256(answer.version.encode("utf-8")).hexdigest()[:16]
        response.headers["X-Report-Version"] = digest
    if answer.computed_at is not None:
        response.headers["X-Report-Computed-At"] = format_timestamp(answer.computed_at)
    if answer.state == "stale":
        # A newer report is being computed: ask again after this long to get it.
        response.headers["Retry-After"] = str(answer.retry_after)
    return response


def _computing(kind: str, query: dict, answer: ReportAnswer) -> Response:
    """202: the report is being computed; ask the same URL again after Retry-After seconds."""
    headers = {
        "Location": request.full_path.rstrip("?"),
        "Retry-After": str(answer.retry_after),
        "X-Report-State": "computing",
        "Cache-Control": "no-store",
    }
    if query["format"] == "html":
        # NOTE: a browser asking for the page simply reloads it until the report is there.
        page = (
            '<!doctype html><meta charset="utf-8">'
            f'<meta http-equiv="refresh" content="{answer.retry_after}">'
            f"<title>Computing the {kind} report</title>"
            f"<p>The {kind} report is being computed; this page reloads by itself.</p>"
        )
        return Response(page, status=202, mimetype="text/html", headers=headers)
    as_of = format_timestamp(query["as_of"]) if query.get("as_of") is not None else None
    body = jsonify(status="computing", report=kind, as_of=as_of, retry_after=answer.retry_after)
    body.status_code = 202
    body.headers.update(headers)
    return body


@bp.get("/api/v1/reports/coverage")
@endpoint(
    summary="Coverage: buying stage x persona/industry/topic, gaps, unmapped stages, pitches",
    tag="reports",
    role="marketing",
    query=CoverageQuery,
    response=CoverageReportSchema,
    also=COMPUTING,
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
    also=COMPUTING,
)
def cycle_time_report(principal, query):
    """The cycle-time report."""
    return _answer("cycle-time", query)


@bp.get("/api/v1/reports/effectiveness")
@endpoint(
    summary="Effectiveness: hazard ratio of advancing per (asset, stage), time-varying exposure",
    tag="reports",
    role="marketing",
    query=EffectivenessQuery,
    response=EffectivenessReportSchema,
    also=COMPUTING,
)
def effectiveness_report(principal, query):
    """The effectiveness report."""
    return _answer("effectiveness", query)


@bp.get("/api/v1/reports/recommendations")
@endpoint(
    summary="Recommendations: per asset recommended, shared from a recommendation, opened; holdout groups",
    tag="reports",
    role="marketing",
    query=FormatQuery,
    response=RecommendationsReportSchema,
    also=COMPUTING,
)
def recommendations_report(principal, query):
    """The recommendations report."""
    return _answer("recommendations", query)
