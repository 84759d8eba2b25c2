"""Who am I, and token management for admins."""

from __future__ import annotations

from flask import Blueprint
from marshmallow import Schema, fields, validate

from enablement.context import ctx
from enablement.services import tokens
from enablement.web.endpoint import endpoint
from enablement.web.schemas import StrictSchema, Timestamp

bp = Blueprint("tokens", __name__, url_prefix="/api/v1")


class MeSchema(Schema):
    """The calling token's identity."""

    name = fields.String()
    role = fields.String()
    owner_id = fields.String(allow_none=True)


class TokenPrefix(fields.String):
    """The recognisable start of a token, never more than services.tokens.SHOWN_PREFIX characters."""

    def _serialize(self, value, attr, obj, **kwargs):
        return super()._serialize(tokens.shown_prefix(value), attr, obj, **kwargs)


class TokenSchema(Schema):
    """A token record; never the token itself."""

    id = fields.Integer()
    name = fields.String()
    role = fields.String()
    owner_id = fields.String(allow_none=True)
    prefix = TokenPrefix(
        metadata={"description": "the first characters of the token, to recognise it"}
    )
    created_at = Timestamp()
    last_used_at = Timestamp(allow_none=True)
    revoked_at = Timestamp(allow_none=True)


class TokenListSchema(Schema):
    """Every token record."""

    items = fields.List(fields.Nested(TokenSchema))


class TokenCreateSchema(StrictSchema):
    """What a new token is for."""

    role = fields.String(required=True, validate=validate.OneOf(tokens.ROLES))
    name = fields.String(required=True, validate=validate.Length(min=1, max=255))
    owner_id = fields.String(load_default=None, validate=validate.Length(max=64))


class TokenCreatedSchema(TokenSchema):
    """A new token: the only time the token is shown."""

    token = fields.String()


@bp.get("/me")
@endpoint(
    summary="The calling token's name and role", tag="tokens", role="sales", response=MeSchema
)
def me(principal):
    """Echo the principal, so a user can check a token."""
    return principal


class TokenQuery(StrictSchema):
    """Which tokens to list."""

    all = fields.Boolean(
        load_default=False,
        metadata={"description": "also list revoked tokens (default: active ones only)"},
    )


@bp.get("/tokens")
@endpoint(
    summary="List active tokens (all=true: revoked ones too)",
    tag="tokens",
    role="admin",
    query=TokenQuery,
    response=TokenListSchema,
)
def list_tokens(principal, query):
    """Token records, oldest first; revoked ones only when asked for."""
    records = tokens.list_tokens(ctx().sessions)
    return {"items": [t for t in records if query["all"] or t.revoked_at is None]}


@bp.post("/tokens")
@endpoint(
    summary="Create a token (shown once)",
    tag="tokens",
    role="admin",
    body=TokenCreateSchema,
    response=TokenCreatedSchema,
    status=201,
)
def create_token(principal, body):
    """Create a token of a role; the answer is the only place the token appears."""
    token, record = tokens.create_token(
        ctx().sessions, body["role"], body["name"], body["owner_id"]
    )
    return {"token": token, **{name: getattr(record, name) for name in TokenSchema().fields}}


@bp.delete("/tokens/<int:token_id>")
@endpoint(summary="Revoke a token", tag="tokens", role="admin", response=TokenSchema, errors=(404,))
def revoke_token(principal, token_id):
    """Revoke a token; it stops working at once."""
    return tokens.revoke_token(ctx().sessions, token_id)
