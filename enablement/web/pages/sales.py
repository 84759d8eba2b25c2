"""Sales pages: my open deals and a fuzzy search, one deal with its timeline, recommendations and shares."""

from __future__ import annotations

from flask import flash, redirect, render_template, request, url_for

from enablement.context import ctx
from enablement.domain.timestamps import parse_timestamp
from enablement.services.adoption import shown_names
from enablement.services.deals import get_deal, search_deals
from enablement.services.recommendations import recommend_for_deal
from enablement.services.shares import create_share
from enablement.web.deal_schemas import DealQuery
from enablement.web.endpoint import load
from enablement.web.pages import bp, page

PER_PAGE = 25
MAX_FORM_FIELD = 200


def filled(args) -> dict:
    """The query's non-empty values (an empty search box means no filter)."""
    return {k: v for k, v in args.items() if v.strip()}


@bp.get("/deals")
@page("sales")
def deals(principal):
    """Open deals (a rep sees their own), best fuzzy match first when searching."""
    query = load(DealQuery(), {"per_page": PER_PAGE, **filled(request.args)}, "query")
    query.setdefault("open", True)
    answer = search_deals(ctx().sessions, **query, owner_scope=principal.owner_scope)
    pages = max(1, -(-answer["total"] // answer["per_page"]))
    return render_template("pages/deals.html", answer=answer, query=query, pages=pages)


def timeline(history: list[dict], now) -> list[dict]:
    """The stage history with the days spent in each stage (the last one: until now)."""
    rows = []
    for i, step in enumerate(history):
        entered = parse_timestamp(step["entered_at"])
        left = parse_timestamp(history[i + 1]["entered_at"]) if i + 1 < len(history) else now
        rows.append({**step, "days": max(0.0, (left - entered).total_seconds() / 86400)})
    return rows


@bp.get("/deals/<deal_id>")
@page("sales")
def deal(principal, deal_id):
    """One deal: timeline, recommendations with reasons, shares with buyer opens."""
    from enablement.db.types import utcnow

    container = ctx()
    scope = principal.owner_scope
    detail = get_deal(container.sessions, container.settings, deal_id, scope)
    recommendations = None
    if detail["deleted_at"] is None:
        recommendations = recommend_for_deal(
            container.sessions,
            container.settings,
            deal_id,
            5,
            owner_scope=scope,
            requested_by=principal.actor,
            token_id=principal.token_id,
            # NOTE: the impression sources are api, cli and hubspot_card; the page is an API client.
            source="api",
        )
    # NOTE: shared_by holds an owner id for a rep's share (a token's name otherwise): show the person.
    names = shown_names(container.sessions, [s["shared_by"] for s in detail["shares"]])
    shares = [
        {**s, "shared_by": names.get(s["shared_by"], s["shared_by"])} for s in detail["shares"]
    ]
    return render_template(
        "pages/deal.html",
        deal={**detail, "shares": shares},
        steps=timeline(detail["stage_history"], utcnow()),
        recommendations=recommendations,
    )


@bp.post("/deals/<deal_id>/share")
@page("sales")
def share(principal, deal_id):
    """Share one recommended asset (with the impression it came from); show its link."""
    container = ctx()
    asset_id = (request.form.get("asset_id") or "")[:MAX_FORM_FIELD]
    impression_id = (request.form.get("impression_id") or "")[:MAX_FORM_FIELD] or None
    answer, created = create_share(
        container.sessions,
        container.settings,
        deal_id,
        asset_id,
        actor=principal.actor,
        shared_by=principal.shown_as,
        channel="email",
        owner_scope=principal.owner_scope,
        impression_id=impression_id,
    )
    flash(answer["link"], "share-link")
    return redirect(url_for("pages.deal", deal_id=deal_id, _anchor="shares"))
