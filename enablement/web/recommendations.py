"""GET /api/v1/deals/<id>/recommendations: what to send this deal's buyer now."""

from __future__ import annotations

from flask import Blueprint, jsonify

from enablement.context import ctx
from enablement.services.recommendations import recommend_for_deal
from enablement.web.deal_schemas import RecommendationQuery, RecommendationsSchema
from enablement.web.endpoint import endpoint

bp = Blueprint("recommendations", __name__)


@bp.get("/api/v1/deals/<deal_id>/recommendations")
@endpoint(
    summary="Ranked live assets for the deal's buying stage, with scores, components and reasons",
    tag="recommendations",
    role="sales",
    query=RecommendationQuery,
    response=RecommendationsSchema,
    errors=(404, 422),
)
def get_recommendations(principal, query, deal_id):
    """Recommendations for one deal; every answer is logged as an impression."""
    container = ctx()
    answer = recommend_for_deal(
        container.sessions,
        container.settings,
        deal_id,
        query["limit"],
        owner_scope=principal.owner_scope,
        requested_by=principal.actor,
        token_id=principal.token_id,
        source="api",
    )
    # NOTE: the service's answer already has exactly the documented shape; dumping it through
    # the nested schema (kept for the OpenAPI document) cost about a millisecond a request.
    return jsonify(answer)
