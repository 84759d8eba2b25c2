"""Marshmallow schemas of the asset routes (the full rules live in enablement.domain.assets)."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from enablement.domain.assets import (
    KINDS,
    MAX_AUTHOR,
    MAX_BODY,
    MAX_ID,
    MAX_SERIES,
    MAX_SERIES_ORDER,
    MAX_SUMMARY,
    MAX_TAG,
    MAX_TAGS,
    MAX_TITLE,
    MAX_URL,
    STATUSES,
)
from enablement.domain.stages import BUYING_STAGES
from enablement.services.assets import STATUS_FILTERS
from enablement.web.schemas import PageQuery, StrictSchema, Timestamp


def _tags(choices: tuple[str, ...] | None = None) -> fields.List:
    item = fields.String(
        validate=validate.OneOf(choices) if choices else validate.Length(max=MAX_TAG)
    )
    return fields.List(item, validate=validate.Length(max=MAX_TAGS))


def _asset_fields(required: bool) -> dict:
    """The writable fields; `required` for create, all optional for an update."""
    return {
        "title": fields.String(required=required, validate=validate.Length(1, MAX_TITLE)),
        "url": fields.String(required=required, validate=validate.Length(1, MAX_URL)),
        "kind": fields.String(required=required, validate=validate.OneOf(KINDS)),
        "author": fields.String(required=required, validate=validate.Length(1, MAX_AUTHOR)),
        "summary": fields.String(allow_none=True, validate=validate.Length(max=MAX_SUMMARY)),
        "body": fields.String(allow_none=True, validate=validate.Length(max=MAX_BODY)),
        "topics": _tags(),
        "industries": _tags(),
        "personas": _tags(),
        "stages": _tags(BUYING_STAGES),
        "published_at": Timestamp(allow_none=True),
        "review_by": fields.Date(allow_none=True),
        "status": fields.String(validate=validate.OneOf(STATUSES)),
        "series": fields.String(allow_none=True, validate=validate.Length(max=MAX_SERIES)),
        "series_order": fields.Integer(
            allow_none=True, strict=True, validate=validate.Range(0, MAX_SERIES_ORDER)
        ),
    }


AssetCreateSchema = StrictSchema.from_dict(
    {"id": fields.String(validate=validate.Length(1, MAX_ID)), **_asset_fields(True)},
    name="AssetCreateSchema",
)
AssetPatchSchema = StrictSchema.from_dict(_asset_fields(False), name="AssetPatchSchema")


class AssetQuery(PageQuery):
    """Filters of the asset list."""

    stage = fields.String(validate=validate.OneOf(BUYING_STAGES))
    persona = fields.String(validate=validate.Length(max=MAX_TAG))
    industry = fields.String(validate=validate.Length(max=MAX_TAG))
    topic = fields.String(validate=validate.Length(max=MAX_TAG))
    kind = fields.String(validate=validate.OneOf(KINDS))
    q = fields.String(validate=validate.Length(max=200))
    status = fields.String(validate=validate.OneOf(STATUS_FILTERS))


class ImportQuery(StrictSchema):
    """Options of an import."""

    skip_invalid = fields.Boolean(load_default=False)


class WarningSchema(Schema):
    """A near-duplicate warning: asset_id looks like `of`."""

    kind = fields.String()
    asset_id = fields.String()
    of = fields.String()
    reason = fields.String(metadata={"description": "same_url or similar_title"})
    score = fields.Float()


class AssetSchema(Schema):
    """An asset as the API shows it."""

    id = fields.String()
    title = fields.String()
    url = fields.String()
    kind = fields.String()
    author = fields.String()
    summary = fields.String(allow_none=True)
    topics = fields.List(fields.String())
    industries = fields.List(fields.String())
    personas = fields.List(fields.String())
    stages = fields.List(fields.String())
    published_at = Timestamp(allow_none=True)
    review_by = fields.Date(allow_none=True)
    status = fields.String()
    series = fields.String(allow_none=True)
    series_order = fields.Integer(allow_none=True)
    pitch_score = fields.Float(allow_none=True)
    pitch_flag = fields.Boolean()
    stale = fields.Boolean(metadata={"description": "approved and past review_by"})
    live = fields.Boolean(metadata={"description": "approved, not stale (so not retired)"})
    created_at = Timestamp()
    updated_at = Timestamp()
    retired_at = Timestamp(allow_none=True)


class AssetDetailSchema(AssetSchema):
    """One asset with its full text (and warnings after a write)."""

    body = fields.String(allow_none=True)
    warnings = fields.List(fields.Nested(WarningSchema))


class ImportErrorSchema(Schema):
    """The errors of one line (or array position)."""

    line = fields.Integer()
    errors = fields.Raw()


class ImportResultSchema(Schema):
    """What an import did."""

    kind = fields.String()
    created = fields.Integer()
    updated = fields.Integer()
    unchanged = fields.Integer()
    skipped = fields.Integer()
    errors = fields.List(fields.Nested(ImportErrorSchema))
    warnings = fields.List(fields.Nested(WarningSchema))
