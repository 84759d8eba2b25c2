"""Report pages: coverage heatmap, effectiveness forest plot, cycle time and adoption per rep."""

from __future__ import annotations

from flask import Response, abort, render_template, request, send_from_directory

from enablement import TEMPLATES
from enablement.charts import VERDICT_STYLE, bar_chart, forest_plot
from enablement.context import ctx
from enablement.domain.effectiveness.verdicts import VERDICTS
from enablement.domain.report_filters import EffectFilter, filter_effectiveness
from enablement.domain.stages import BUYING_STAGES
from enablement.domain.timestamps import format_for_people
from enablement.render import coverage_context
from enablement.services.adoption import adoption_by_rep
from enablement.services.reports import request_report
from enablement.web.endpoint import load
from enablement.web.pages import bp, page
from enablement.web.reports import EffectivenessQuery, report_runner


def _report(kind: str) -> dict:
    """The report as the API gets it: never computed in this request (the background runner
    does it); while nothing is ready, a "computing" page that reloads itself answers 202."""
    container = ctx()
    answer = request_report(container.sessions, container.settings, report_runner(), kind)
    if answer.report is None:
        page_html = render_template(
            "pages/computing.html", kind=kind.replace("-", " "), retry_after=answer.retry_after
        )
        abort(Response(page_html, status=202, headers={"Retry-After": str(answer.retry_after)}))
    return answer.report


def _report_if_ready(kind: str) -> dict | None:
    """The report when one is computed (fresh or stale), else None: its computation is started."""
    container = ctx()
    return request_report(container.sessions, container.settings, report_runner(), kind).report


@bp.get("/reports/coverage.css")
def coverage_css():
    """The coverage styles: the CLI's file inlines the same file."""
    return send_from_directory(TEMPLATES, "coverage.css", mimetype="text/css", max_age=300)


@bp.get("/reports/coverage")
@page("marketing")
def coverage(principal):
    """The coverage heatmap, live: the same template as `enablement report coverage --format html`."""
    return render_template(
        "report_coverage.html", layout="base.html", **coverage_context(_report("coverage"))
    )


@bp.get("/reports/effectiveness")
@page("marketing")
def effectiveness(principal):
    """Hazard ratios with CIs (forest plot), insufficient-data rows folded away, recommender impact.

    Also the recommendation funnel, when computed: a page must not wait for it.
    """
    args = {k: v for k, v in request.args.items() if v.strip() and k in ("stage", "verdict")}
    query = load(EffectivenessQuery(), {**args, "include_insufficient": "true"}, "query")
    report = filter_effectiveness(
        _report("effectiveness"), EffectFilter(query["verdict"], query["stage"], None, True)
    )
    order = {v: i for i, v in enumerate(VERDICTS)}
    fitted = sorted(
        (r for r in report["items"] if r["verdict"] != "insufficient_data"),
        key=lambda r: (order.get(r["verdict"], 9), r["hazard_ratio"] or 1, r["asset_id"]),
    )
    insufficient = [r for r in report["items"] if r["verdict"] == "insufficient_data"]
    impact = [
        {
            **r,
            "title": f"Recommender impact · {r['buying_stage']}"
            + ("" if r.get("trigger", "any") == "any" else f" · {r['trigger']}"),
            "asset_id": "",
        }
        for r in report.get("recommender_impact", [])
    ]
    return render_template(
        "pages/effectiveness.html",
        report=report,
        as_of=format_for_people(report["as_of"]),
        fitted=fitted,
        insufficient=insufficient,
        plot=forest_plot(fitted),
        impact=impact,
        impact_plot=forest_plot(impact),
        styles=VERDICT_STYLE,
        query=query,
        stages=BUYING_STAGES,
        verdicts=VERDICTS,
        recommendations=_funnel_section(_report_if_ready("recommendations")),
    )


# The page lists the assets recommended most; the API and the CLI give every row.
FUNNEL_ROWS = 20


def _funnel_section(report: dict | None) -> dict | None:
    """The recommendations report's groups and its most recommended assets, or None while computing."""
    if report is None:
        return None
    top = sorted(report["funnel"], key=lambda r: (-r["recommended"], -r["shared"], r["asset_id"]))
    return {**report, "top": top[:FUNNEL_ROWS], "assets": len(report["funnel"])}


@bp.get("/reports/cycle-time")
@page("marketing")
def cycle_time(principal):
    """Median days per buying stage and per CRM stage, with the quartiles."""
    report = _report("cycle-time")
    buying = [{**r, "label": r["buying_stage"]} for r in report["buying_stages"]]
    crm = [{**r, "label": r.get("label") or r["stage_id"]} for r in report["crm_stages"]]
    return render_template(
        "pages/cycle_time.html",
        report=report,
        as_of=format_for_people(report["as_of"]),
        buying=buying,
        crm=crm,
        buying_chart=bar_chart(buying, "median_days", low="p25_days", high="p75_days"),
        crm_chart=bar_chart(crm, "median_days", low="p25_days", high="p75_days"),
    )


@bp.get("/reports/adoption")
@page("marketing")
def adoption(principal):
    """Shares and buyer opens per rep."""
    rows = adoption_by_rep(ctx().sessions)
    chart_rows = [{**r, "label": r["name"]} for r in rows]
    return render_template(
        "pages/adoption.html",
        rows=rows,
        shares_chart=bar_chart(chart_rows, "shares"),
        opens_chart=bar_chart(chart_rows, "buyer_opens"),
    )
