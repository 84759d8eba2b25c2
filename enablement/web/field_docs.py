"""Descriptions of the API's fields for the OpenAPI document, by field name.

A schema field's own `metadata={"description": ...}` wins; these fill in the rest, so that
one word (buying_stage, hazard_ratio, ...) is explained once and the same everywhere. A
name whose meaning depends on the schema is listed under (schema, name).
"""

from __future__ import annotations

from enablement.domain.assets import ASSET_FIELDS, KINDS, STATUSES
from enablement.domain.stages import BUYING_STAGES
from enablement.web.errors import documented_codes


def one_of(values: tuple[str, ...]) -> str:
    """The values as a phrase: 'a, b or c'."""
    return values[0] if len(values) == 1 else f"{', '.join(values[:-1])} or {values[-1]}"


# NOTE: lists of values come from their one home, so that a new kind, status or error code is
# documented without editing this module.
_STAGES = ", ".join(BUYING_STAGES)
_KINDS = one_of(KINDS)
_STATUSES = one_of(STATUSES)
_ASSET_STATUS_DEFAULT = next(f.default for f in ASSET_FIELDS if f.name == "status")

BY_NAME: dict[str, str] = {
    # identity and bookkeeping
    "id": "identifier",
    "created_at": "when it was created (UTC, ISO 8601)",
    "updated_at": "when it last changed (UTC, ISO 8601)",
    "items": "the entries of this page or report",
    "page": "page number, from 1",
    "per_page": "entries per page (at most 200)",
    "total": "how many entries match in all pages",
    "message": "a sentence for people",
    "code": f"machine-readable error code ({', '.join(documented_codes())})",
    "details": "what exactly was wrong, e.g. the message of every bad field",
    "error": "the error: code, message and details",
    # assets
    "title": "title of the asset",
    "url": "where the asset lives (http or https)",
    "author": "the named person whose point of view it is",
    "summary": "a short summary (at most 5,000 characters)",
    "body": "the full text, read by the point-of-view check (at most 200,000 characters)",
    "topics": "topic tags (compared without regard to case)",
    "industries": "industry tags (compared without regard to case)",
    "personas": "persona tags, e.g. CFO (compared without regard to case)",
    "stages": f"buying stages the asset serves: {_STAGES}",
    "published_at": "when it was published (ISO 8601 with a zone)",
    "review_by": "date after which an approved asset is stale and should be refreshed",
    "series": "name of the series it belongs to (e.g. a podcast season)",
    "series_order": "its position in the series, from 0",
    "pitch_score": "0 to 1: how much of the text is about the seller's own products",
    "pitch_flag": "pitch_score of 0.35 or more: a product pitch rather than a point of view",
    "retired_at": "when it was retired; null while not retired",
    "warnings": "near-duplicates and other problems that did not block the write",
    "of": "the existing asset this one looks like",
    "score": "how alike (0 to 100)",
    # imports
    "created": "records created",
    "updated": "records changed",
    "unchanged": "records already stored exactly so",
    "skipped": "invalid records left out (skip_invalid)",
    "errors": "every invalid record: its line (or array position) and field messages",
    "line": "line of the file (1-based), or position in a JSON array",
    # CRM
    "amount": "deal amount (0 or more), in currency",
    "currency": "ISO 4217 code, e.g. EUR",
    "company": "the buying company",
    "industry": "the deal's industry",
    "owner_id": "CRM owner id of the salesperson",
    "closed_at": "when the deal was won or lost; null while open",
    "deleted_at": "when the deal was deleted or archived in the CRM; null otherwise",
    "pipeline": "the deal's pipeline",
    "pipeline_id": "CRM pipeline id",
    "pipeline_label": "the pipeline's name in the CRM",
    "stage_id": "CRM stage id",
    "label": "the stage's name in the CRM",
    "stage_history": "every stage the deal entered, oldest first; the last is the current one",
    "entered_at": "when the deal entered the stage",
    "buying_stage": f"the buyer's stage ({_STAGES}) the CRM stage maps to; null: none",
    "crm_stage": "the deal's current CRM stage",
    "shares": "assets shared to the deal",
    "display_order": "position of the stage in its pipeline",
    "probability": "the CRM's win probability of the stage (0 to 1)",
    "is_closed": "a closed (won or lost) stage",
    "is_won": "a won stage",
    "archived": "archived in the CRM",
    # shares and links
    "asset_id": "the asset's id",
    "asset_title": "the asset's title",
    "deal_id": "the deal's id",
    "shared_at": "when the asset was sent to the buyer (ISO 8601 with a zone)",
    "shared_by": "who shared it",
    "channel": "how it was sent, e.g. email",
    "link": "the trackable link to send the buyer",
    "views": "how many times the buyer opened the link (bots and previews not counted)",
    "impression_id": "the recommendation list this share came from, if any",
    # stage map
    "source": "suggested (from the label and probability) or confirmed (by a person or a file)",
    "confidence": "how sure the suggestion is (0 to 1)",
    "low_confidence": "a suggestion below the confidence a person must confirm",
    "unmapped": "an open stage with no buying stage that nobody confirmed",
    "mapped_at": "when the mapping was last set",
    "mapped_by": "who confirmed the mapping: a token's name, cli or import",
    "needs_review": "stages a person should confirm",
    "problem": "why the stage needs review: unmapped or low_confidence",
    # tokens
    "role": "sales, marketing or admin (each includes the ones before it)",
    "prefix": "first characters of the token, to recognise it",
    "last_used_at": "when the token was last used; null if never",
    "revoked_at": "when the token was revoked; null while active",
    "token": "the token itself: shown only in this answer, store it now",
    # reports
    "as_of": "the moment the report describes (UTC); later data are ignored",
    "method": "how the numbers were computed, in words",
    "min_assets": "COVERAGE_MIN_ASSETS: fewer live assets than this in a cell with demand is thin",
    "cells": "one cell per buying stage and persona, industry or topic value",
    "gaps": "cells where open deals sit and no live asset covers them, most deals first",
    "dimension": "persona, industry or topic",
    "value": "the persona, industry or topic",
    "live_assets": "approved assets not past review_by that cover it",
    "stale_assets": "approved assets past review_by that cover it (refresh them)",
    "shares_90d": "shares of its assets in the last 90 days",
    "open_deals": "open deals in this buying stage with this persona, industry or topic",
    "unmapped_stages": "open CRM stages with no reliable buying stage",
    "untagged_assets": "live or draft assets with no buying stage",
    "product_pitch_assets": "assets whose text is mostly about the seller's products",
    "never_opened_assets": "assets shared but never opened by a buyer",
    "never_shared_assets": "live assets never shared",
    "authors": "named authors and how many live assets they have per buying stage",
    "crm_stages": "per CRM stage: counts and Kaplan-Meier days",
    "buying_stages": "per buying stage: counts and Kaplan-Meier days",
    "won_cycle_by_month": "days from creation to won, by month of creation",
    "entered": "stage episodes that started",
    "advanced": "episodes that moved forward (a later buying stage or won)",
    "lost": "episodes that ended in a lost stage",
    "open": "episodes still open at as_of (censored, never dropped)",
    "other": "episodes that ended otherwise (moved backward, unmapped stage; censored)",
    "median_days": "Kaplan-Meier median days to advance; null with too few advances",
    "p25_days": "Kaplan-Meier 25th percentile of days to advance",
    "p75_days": "Kaplan-Meier 75th percentile of days to advance",
    "advanced_at_median": "share of episodes that had actually advanced by median_days (lost "
    "deals are censored in the Kaplan-Meier median, so this is below one half when deals are lost)",
    "advanced_30d": "share of episodes advanced within 30 days (Aalen-Johansen, losing competes)",
    "lost_30d": "share of episodes lost within 30 days (Aalen-Johansen)",
    "advanced_90d": "share of episodes advanced within 90 days (Aalen-Johansen)",
    "lost_90d": "share of episodes lost within 90 days (Aalen-Johansen)",
    "cif_median_days": "days until half of the episodes have actually advanced (null when "
    "fewer than half ever do)",
    "recommended_episodes": "stage episodes followed from a recommendation request, recommended group",
    "recommended_advances": "of those, how many advanced",
    "holdout_episodes": "stage episodes followed from a recommendation request, holdout group "
    "(shown nothing)",
    "holdout_advances": "of those, how many advanced",
    "exposed_episodes": "stage episodes in which a deal got the asset",
    "exposed_advances": "of those, how many advanced",
    "hazard_ratio": "how much faster deals that got the asset advance (1.5: 50% faster; "
    "0.7: 30% slower); null with a reason",
    "ci_low": "lower end of the 95% interval of hazard_ratio",
    "ci_high": "upper end of the 95% interval of hazard_ratio",
    "p_value": "two-sided p-value of hazard_ratio = 1",
    "q_value": "Benjamini-Hochberg false-discovery-adjusted p-value over the whole report",
    "median_days_exposed": "median days from the share to advancing",
    "median_days_unexposed": "median days to advance of comparable deals that did not get it",
    "verdict": "shortens, lengthens, no_evidence (no difference shown) or insufficient_data",
    "reason": "why a number is null or the verdict is insufficient_data",
    "inseparable_from": "pieces sent with this one so often that their effects cannot be told apart",
    "joint_of": "on a joint row: the pieces always sent together whose combined effect it is",
    # query parameters
    "q": "search text",
    "limit": "at most this many entries",
    "mine": "only the caller's own (the token's owner_id)",
    "skip_invalid": "import the valid records and list the invalid ones instead of "
    "importing nothing",
    "token_id": "the token's id (from GET /api/v1/tokens)",
}

