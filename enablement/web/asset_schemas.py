"""Marshmallow schemas of the asset routes (the full rules live in enablement.domain.assets)."""

from __future__ import annotations

from marshmallow import Schema, fields, pre_load, validate

from enablement.db.assets import STATUS_FILTERS
from enablement.domain.assets import ASSET_FIELDS, KINDS, MAX_SERIES, MAX_TAG, AssetField
from enablement.domain.stages import BUYING_STAGES
from enablement.web.schemas import PageQuery, StrictSchema, Timestamp

# The OpenAPI form of domain.assets.check_url (the rule itself, with address checks, lives there).
URL_PATTERN = r"^[Hh][Tt][Tt][Pp][Ss]?://[^\s/?#@]+([/?#]\S*)?$"


def _input_field(spec: AssetField, required: bool) -> fields.Field:
    """The API input field of one asset record field (ASSET_FIELDS is the source of truth)."""
    must = required and spec.required
    if spec.type == "url":
        return fields.String(
            required=must,
            validate=validate.Length(1, spec.limit),
            metadata={
                "format": "uri",
                "pattern": URL_PATTERN,
                "description": "an absolute http(s) URL to a public host: no user or password, "
                "no localhost, private, link-local or metadata address",
            },
        )
    if spec.type in ("id", "text", "url") and (spec.required or spec.type == "id"):
        return fields.String(required=must, validate=validate.Length(1, spec.limit))
    if spec.type in ("text", "long_text"):
        return fields.String(allow_none=True, validate=validate.Length(max=spec.limit))
    if spec.type == "choice":
        return fields.String(required=must, validate=validate.OneOf(spec.choices))
    if spec.type == "tags":
        item = fields.String(
            validate=validate.OneOf(spec.choices) if spec.choices else validate.Length(max=MAX_TAG)
        )
        return fields.List(item, validate=validate.Length(max=spec.limit))
    if spec.type == "timestamp":
        return Timestamp(allow_none=True)
    if spec.type == "date":
        return fields.Date(allow_none=True)
    if spec.type == "order":
        return fields.Integer(allow_none=True, strict=True, validate=validate.Range(0, spec.limit))
    raise ValueError(f"no API field for type {spec.type!r}")


def _output_field(spec: AssetField) -> fields.Field:
    """The API output field of one asset record field."""
    if spec.type == "tags":
        return fields.List(fields.String())
    if spec.type == "timestamp":
        return Timestamp(allow_none=True)
    if spec.type == "date":
        return fields.Date(allow_none=True)
    if spec.type == "order":
        return fields.Integer(allow_none=True)
    return fields.String(allow_none=not spec.required)


def _asset_fields(required: bool, *, with_id: bool) -> dict:
    """The writable fields; `required` for create, all optional for an update."""
    return {
        spec.name: _input_field(spec, required)
        for spec in ASSET_FIELDS
        if with_id or spec.name != "id"
    }


AssetCreateSchema = StrictSchema.from_dict(
    _asset_fields(True, with_id=True), name="AssetCreateSchema"
)
AssetPatchSchema = StrictSchema.from_dict(
    _asset_fields(False, with_id=False), name="AssetPatchSchema"
)


class AssetQuery(PageQuery):
    """Filters of the asset list; every one compares without regard to case."""

    stage = fields.String(
        validate=validate.OneOf(BUYING_STAGES),
        metadata={"description": "tagged with this buying stage: " + ", ".join(BUYING_STAGES)},
    )
    persona = fields.String(
        validate=validate.Length(max=MAX_TAG), metadata={"description": "tagged with this persona"}
    )
    industry = fields.String(
        validate=validate.Length(max=MAX_TAG),
        metadata={"description": "tagged with this industry"},
    )
    topic = fields.String(
        validate=validate.Length(max=MAX_TAG), metadata={"description": "tagged with this topic"}
    )
    kind = fields.String(
        validate=validate.OneOf(KINDS), metadata={"description": "one of " + ", ".join(KINDS)}
    )
    series = fields.String(
        validate=validate.Length(max=MAX_SERIES),
        metadata={"description": "part of this series (its exact name, any case)"},
    )
    q = fields.String(
        validate=validate.Length(max=200),
        metadata={"description": "substring of the title, summary or author"},
    )
    status = fields.String(
        validate=validate.OneOf(STATUS_FILTERS),
        metadata={
            "description": "live, stale, draft, approved, retired or all; "
            "default: everything but retired"
        },
    )

    @pre_load
    def _lower_choices(self, data, **_):
        # NOTE: `stage=Closing` means closing, as in the stage map and the tag filters.
        return {
            k: (v.strip().lower() if k in ("stage", "kind", "status") and isinstance(v, str) else v)
            for k, v in data.items()
        }


class ImportQuery(StrictSchema):
    """Options of an import."""

    skip_invalid = fields.Boolean(load_default=False)
    check = fields.Boolean(
        load_default=False, metadata={"description": "a dry run: report, write nothing"}
    )


class WarningSchema(Schema):
    """A warning of an import: a near-duplicate asset, a created stage, an unmatched owner..."""

    kind = fields.String()
    message = fields.String(metadata={"description": "the warning as a sentence"})
    line = fields.Integer()
    asset_id = fields.String()
    of = fields.String()
    reason = fields.String(metadata={"description": "same_url, similar_title or look_alike_title"})
    score = fields.Float()
    pipeline = fields.String()
    stage = fields.String()
    deal = fields.String()
    column = fields.String(allow_none=True)
    value = fields.String()


AssetSchema = Schema.from_dict(
    {
        **{spec.name: _output_field(spec) for spec in ASSET_FIELDS if spec.name != "body"},
        "pitch_score": fields.Float(allow_none=True),
        "pitch_flag": fields.Boolean(),
        "stale": fields.Boolean(metadata={"description": "approved and past review_by"}),
        "live": fields.Boolean(
            metadata={"description": "approved and not past review_by (so not retired)"}
        ),
        "created_at": Timestamp(),
        "updated_at": Timestamp(),
        "retired_at": Timestamp(allow_none=True),
        "share_count": fields.Integer(
            metadata={"description": "how many times the asset was shared to a deal"}
        ),
        "view_count": fields.Integer(
            metadata={"description": "how many times buyers opened its trackable links"}
        ),
    },
    name="AssetSchema",
)


class AssetDetailSchema(AssetSchema):
    """One asset with its full text (and warnings after a write)."""

    body = fields.String(allow_none=True)
    warnings = fields.List(fields.Nested(WarningSchema))


class ImportErrorSchema(Schema):
    """The errors of one line (or array position)."""

    line = fields.Integer()
    file = fields.String(metadata={"description": "which file, when an import reads two"})
    errors = fields.Raw()
    messages = fields.List(
        fields.String(), metadata={"description": 'each problem as `line N, column "X": ...`'}
    )


class ImportResultSchema(Schema):
    """What an import did."""

    kind = fields.String()
    check = fields.Boolean(metadata={"description": "a dry run: the counts say what would change"})
    created = fields.Integer()
    updated = fields.Integer()
    unchanged = fields.Integer()
    skipped = fields.Integer()
    errors = fields.List(fields.Nested(ImportErrorSchema))
    warnings = fields.List(fields.Nested(WarningSchema))
