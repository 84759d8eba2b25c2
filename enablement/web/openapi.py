"""The OpenAPI 3 document, generated from the routes' marshmallow schemas."""

from __future__ import annotations

import re

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from flask import Blueprint, current_app, jsonify

from enablement.web.field_docs import fill_descriptions
from enablement.web.request_guard import MAX_ROW_ID, RowId
from enablement.web.schemas import ErrorSchema

bp = Blueprint("openapi", __name__)

API_PREFIX = "/api/v1"
_CONVERTER = re.compile(r"<(?:[a-z_]+:)?([a-zA-Z_]+)>")
_STATUS_TEXT = {
    400: "Malformed request (e.g. a body that is not JSON)",
    401: "Missing or unknown token",
    403: "Role not allowed",
    404: "Not found",
    409: "Conflict with what is stored (e.g. the id exists)",
    413: "Body too large (over 5 MB)",
    415: "Wrong content type (JSON bodies must be application/json)",
    422: "Invalid input: details name every bad field",
    503: "Unavailable: the database does not answer or its schema is behind the code "
    "(code schema_outdated: run `enablement init`)",
}


def build_spec(app) -> dict:
    """Walk the URL map and describe every documented /api/v1 route."""
    spec = APISpec(
        title="enablement",
        version="1",
        openapi_version="3.0.3",
        plugins=[MarshmallowPlugin()],
        info={"description": "Thought-leadership enablement for B2B sales."},
    )
    spec.components.security_scheme("bearer", {"type": "http", "scheme": "bearer"})
    spec.components.schema("Error", schema=ErrorSchema)
    paths: dict[str, dict] = {}
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        if not rule.rule.startswith(API_PREFIX):
            continue
        view = app.view_functions[rule.endpoint]
        doc = getattr(view, "__endpoint_doc__", None)
        if doc is None:
            continue
        path = _CONVERTER.sub(r"{\1}", rule.rule)
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            paths.setdefault(path, {})[method.lower()] = _operation(doc, rule)
    for path, operations in paths.items():
        spec.path(path=path, operations=operations)
    return fill_descriptions(spec.to_dict())


def _operation(doc, rule) -> dict:
    """One OpenAPI operation from an EndpointDoc."""
    op: dict = {"summary": doc.summary, "tags": [doc.tag], "responses": {}}
    params = [
        {"in": "path", "name": name, "required": True, "schema": _path_schema(rule, name)}
        for name in rule.arguments
    ]
    if doc.query is not None:
        params.append({"in": "query", "schema": doc.query})
    if params:
        op["parameters"] = params
    if doc.body is not None:
        op["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": doc.body}, **doc.extra_request},
        }
    ok = {"description": "OK"}
    if doc.response is not None:
        ok["content"] = {"application/json": {"schema": doc.response}}
        ok["content"].update(_other_formats(doc.query))
    op["responses"][str(doc.status)] = ok
    for status, description, schema in doc.also:
        other: dict = {"description": description}
        if schema is not None:
            other["content"] = {"application/json": {"schema": schema}}
            if status == 202:
                other["content"].update(_other_formats(doc.query, only=("html",)))
                other["headers"] = {"Retry-After": _RETRY_AFTER}
        op["responses"][str(status)] = other
    statuses = set(doc.errors)
    if doc.role is not None:
        op["security"] = [{"bearer": []}]
        op["description"] = f"Needs the {doc.role} role or higher."
        statuses |= {401, 403}
    if doc.body is not None or doc.query is not None:
        statuses |= {422}
    if doc.body is not None:
        statuses |= {400, 413, 415}
    if rule.arguments:
        statuses |= {404}
    # NOTE: any route that reads the database answers 503 while it is down or behind the code.
    statuses |= {503}
    for status in sorted(statuses):
        op["responses"][str(status)] = {
            "description": _STATUS_TEXT.get(status, "Error"),
            "content": {"application/json": {"schema": "Error"}},
        }
    # NOTE: gunicorn answers this itself, before the app, for a request line over 4094 bytes
    # (its limit_request_line), as a small HTML page.
    op["responses"]["414"] = {
        "description": "URI too long: the server refuses a request line over 4094 bytes",
        "content": {"text/html": {"schema": {"type": "string"}}},
    }
    return op


_RETRY_AFTER = {
    "description": "seconds after which to ask the same URL again",
    "schema": {"type": "integer", "minimum": 0},
}


def _path_schema(rule, name: str) -> dict:
    """A path parameter's schema: integers with the range the route's converter accepts."""
    converter = rule._converters.get(name)
    if isinstance(converter, RowId):
        return {"type": "integer", "minimum": 0, "maximum": MAX_ROW_ID}
    return {"type": "string", "minLength": 1}


# The media type each `format` query value answers with (besides JSON).
_FORMAT_MEDIA = {
    "csv": ("text/csv", "Comma-separated values; formula-looking cells are prefixed with '"),
    "html": ("text/html", "A self-contained HTML page"),
}


def _other_formats(query, only: tuple[str, ...] | None = None) -> dict:
    """Response content for the non-JSON values of a `format` query parameter (CSV, HTML)."""
    field = query().fields.get("format") if query is not None else None
    choices = next((getattr(v, "choices", None) for v in _validators(field)), None) or ()
    return {
        _FORMAT_MEDIA[c][0]: {"schema": {"type": "string", "description": _FORMAT_MEDIA[c][1]}}
        for c in choices
        if c in _FORMAT_MEDIA and (only is None or c in only)
    }


def _validators(field) -> list:
    """A marshmallow field's validators (none for no field)."""
    return list(getattr(field, "validators", ()) or ())


@bp.get(f"{API_PREFIX}/openapi.json")
def openapi_json():
    """The OpenAPI document of every /api/v1 route."""
    spec = current_app.extensions.get("enablement_openapi")
    if spec is None:
        spec = current_app.extensions["enablement_openapi"] = build_spec(current_app)
    return jsonify(spec)
