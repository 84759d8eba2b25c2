"""Routes for deals: fuzzy search, and one deal with its history and shares."""

from __future__ import annotations

from flask import Blueprint, request

from enablement.context import ctx
from enablement.errors import BadRequest, InvalidInput, UnsupportedMediaType
from enablement.files.formats import detect_format
from enablement.services import transfers
from enablement.services.deals import get_deal, search_deals
from enablement.web.asset_schemas import ImportResultSchema
from enablement.web.deal_schemas import (
    DealDetailSchema,
    DealImportQuery,
    DealQuery,
    DealSummarySchema,
)
from enablement.web.endpoint import endpoint
from enablement.web.schemas import paged

bp = Blueprint("deals", __name__)


@bp.get("/api/v1/deals")
@endpoint(
    summary="Search deals by name and company (fuzzy); filter by owner (`me`), stage and open",
    tag="deals",
    role="sales",
    query=DealQuery,
    response=paged(DealSummarySchema),
    errors=(422,),
)
def list_deals(principal, query):
    """A page of deals (a sales token bound to an owner sees that owner's only)."""
    if query.get("owner_id") == "me":
        if not principal.owner_id:
            raise InvalidInput(
                "owner_id=me needs a token created with an owner id",
                {"owner_id": ["this token has no owner"]},
            )
        query["owner_id"] = principal.owner_id
    return search_deals(ctx().sessions, **query, owner_scope=principal.owner_scope)


@bp.get("/api/v1/deals/<deal_id>")
@endpoint(
    summary="A deal with its current stage, full stage history and shares",
    tag="deals",
    role="sales",
    response=DealDetailSchema,
    errors=(404,),
)
def show_deal(principal, deal_id):
    """One deal."""
    container = ctx()
    return get_deal(container.sessions, container.settings, deal_id, principal.owner_scope)


_DEAL_FILE_TYPES = {
    "application/x-ndjson": "jsonl",
    "application/jsonl": "jsonl",
    "text/csv": "csv",
}
_DEAL_IMPORT_DOC = {
    "multipart/form-data": {
        "schema": {
            "type": "object",
            "properties": {
                "file": {"type": "string", "format": "binary"},
                "history": {
                    "type": "string",
                    "format": "binary",
                    "description": "with from=salesforce: the Opportunity History report",
                },
                "mapping": {
                    "type": "string",
                    "format": "binary",
                    "description": "a column mapping file for another CRM's CSV",
                },
            },
            "required": ["file"],
        }
    },
    "application/x-ndjson": {"schema": {"type": "string"}},
    "text/csv": {"schema": {"type": "string"}},
}


@bp.post("/api/v1/deals/import")
@endpoint(
    summary="Import deals: the product's format, HubSpot's or Salesforce's export, or a mapped CSV",
    tag="deals",
    role="admin",
    raw_body=True,
    query=DealImportQuery,
    response=ImportResultSchema,
    errors=(400, 413, 415, 422),
    extra_request=_DEAL_IMPORT_DOC,
)
def import_deals(principal, query):
    """Validate every deal; 422 with every problem (`details.errors[].messages`) unless skip_invalid."""
    options = {
        "source": query["source"],
        "timezone": query.get("timezone"),
        "day_first": query["day_first"],
        "check": query["check"],
    }
    mimetype = request.mimetype
    if mimetype == "multipart/form-data":
        upload = request.files.get("file")
        if upload is None:
            raise BadRequest("send the file in the multipart field 'file'")
        stream, fmt = upload.stream, detect_format(upload.filename, upload.mimetype)
        for name in ("history", "mapping"):
            extra = request.files.get(name)
            if extra is not None and extra.filename:
                options[name] = extra.stream
    elif mimetype in _DEAL_FILE_TYPES:
        stream, fmt = request.stream, _DEAL_FILE_TYPES[mimetype]
    else:
        raise UnsupportedMediaType(
            "send multipart/form-data with a 'file' (and 'history' or 'mapping'), "
            "application/x-ndjson or text/csv"
        )
    result = transfers.import_deals(
        ctx().sessions, ctx().settings, stream, fmt, query["skip_invalid"], crm=ctx().crm, **options
    )
    if result.errors and not query["skip_invalid"]:
        answer = result.as_dict()
        raise InvalidInput(
            f"{len({(e.file, e.line) for e in result.errors})} invalid record(s); nothing imported",
            {"errors": answer["errors"], "warnings": answer["warnings"]},
        )
    return result.as_dict()
