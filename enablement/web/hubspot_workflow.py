"""HubSpot's custom workflow action "Suggest content for this deal" (docs/nudges.md).

HubSpot's workflows POST an execution request for the enrolled deal, signed like the
webhooks and the app card (v3, within 5 minutes, from the configured account). The answer
carries output fields a workflow can use in its next actions: the top piece's title, its
trackable link (a share with channel `hubspot_workflow`), the reason, and how many pieces
were offered. A deal nudged on entering its current stage answers the nudge's pieces (already
ranked, logged and shared); otherwise the recommender ranks them now and the answer is logged
as an impression with source `hubspot_workflow`, so the holdout and the impact rows see it.
"""

from __future__ import annotations

import json

from flask import Blueprint
from marshmallow import EXCLUDE, Schema, fields, validate

from enablement.context import ctx
from enablement.errors import Forbidden, Unauthenticated, Unavailable
from enablement.services.nudges import prepared_pieces
from enablement.services.recommendations import recommend_for_deal
from enablement.services.shares import create_share
from enablement.web.endpoint import load
from enablement.web.request_guard import read_body
from enablement.web.webhooks import signature_problem

bp = Blueprint("hubspot_workflow", __name__)

ACTION_PATH = "/integrations/hubspot/workflow-actions/suggest-content"
SOURCE = "hubspot_workflow"
BODY_LIMIT = 64 * 1024
_ID = r"^[A-Za-z0-9._:-]{1,64}$"


class _Loose(Schema):
    class Meta:
        unknown = EXCLUDE  # NOTE: HubSpot adds fields of its own to execution requests


class _Origin(_Loose):
    portalId = fields.Raw(required=True)


class _Object(_Loose):
    objectId = fields.Raw(required=True)
    objectType = fields.String(validate=validate.OneOf(["DEAL", "deal", "0-3"]))


class _Inputs(_Loose):
    limit = fields.Integer(load_default=3, validate=validate.Range(min=1, max=10))


class ExecutionRequest(_Loose):
    """What HubSpot sends when a workflow runs the action for a deal."""

    callbackId = fields.String()
    origin = fields.Nested(_Origin, required=True)
    object = fields.Nested(_Object, required=True)
    inputFields = fields.Nested(_Inputs, load_default=lambda: {"limit": 3})


@bp.post(ACTION_PATH)
def suggest_content():
    """The output fields for the enrolled deal: top piece title, trackable link, reason, count offered."""
    container = ctx()
    settings = container.settings
    if not settings.hubspot_client_secret or not settings.hubspot_portal_id:
        raise Unavailable(
            "the workflow action is not configured: set HUBSPOT_CLIENT_SECRET and HUBSPOT_PORTAL_ID"
        )
    body = read_body(BODY_LIMIT)
    problem = signature_problem(settings.hubspot_client_secret, body)
    if problem:
        raise Unauthenticated(problem, {"reason": "invalid_signature"})
    try:
        data = json.loads(body or b"null")
    except ValueError:
        data = None
    request = load(ExecutionRequest(), data if isinstance(data, dict) else {"_": data}, "body")
    if str(request["origin"]["portalId"]) != settings.hubspot_portal_id:
        raise Forbidden(
            "this request comes from another HubSpot account", {"reason": "wrong_portal"}
        )
    deal_id = str(request["object"]["objectId"])
    load(_DealId(), {"deal_id": deal_id}, "body")
    # NOTE: a deal nudged on entering its current stage already has its pieces and shares.
    prepared = prepared_pieces(container.sessions, settings, deal_id)
    if prepared is not None:
        items = prepared["items"][: request["inputFields"]["limit"]]
        top = items[0]
        return {
            "outputFields": {
                "top_title": top["title"],
                "top_link": top["link"],
                "top_reason": top["reason"],
                "offered_count": len(items),
            }
        }
    answer = recommend_for_deal(
        container.sessions,
        settings,
        deal_id,
        request["inputFields"]["limit"],
        requested_by=SOURCE,
        source=SOURCE,
    )
    outputs = {"top_title": "", "top_link": "", "top_reason": "", "offered_count": 0}
    if answer["items"]:
        top = answer["items"][0]
        share, _ = create_share(
            container.sessions,
            settings,
            deal_id,
            top["asset"]["id"],
            actor=SOURCE,
            shared_by=SOURCE,
            channel=SOURCE,
            impression_id=answer["impression_id"],
        )
        outputs = {
            "top_title": top["asset"]["title"],
            "top_link": share["link"],
            "top_reason": (top["reasons"] or [""])[0],
            "offered_count": len(answer["items"]),
        }
    return {"outputFields": outputs}


class _DealId(Schema):
    deal_id = fields.String(required=True, validate=validate.Regexp(_ID))
