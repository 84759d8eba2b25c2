"""Marshmallow schemas of the deal and share routes."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from enablement.web.schemas import PageQuery, PlainInteger, StrictSchema, Timestamp


class DealImportQuery(StrictSchema):
    """Options of a deal import: where the file comes from and how to read its times."""

    skip_invalid = fields.Boolean(load_default=False)
    check = fields.Boolean(
        load_default=False, metadata={"description": "a dry run: report, write nothing"}
    )
    source = fields.String(
        data_key="from",
        load_default="enablement",
        validate=validate.OneOf(["enablement", "hubspot", "salesforce"]),
        metadata={"description": "the product's own format, or a CRM's own export"},
    )
    timezone = fields.String(
        validate=validate.Length(min=1, max=64),
        metadata={"description": "IANA zone of an export's zone-less times (Europe/Berlin)"},
    )
    day_first = fields.Boolean(
        load_default=False,
        metadata={"description": "the export writes dates day first (4/3/2026 is March 4)"},
    )


class DealQuery(PageQuery):
    """Search and filters of the deal list."""

    q = fields.String(validate=validate.Length(max=200))
    owner_id = fields.String(
        validate=validate.Length(min=1, max=64),
        metadata={"description": "a CRM owner id, or `me` for the owner of a sales token"},
    )
    open = fields.Boolean(metadata={"description": "true: deals not closed; false: closed deals"})
    stage = fields.String(
        validate=validate.Length(min=1, max=64),
        metadata={"description": "a buying stage or a CRM stage id"},
    )


class StageRefSchema(Schema):
    """A CRM stage by id and label."""

    id = fields.String()
    label = fields.String(allow_none=True)


class PipelineRefSchema(Schema):
    """A pipeline by id and label."""

    id = fields.String()
    label = fields.String(allow_none=True)


class DealSummarySchema(Schema):
    """A deal in a list."""

    id = fields.String()
    name = fields.String()
    company = fields.String(allow_none=True)
    pipeline_id = fields.String()
    stage = fields.Nested(StageRefSchema, allow_none=True)
    buying_stage = fields.String(allow_none=True)
    amount = fields.Float(allow_none=True)
    currency = fields.String(allow_none=True)
    industry = fields.String(allow_none=True)
    owner_id = fields.String(allow_none=True)
    created_at = Timestamp()
    closed_at = Timestamp(allow_none=True)
    score = fields.Float(allow_none=True, metadata={"description": "match score 0-100 when q"})


class StageHistoryEntrySchema(Schema):
    """The deal entered this stage at this time."""

    pipeline_id = fields.String()
    stage_id = fields.String()
    label = fields.String(allow_none=True)
    buying_stage = fields.String(allow_none=True)
    entered_at = Timestamp()


class DealShareSchema(Schema):
    """An asset shared to the deal, with how often the buyer opened it."""

    id = fields.Integer()
    asset_id = fields.String()
    asset_title = fields.String()
    shared_at = Timestamp()
    shared_by = fields.String(allow_none=True)
    channel = fields.String(allow_none=True)
    views = fields.Integer()
    link = fields.String()


class DealDetailSchema(DealSummarySchema):
    """One deal with its stage history and shares."""

    pipeline = fields.Nested(PipelineRefSchema)
    personas = fields.List(fields.String())
    topics = fields.List(fields.String())
    deleted_at = Timestamp(allow_none=True)
    stage_history = fields.List(fields.Nested(StageHistoryEntrySchema))
    shares = fields.List(fields.Nested(DealShareSchema))


class ShareBody(StrictSchema):
    """Share an asset to a deal; shared_at (a backfill) only for admins."""

    asset_id = fields.String(required=True, validate=validate.Length(min=1, max=64))
    channel = fields.String(
        allow_none=True,
        validate=validate.Regexp(
            r"^[A-Za-z0-9_.+\- ]{1,32}$", error="1 to 32 letters, digits, spaces or _.+-"
        ),
    )
    shared_at = Timestamp(allow_none=True)
    impression_id = fields.String(
        allow_none=True,
        validate=validate.Regexp(
            r"^[0-9a-f]{32}$", error="an impression_id from a recommendation answer"
        ),
        metadata={"description": "the recommendation answer the asset was shared from"},
    )


class ShareCreatedSchema(Schema):
    """The share and its trackable link."""

    id = fields.Integer()
    link = fields.String()
    shared_at = Timestamp()


class ShareListQuery(PageQuery):
    """Filters of the share list: `mine=true` (required for now) lists the caller's own shares."""

    mine = fields.Boolean(
        required=True, validate=validate.Equal(True, error="only mine=true is supported")
    )


class ShareListItemSchema(DealShareSchema):
    """A share in the caller's list, with its deal and the recommendation it came from."""

    deal_id = fields.String()
    impression_id = fields.String(allow_none=True)


class RecommendationQuery(StrictSchema):
    """How many items to recommend."""

    limit = PlainInteger(load_default=5, validate=validate.Range(min=1, max=50))


class RecommendedAssetSchema(Schema):
    """The asset of a recommendation item."""

    id = fields.String()
    title = fields.String()
    url = fields.String()
    kind = fields.String()
    author = fields.String()


class ComponentsSchema(Schema):
    """The parts of a score, each 0..1."""

    stage = fields.Float()
    context = fields.Float()
    evidence = fields.Float()
    engagement = fields.Float()
    freshness = fields.Float()
    novelty = fields.Float()
    voice = fields.Float()


class RecommendationItemSchema(Schema):
    """One recommended asset with its score, components and reasons."""

    rank = fields.Integer()
    asset = fields.Nested(RecommendedAssetSchema)
    score = fields.Float()
    components = fields.Nested(ComponentsSchema)
    reasons = fields.List(fields.String())
    exploration = fields.Boolean()


class RecommendedDealSchema(Schema):
    """The deal the recommendations are for."""

    id = fields.String()
    name = fields.String()
    owner_id = fields.String(allow_none=True)
    crm_stage = fields.Nested(StageRefSchema, allow_none=True)
    buying_stage = fields.String(allow_none=True)


class RecommendationsSchema(Schema):
    """Recommendations for a deal; no items for the holdout, closed deals and unmapped stages."""

    deal = fields.Nested(RecommendedDealSchema)
    holdout = fields.Boolean()
    closed = fields.Boolean()
    message = fields.String(allow_none=True)
    items = fields.List(fields.Nested(RecommendationItemSchema))
    impression_id = fields.String()
