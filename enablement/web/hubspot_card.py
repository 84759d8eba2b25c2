"""The HubSpot app card's backend: a deal's recommendations, and sharing one, for a signed HubSpot user.

Both routes take only requests signed by HubSpot (v3, within 5 minutes) from the configured
account, and act as the deal owner behind the HubSpot user (matched by e-mail in the owners
table): the user's own deals only, as a sales token bound to that owner would.
"""

from __future__ import annotations

from flask import Blueprint, request
from marshmallow import EXCLUDE, Schema, fields, validate

from enablement.context import ctx
from enablement.domain.timestamps import format_timestamp
from enablement.errors import Forbidden, Unauthenticated, Unavailable
from enablement.services.recommendations import owner_for_hubspot_user, recommend_for_deal
from enablement.services.shares import create_share
from enablement.services.tokens import owner_actor
from enablement.web.deal_schemas import ShareBody
from enablement.web.endpoint import load, read_json
from enablement.web.schemas import PlainInteger
from enablement.web.webhooks import signature_problem

bp = Blueprint("hubspot_card", __name__)

CARD_PATH = "/integrations/hubspot/card"
SHARE_PATH = f"{CARD_PATH}/shares"


class CardQuery(Schema):
    """What hubspot.fetch sends: the deal, HubSpot's own user and account parameters, a limit."""

    class Meta:
        unknown = EXCLUDE  # NOTE: HubSpot may add parameters of its own; they are signed, not ours

    associatedObjectId = fields.String(
        required=True, validate=validate.Regexp(r"^[A-Za-z0-9._:-]{1,64}$")
    )
    associatedObjectType = fields.String(validate=validate.OneOf(["DEAL", "deal", "0-3"]))
    limit = PlainInteger(load_default=5, validate=validate.Range(min=1, max=20))
    portalId = fields.String()
    userId = fields.String()
    userEmail = fields.String()
    appId = fields.String()


class CardShareBody(ShareBody):
    """Share from the card: the API's share body plus the deal; no backfilled shared_at."""

    deal_id = fields.String(required=True, validate=validate.Regexp(r"^[A-Za-z0-9._:-]{1,64}$"))


def _card_owner() -> str:
    """Check configuration, signature and account; the id of the CRM owner behind the HubSpot user."""
    container = ctx()
    settings = container.settings
    if not settings.hubspot_client_secret or not settings.hubspot_portal_id:
        raise Unavailable(
            "the HubSpot app card is not configured: set HUBSPOT_CLIENT_SECRET and HUBSPOT_PORTAL_ID"
        )
    problem = signature_problem(settings.hubspot_client_secret, request.get_data(cache=True))
    if problem:
        raise Unauthenticated(problem, {"reason": "invalid_signature"})
    if request.args.get("portalId") != settings.hubspot_portal_id:
        raise Forbidden(
            "this request comes from another HubSpot account", {"reason": "wrong_portal"}
        )
    with container.sessions() as session:
        return owner_for_hubspot_user(session, request.args.get("userEmail")).id


@bp.get(CARD_PATH)
def card():
    """The deal's recommendations, each with the share action the card's button posts."""
    owner_id = _card_owner()
    query = load(CardQuery(), request.args.to_dict(), "query")
    container = ctx()
    answer = recommend_for_deal(
        container.sessions,
        container.settings,
        query["associatedObjectId"],
        query["limit"],
        owner_scope=owner_id,
        requested_by=owner_actor(owner_id),
        source="hubspot_card",
    )
    items = [
        {
            **item,
            "share": {
                "method": "POST",
                "path": SHARE_PATH,
                "body": {
                    "deal_id": answer["deal"]["id"],
                    "asset_id": item["asset"]["id"],
                    "impression_id": answer["impression_id"],
                },
            },
        }
        for item in answer["items"]
    ]
    return {
        "deal": answer["deal"],
        "holdout": answer["holdout"],
        "closed": answer["closed"],
        "message": answer["message"],
        "impression_id": answer["impression_id"],
        "recommendations": items,
    }


@bp.post(SHARE_PATH)
def card_share():
    """Share a recommended asset from the card; the same answer as the API's share."""
    owner_id = _card_owner()
    body = load(CardShareBody(), read_json(), "body")
    if body.get("shared_at") is not None:
        raise Forbidden("the card cannot backfill shared_at")
    container = ctx()
    share, created = create_share(
        container.sessions,
        container.settings,
        body["deal_id"],
        body["asset_id"],
        actor=owner_actor(owner_id),
        shared_by=owner_id,
        channel=body.get("channel") or "hubspot",
        owner_scope=owner_id,
        impression_id=body.get("impression_id"),
    )
    share["shared_at"] = format_timestamp(share["shared_at"])
    return share, 201 if created else 200
