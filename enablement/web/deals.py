"""Routes for deals: fuzzy search, and one deal with its history and shares."""

from __future__ import annotations

from flask import Blueprint

from enablement.context import ctx
from enablement.errors import InvalidInput
from enablement.services.deals import get_deal, search_deals
from enablement.web.deal_schemas import DealDetailSchema, DealQuery, DealSummarySchema
from enablement.web.endpoint import endpoint
from enablement.web.schemas import paged

bp = Blueprint("deals", __name__)


@bp.get("/api/v1/deals")
@endpoint(
    summary="Search deals by name and company (fuzzy); filter by owner (`me`), stage and open",
    tag="deals",
    role="sales",
    query=DealQuery,
    response=paged(DealSummarySchema),
    errors=(422,),
)
def list_deals(principal, query):
    """A page of deals (a sales token bound to an owner sees that owner's only)."""
    if query.get("owner_id") == "me":
        if not principal.owner_id:
            raise InvalidInput(
                "owner_id=me needs a token created with an owner id",
                {"owner_id": ["this token has no owner"]},
            )
        query["owner_id"] = principal.owner_id
    return search_deals(ctx().sessions, **query, owner_scope=principal.owner_scope)


@bp.get("/api/v1/deals/<deal_id>")
@endpoint(
    summary="A deal with its current stage, full stage history and shares",
    tag="deals",
    role="sales",
    response=DealDetailSchema,
    errors=(404,),
)
def show_deal(principal, deal_id):
    """One deal."""
    container = ctx()
    return get_deal(container.sessions, container.settings, deal_id, principal.owner_scope)
