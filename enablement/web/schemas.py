"""Marshmallow schemas shared by every route: errors, paging, strict timestamps."""

from __future__ import annotations

from functools import cache

from marshmallow import RAISE, Schema, ValidationError, fields, validate

from enablement.domain.timestamps import InvalidTimestamp, format_timestamp, parse_timestamp

MAX_PER_PAGE = 200
# The OpenAPI form of the timestamp rule (domain.timestamps): years 1970-2100 and a zone.
TIMESTAMP_PATTERN = (
    r"^(19[7-9][0-9]|20[0-9][0-9]|2100)-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}"
    r"(:[0-9]{2}(\.[0-9]+)?)?(Z|z|[+-][0-9]{2}:?[0-9]{2})$"
)


class StrictSchema(Schema):
    """Unknown fields are an error, never silently dropped."""

    class Meta:
        unknown = RAISE


class Timestamp(fields.AwareDateTime):
    """A timestamp read and written by the product's one rule (domain.timestamps): UTC with Z out."""

    def __init__(self, **kwargs):
        metadata = {
            "pattern": TIMESTAMP_PATTERN,
            "description": "ISO 8601 with a zone (Z or +hh:mm), from 1970 to 2100",
            **kwargs.pop("metadata", {}),
        }
        super().__init__(format="iso", default_timezone=None, metadata=metadata, **kwargs)

    def _serialize(self, value, attr, obj, **kwargs):
        return format_timestamp(value)

    def _deserialize(self, value, attr, data, **kwargs):
        try:
            return parse_timestamp(value)
        except InvalidTimestamp as e:
            raise ValidationError(str(e)) from None


class PlainInteger(fields.Integer):
    """An integer query parameter in plain ASCII digits (domain.numbers' rule for numbers).

    NOTE: marshmallow's Integer reads text with int(), which also takes "1_000", " 12",
    Arabic-Indic and full-width digits; a query parameter here is digits or an error.
    """

    default_error_messages = {"invalid": "Not a valid integer: plain digits 0-9 only."}

    def _validated(self, value):
        if isinstance(value, str) and not (value.isascii() and value.isdigit() and len(value) < 19):
            raise self.make_error("invalid")
        return super()._validated(value)


class PageQuery(StrictSchema):
    """page and per_page for every paged list."""

    page = PlainInteger(load_default=1, validate=validate.Range(min=1, max=1_000_000))
    per_page = PlainInteger(load_default=50, validate=validate.Range(min=1, max=MAX_PER_PAGE))


class ErrorBody(Schema):
    """code, message and details of an error."""

    code = fields.String(required=True)
    message = fields.String(required=True)
    details = fields.Dict()


class ErrorSchema(Schema):
    """The one error shape every route answers with."""

    error = fields.Nested(ErrorBody, required=True)


@cache
def paged(item_schema: type[Schema]) -> type[Schema]:
    """A paged-list schema {items, page, per_page, total} around an item schema."""
    name = item_schema.__name__.removesuffix("Schema") + "PageSchema"
    return type(
        name,
        (Schema,),
        {
            "items": fields.List(fields.Nested(item_schema), required=True),
            "page": fields.Integer(required=True),
            "per_page": fields.Integer(required=True),
            "total": fields.Integer(required=True),
        },
    )
