"""Sharing an asset to a deal, and the public trackable link that records buyer views."""

from __future__ import annotations

import functools
import json

from flask import Blueprint, redirect, request

from enablement.context import ctx
from enablement.services.jobs import queue_link_views
from enablement.services.link_spool import links_for
from enablement.services.shares import create_share, follow_link, idempotency_for, list_shares
from enablement.web.deal_schemas import (
    ShareBody,
    ShareCreatedSchema,
    ShareListItemSchema,
    ShareListQuery,
)
from enablement.web.endpoint import endpoint
from enablement.web.schemas import paged

bp = Blueprint("links", __name__)


@bp.post("/api/v1/deals/<deal_id>/shares")
@endpoint(
    summary="Share a live asset to a deal and get its trackable link (200 when it already exists)",
    tag="shares",
    role="sales",
    body=ShareBody,
    response=ShareCreatedSchema,
    status=201,
    errors=(404, 409, 422),
    also=(
        (
            200,
            "The share exists already (a repeat within the window, or a replayed "
            "Idempotency-Key): the first answer",
            ShareCreatedSchema,
        ),
    ),
)
def post_share(principal, body, deal_id):
    """Create (or return the existing) share; an Idempotency-Key replays the first answer."""
    container = ctx()
    idempotency = idempotency_for(
        principal.token_id,
        request.headers.get("Idempotency-Key"),
        f"POST /api/v1/deals/{deal_id}/shares",
        # NOTE: the body as sent (already parsed by the endpoint, so valid JSON), not as loaded:
        # two bodies that load alike but differ are still different requests.
        json.loads(request.get_data(cache=True)),
    )
    share, created = create_share(
        container.sessions,
        container.settings,
        deal_id,
        body["asset_id"],
        actor=principal.actor,
        shared_by=principal.shown_as,
        channel=body.get("channel"),
        shared_at=body.get("shared_at"),
        may_backfill=principal.has_role("admin"),
        owner_scope=principal.owner_scope,
        impression_id=body.get("impression_id"),
        idempotency=idempotency,
    )
    return share, 201 if created else 200


@bp.get("/api/v1/shares")
@endpoint(
    summary="The caller's own shares (`mine=true`), newest first, with buyer views and links",
    tag="shares",
    role="sales",
    query=ShareListQuery,
    response=paged(ShareListItemSchema),
    errors=(422,),
)
def get_shares(principal, query):
    """A page of the caller's shares: its owner's (by any of its tokens or the card), else its own."""
    container = ctx()
    return list_shares(
        container.sessions,
        container.settings,
        principal.actor,
        page=query["page"],
        per_page=query["per_page"],
    )


@bp.get("/l/<token>")
def open_link(token: str):
    """302 to the shared asset's own URL; a view is recorded for humans on GET (not HEAD)."""
    container = ctx()
    url = follow_link(
        container.sessions,
        token,
        request.headers.get("User-Agent"),
        count=request.method == "GET",
        links=links_for(container.settings),
        queue_replay=functools.partial(queue_link_views, container),
    )
    response = redirect(url, code=302)
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response
