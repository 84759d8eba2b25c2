"""Routes of the asset library: list, read, create, update, retire, import."""

from __future__ import annotations

from flask import Blueprint, request

from enablement.context import ctx
from enablement.errors import BadRequest, InvalidInput, UnsupportedMediaType
from enablement.files.formats import detect_format
from enablement.services import asset_imports, assets
from enablement.web.asset_schemas import (
    AssetCreateSchema,
    AssetDetailSchema,
    AssetPatchSchema,
    AssetQuery,
    AssetSchema,
    ImportQuery,
    ImportResultSchema,
)
from enablement.web.endpoint import endpoint, read_json
from enablement.web.schemas import paged

bp = Blueprint("assets", __name__)

TAG = "assets"
# Raw-body content types of the import route and the file format each carries.
FILE_TYPES = {
    "application/x-ndjson": "jsonl",
    "application/jsonl": "jsonl",
    "application/json-lines": "jsonl",
    "text/csv": "csv",
}
_IMPORT_DOC = {
    "application/json": {
        "schema": {"type": "array", "items": {"$ref": "#/components/schemas/AssetCreate"}}
    },
    "multipart/form-data": {
        "schema": {
            "type": "object",
            "properties": {"file": {"type": "string", "format": "binary"}},
            "required": ["file"],
        }
    },
    "application/x-ndjson": {"schema": {"type": "string"}},
    "text/csv": {"schema": {"type": "string"}},
}


@bp.get("/api/v1/assets")
@endpoint(
    summary="List assets (filters: stage, persona, industry, topic, kind, q, status)",
    tag=TAG,
    role="sales",
    query=AssetQuery,
    response=paged(AssetSchema),
    errors=(422,),
)
def list_assets(principal, query):
    """A page of assets."""
    return assets.list_assets(ctx().sessions, **query)


@bp.post("/api/v1/assets")
@endpoint(
    summary="Create an asset (answers near-duplicate warnings)",
    tag=TAG,
    role="marketing",
    body=AssetCreateSchema,
    response=AssetDetailSchema,
    status=201,
    errors=(400, 409, 413, 415, 422),
)
def create_asset(principal, body):
    """Create one asset."""
    return assets.create_asset(ctx().sessions, ctx().settings, body)


@bp.get("/api/v1/assets/<asset_id:asset_id>")
@endpoint(summary="One asset", tag=TAG, role="sales", response=AssetDetailSchema, errors=(404,))
def get_asset(principal, asset_id):
    """One asset with its body."""
    return assets.get_asset(ctx().sessions, asset_id)


@bp.patch("/api/v1/assets/<asset_id:asset_id>")
@endpoint(
    summary="Change fields of an asset",
    tag=TAG,
    role="marketing",
    body=AssetPatchSchema,
    response=AssetDetailSchema,
    errors=(400, 404, 413, 415, 422),
)
def update_asset(principal, asset_id, body):
    """Update some fields."""
    return assets.update_asset(ctx().sessions, ctx().settings, asset_id, body)


@bp.delete("/api/v1/assets/<asset_id:asset_id>")
@endpoint(
    summary="Retire an asset (shares and views are kept)",
    tag=TAG,
    role="marketing",
    response=AssetDetailSchema,
    errors=(404,),
)
def retire_asset(principal, asset_id):
    """Retire, never delete."""
    return assets.retire_asset(ctx().sessions, asset_id)


@bp.post("/api/v1/assets/import")
@endpoint(
    summary="Import assets: a JSON array, or a JSONL/CSV file (multipart field 'file' or raw body)",
    tag=TAG,
    role="marketing",
    body=AssetCreateSchema,
    raw_body=True,
    query=ImportQuery,
    response=ImportResultSchema,
    errors=(400, 413, 415, 422),
    extra_request=_IMPORT_DOC,
)
def import_assets(principal, query):
    """Validate every record; 422 with all errors unless skip_invalid."""
    skip_invalid, check = query["skip_invalid"], query["check"]
    mimetype = request.mimetype
    if mimetype == "application/json":
        result = asset_imports.import_asset_list(
            ctx().sessions, ctx().settings, read_json(), skip_invalid, check
        )
    elif mimetype == "multipart/form-data":
        upload = request.files.get("file")
        if upload is None:
            raise BadRequest("send the file in the multipart field 'file'")
        fmt = detect_format(upload.filename, upload.mimetype)
        result = asset_imports.import_assets(
            ctx().sessions, ctx().settings, upload.stream, fmt, skip_invalid, check
        )
    elif mimetype in FILE_TYPES:
        result = asset_imports.import_assets(
            ctx().sessions,
            ctx().settings,
            request.stream,
            FILE_TYPES[mimetype],
            skip_invalid,
            check,
        )
    else:
        raise UnsupportedMediaType(
            "send a JSON array, multipart/form-data with a 'file', application/x-ndjson or text/csv"
        )
    if result.errors and not skip_invalid:
        answer = result.as_dict()
        raise InvalidInput(
            f"{len(result.errors)} invalid record(s); nothing imported",
            {"errors": answer["errors"]},
        )
    return result.as_dict()