BY_SCHEMA: dict[tuple[str, str], str] = {
    ("Asset", "kind"): _KINDS,
    ("AssetCreate", "kind"): _KINDS,
    ("AssetPatch", "kind"): _KINDS,
    ("AssetDetail", "kind"): _KINDS,
    ("Warning", "kind"): "near_duplicate",
    ("ImportResult", "kind"): "what was imported: assets, pipelines, deals or shares",
    ("Asset", "status"): _STATUSES,
    ("AssetCreate", "status"): f"{_STATUSES} (default: {_ASSET_STATUS_DEFAULT})",
    ("AssetPatch", "status"): f"{_STATUSES} (retired: retires it)",
    ("AssetDetail", "status"): _STATUSES,
    ("CoverageCell", "status"): "gap (demand, no live asset), thin (demand, fewer than "
    "min_assets live assets) or ok",
    ("CoverageCell", "stage"): "the buying stage",
    (
        "Warning",
        "reason",
    ): "same_url, similar_title, or look_alike_title (letters of another script that look Latin)",
    ("StageMapItem", "reason"): "why the suggestion was made",
    ("Effect", "title"): "the asset's title",
    ("CoverageReport", "stages"): "per buying stage: live and stale assets, shares, open "
    "deals and status",
    ("Token", "name"): "who or what the token is for",
    ("TokenCreate", "name"): "who or what the token is for",
    ("TokenCreated", "name"): "who or what the token is for",
    ("Me", "name"): "who or what the token is for",
    ("DealSummary", "name"): "the deal's name",
    ("DealDetail", "name"): "the deal's name",
    ("RecommendedDeal", "name"): "the deal's name",
    ("DealSummary", "stage"): "the deal's current CRM stage",
    ("DealDetail", "stage"): "the deal's current CRM stage",
    ("RecommendedAsset", "kind"): _KINDS,
}


def describe(schema_name: str | None, field_name: str) -> str | None:
    """The description of a field of a schema (or of a parameter when schema_name is None)."""
    if schema_name is not None and (schema_name, field_name) in BY_SCHEMA:
        return BY_SCHEMA[(schema_name, field_name)]
    return BY_NAME.get(field_name)


def fill_descriptions(spec: dict) -> dict:
    """Give every schema property and parameter without a description the glossary's one."""
    for schema_name, schema in spec.get("components", {}).get("schemas", {}).items():
        for name, prop in schema.get("properties", {}).items():
            if "description" not in prop and "$ref" not in prop:
                text = describe(schema_name, name)
                if text:
                    prop["description"] = text
    for operations in spec.get("paths", {}).values():
        for operation in operations.values():
            for param in operation.get("parameters", []):
                if "description" not in param:
                    text = describe(None, param.get("name", ""))
                    if text:
                        param["description"] = text
    return spec
