"""Marshmallow schemas of the deal and share routes."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from enablement.web.schemas import PageQuery, StrictSchema, Timestamp


class DealQuery(PageQuery):
    """Search and filters of the deal list."""

    q = fields.String(validate=validate.Length(max=200))
    owner_id = fields.String(validate=validate.Length(min=1, max=64))
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
    created_at = fields.AwareDateTime()
    closed_at = fields.AwareDateTime(allow_none=True)
    score = fields.Float(allow_none=True, metadata={"description": "match score 0-100 when q"})


class StageHistoryEntrySchema(Schema):
    """The deal entered this stage at this time."""

    pipeline_id = fields.String()
    stage_id = fields.String()
    label = fields.String(allow_none=True)
    buying_stage = fields.String(allow_none=True)
    entered_at = fields.AwareDateTime()


class DealShareSchema(Schema):
    """An asset shared to the deal, with how often the buyer opened it."""

    id = fields.Integer()
    asset_id = fields.String()
    asset_title = fields.String()
    shared_at = fields.AwareDateTime()
    shared_by = fields.String(allow_none=True)
    channel = fields.String(allow_none=True)
    views = fields.Integer()
    link = fields.String()


class DealDetailSchema(DealSummarySchema):
    """One deal with its stage history and shares."""

    pipeline = fields.Nested(PipelineRefSchema)
    personas = fields.List(fields.String())
    topics = fields.List(fields.String())
    deleted_at = fields.AwareDateTime(allow_none=True)
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


class ShareCreatedSchema(Schema):
    """The share and its trackable link."""

    id = fields.Integer()
    link = fields.String()
    shared_at = fields.AwareDateTime()
