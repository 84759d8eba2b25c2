"""The stage map page: each CRM stage with its buying stage and confidence, low confidence first."""

from __future__ import annotations

from flask import flash, redirect, render_template, request, url_for

from enablement.context import ctx
from enablement.domain.stages import BUYING_STAGES
from enablement.services.stage_map import set_stage_mapping, show_stage_map
from enablement.services.tokens import require_role
from enablement.web.endpoint import load
from enablement.web.pages import bp, page
from enablement.web.stage_map import StageMappingBody

NONE_CHOICE = "none"


def review_order(item: dict) -> tuple:
    """Stages needing review first, then lowest confidence, then by pipeline and label."""
    confidence = item.get("confidence")
    return (
        item.get("problem") is None,
        confidence if confidence is not None else -1.0,
        item.get("pipeline_id") or "",
        item.get("label") or "",
    )


@bp.get("/stage-map")
@page("marketing")
def stage_map(principal):
    """Every CRM stage; admins can confirm a buying stage."""
    answer = show_stage_map(ctx().sessions)
    items = sorted(answer["items"], key=review_order)
    return render_template(
        "pages/stage_map.html",
        items=items,
        review=answer["needs_review"],
        stages=BUYING_STAGES,
        none_choice=NONE_CHOICE,
    )


@bp.post("/stage-map/<pipeline_id>/<stage_id>")
@page("marketing")
def set_mapping(principal, pipeline_id, stage_id):
    """Confirm one stage's buying stage (admin only, as in the API)."""
    require_role(principal, "admin")
    chosen = (request.form.get("buying_stage") or "").strip()[:64]
    body = load(
        StageMappingBody(), {"buying_stage": None if chosen == NONE_CHOICE else chosen}, "body"
    )
    item = set_stage_mapping(
        ctx().sessions, pipeline_id, stage_id, body["buying_stage"], principal.name
    )
    flash(f"{item['label']} → {item['buying_stage'] or 'no buying stage'} (confirmed).", "notice")
    return redirect(url_for("pages.stage_map"))
