"""Report pages: coverage heatmap, effectiveness forest plot, cycle time and adoption per rep."""

from __future__ import annotations

from flask import Response, abort, render_template, request, send_from_directory

from enablement import TEMPLATES
from enablement.charts import VERDICT_STYLE, bar_chart, chart_pair, forest_plot
from enablement.context import ctx
from enablement.domain.effectiveness.verdicts import VERDICTS
from enablement.domain.report_filters import EffectFilter, filter_effectiveness
from enablement.domain.stages import BUYING_STAGES
from enablement.errors import InvalidInput
from enablement.render import coverage_context, time_element
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


# The forest plot draws the first rows of the chosen order; the table below lists every row.
PLOT_ROWS = 30
# How the effectiveness rows can be ordered: (key, what the menu says, sort key).
EFFECT_SORTS = {
    "matters": "what matters first",
    "q": "lowest q first",
    "effect": "largest effect first",
    "title": "title A–Z",
}


def _titles_of(items: list[dict]) -> _Titles:
    """asset id -> title, for naming the pieces a row's warnings mention."""
    return _Titles({r["asset_id"]: r["title"] for r in items if r.get("asset_id")})


class _Titles(dict):
    """A title by asset id; an id with no title is shown as itself."""

    def __missing__(self, key):
        return key


def _effect_order(sort: str):
    """The sort key of an effectiveness row for one of EFFECT_SORTS."""
    import math

    order = {v: i for i, v in enumerate(VERDICTS)}

    def q(r):
        return r["q_value"] if r.get("q_value") is not None else 2.0

    def distance(r):
        return -abs(math.log(r["hazard_ratio"])) if r.get("hazard_ratio") else 0.0

    if sort == "q":
        return lambda r: (q(r), r["asset_id"], r["buying_stage"])
    if sort == "effect":
        return lambda r: (distance(r), q(r), r["asset_id"])
    if sort == "title":
        return lambda r: ((r.get("title") or "").lower(), r["buying_stage"])
    # NOTE: shortens and lengthens hold after the correction: they come first, clearest first.
    return lambda r: (min(order.get(r["verdict"], 9), 2), q(r), r["asset_id"])


@bp.get("/reports/effectiveness")
@page("marketing")
def effectiveness(principal):
    """Hazard ratios with CIs (forest plot), insufficient-data rows folded away, recommender impact.

    Rows sorted (what matters first by default) and filtered by stage and verdict, each with what
    its verdict means in plain words. Also the recommendation funnel, when computed: a page must
    not wait for it.
    """
    args = {k: v for k, v in request.args.items() if v.strip() and k in ("stage", "verdict")}
    sort = request.args.get("sort", "matters")
    if sort not in EFFECT_SORTS:
        raise InvalidInput(f"sort must be one of {', '.join(EFFECT_SORTS)}")
    query = load(EffectivenessQuery(), {**args, "include_insufficient": "true"}, "query")
    return render_template(
        "pages/effectiveness.html",
        **effectiveness_context(_report("effectiveness"), query, sort),
        recommendations=_funnel_section(_report_if_ready("recommendations")),
    )


def effectiveness_context(whole: dict, query: dict, sort: str) -> dict:
    """What the effectiveness page's template shows of one whole report, filtered and sorted."""
    from enablement.domain.effectiveness.verdicts import MIN_ADVANCES, MIN_EXPOSED, Q_MAX
    from enablement.render import effect_meaning

    tests = sum(1 for r in whole["items"] if r.get("q_value") is not None)
    report = filter_effectiveness(whole, EffectFilter(query["verdict"], query["stage"], None, True))
    fitted = sorted(
        (
            {**r, "meaning": effect_meaning(r, tests, Q_MAX)}
            for r in report["items"]
            if r["verdict"] != "insufficient_data"
        ),
        key=_effect_order(sort),
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
    counts = {v: sum(1 for r in fitted if r["verdict"] == v) for v in VERDICTS}
    return dict(
        report=report,
        as_of=time_element(report["as_of"]),
        fitted=fitted,
        # NOTE: co-send partners and inseparable pieces are named by title, not id.
        titles=_titles_of(whole["items"]),
        counts=counts,
        tests=tests,
        q_max=Q_MAX,
        insufficient=insufficient,
        plot=chart_pair(forest_plot, fitted[:PLOT_ROWS]),
        plot_rows=min(PLOT_ROWS, len(fitted)),
        impact=impact,
        impact_plot=chart_pair(forest_plot, impact),
        impact_needs={
            "holdout": ctx().settings.recommendation_holdout,
            "min_episodes": MIN_EXPOSED,
            "min_advances": MIN_ADVANCES,
        },
        styles=VERDICT_STYLE,
        query=query,
        sort=sort,
        sorts=EFFECT_SORTS,
        stages=BUYING_STAGES,
        verdicts=VERDICTS,
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
    """Median days per buying stage, then per CRM stage pipeline by pipeline, with the quartiles
    and the shares advanced and lost within 30 and 90 days."""
    from enablement.services.stage_map import pipeline_names

    report = _report("cycle-time")
    buying = [{**r, "label": r["buying_stage"]} for r in report["buying_stages"]]
    names = pipeline_names(ctx().sessions)
    pipelines: dict[str, list[dict]] = {}
    for r in report["crm_stages"]:
        pipelines.setdefault(r["pipeline_id"], []).append(
            {**r, "label": r.get("label") or r["stage_id"]}
        )
    sections = [
        {
            "id": "buying",
            "title": "By buying stage (every pipeline)",
            "rows": buying,
            "chart": chart_pair(bar_chart, buying, "median_days", low="p25_days", high="p75_days"),
        }
    ] + [
        {
            "id": f"pipeline-{i}",
            "title": f"Pipeline “{names.get(pid, pid)}”: by CRM stage",
            "rows": rows,
            "chart": chart_pair(bar_chart, rows, "median_days", low="p25_days", high="p75_days"),
        }
        for i, (pid, rows) in enumerate(
            sorted(pipelines.items(), key=lambda kv: names.get(kv[0], kv[0]).lower()), start=1
        )
    ]
    return render_template(
        "pages/cycle_time.html",
        report=report,
        as_of=time_element(report["as_of"]),
        sections=sections,
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
        shares_chart=chart_pair(bar_chart, chart_rows, "shares"),
        opens_chart=chart_pair(bar_chart, chart_rows, "buyer_opens"),
    )
