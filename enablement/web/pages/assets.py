"""Asset library pages: filters, create and edit forms with field errors, file import, retire."""

from __future__ import annotations

from flask import flash, redirect, render_template, request, url_for

from enablement.context import ctx
from enablement.db.assets import STATUS_FILTERS
from enablement.domain.assets import KINDS, STATUSES
from enablement.domain.stages import BUYING_STAGES
from enablement.errors import BadRequest, Conflict, EnablementError, InvalidInput
from enablement.files.formats import LIST_SEPARATOR, detect_format
from enablement.render import duplicate_parts
from enablement.services import asset_imports, transfers
from enablement.services import assets as asset_service
from enablement.web.asset_schemas import AssetQuery
from enablement.web.endpoint import load
from enablement.web.pages import bp, page
from enablement.web.pages.sales import filled

PER_PAGE = 30
TEXT_FIELDS = ("title", "url", "kind", "author", "summary", "series", "review_by", "status")
TAG_FIELDS = ("topics", "industries", "personas")
# A page lists at most this many duplicate warnings (an import of thousands can have thousands).
MAX_DUPLICATES_SHOWN = 50


def choices() -> dict:
    """The fixed choices the forms offer."""
    return {
        "kinds": KINDS,
        "statuses": STATUSES,
        "stages": BUYING_STAGES,
        "status_filters": STATUS_FILTERS,
        "list_separator": LIST_SEPARATOR,
    }


@bp.get("/assets")
@page("sales")
def assets(principal):
    """A page of assets with filters; stale and product-pitch assets are marked."""
    query = load(AssetQuery(), {"per_page": PER_PAGE, **filled(request.args)}, "query")
    answer = asset_service.list_assets(ctx().sessions, **query)
    pages = max(1, -(-answer["total"] // answer["per_page"]))
    return render_template(
        "pages/assets.html", answer=answer, query=query, pages=pages, **choices()
    )


def record_from_form(form, *, for_update: bool) -> dict:
    """The asset record a form describes: text as given, tags split on the CSV files' list
    separator (;), empties left out.

    For an update every field is sent: an emptied optional field as null (or no tags), so it
    is cleared, and an emptied required one as "" so the API's validation refuses it (the page
    never reports a save that kept the old value).
    """
    record: dict = {}
    for name in TEXT_FIELDS:
        value = (form.get(name) or "").strip()
        if value:
            record[name] = value
        elif for_update:
            record[name] = None if name in ("summary", "series", "review_by") else ""
    for name in TAG_FIELDS:
        values = [t.strip() for t in (form.get(name) or "").split(LIST_SEPARATOR) if t.strip()]
        if values or for_update:
            record[name] = values
    stages = [s for s in form.getlist("stages") if s]
    if stages or for_update:
        record["stages"] = stages
    order = (form.get("series_order") or "").strip()
    if order:
        record["series_order"] = int(order) if order.isdigit() and len(order) < 10 else order
    elif for_update:
        record["series_order"] = None
    return record


def duplicate_titles(warnings: list[dict]) -> dict[str, str]:
    """The titles of both pieces of each warning."""
    ids = [w.get(k) for w in warnings for k in ("asset_id", "of")]
    return asset_service.asset_titles(ctx().sessions, ids)


def flash_outcome(saved: dict) -> None:
    """After a save: each possible duplicate named with a link, and a review-by date already past."""
    for warning in saved.get("warnings", [])[:MAX_DUPLICATES_SHOWN]:
        flash(duplicate_parts(warning, duplicate_titles([warning])), "duplicate")
    if saved.get("stale") and saved.get("review_by"):  # the one rule: domain.assets.is_stale
        flash(
            f"The review-by date {saved['review_by']} is already past: this piece is stale from "
            "now on, so it is never recommended or shared. Set a later date to keep it live.",
            "warning",
        )


def field_errors(error: EnablementError) -> dict[str, list[str]]:
    """Errors by form field from a service error (the rest under '_form')."""
    body = (error.details or {}).get("body")
    if isinstance(body, dict):
        return {str(k): [str(m) for m in v] for k, v in body.items()}
    return {"_form": [error.message]}


def form_values(record: dict) -> dict:
    """What the form shows again: tags joined with the list separator."""
    shown = dict(record)
    for name in TAG_FIELDS:
        if isinstance(shown.get(name), list):
            shown[name] = f"{LIST_SEPARATOR} ".join(shown[name])
    return shown


@bp.get("/assets/new")
@page("marketing")
def new_asset(principal):
    """The empty create form."""
    return render_template(
        "pages/asset_form.html", asset=None, values={"status": "approved"}, errors={}, **choices()
    )


@bp.post("/assets/new")
@page("marketing")
def create_asset(principal):
    """Create through the same validation as the API; errors are shown beside the fields."""
    record = record_from_form(request.form, for_update=False)
    try:
        created = asset_service.create_asset(ctx().sessions, ctx().settings, record)
    except (InvalidInput, Conflict) as e:
        html = render_template(
            "pages/asset_form.html",
            asset=None,
            values=form_values(record),
            errors=field_errors(e),
            **choices(),
        )
        return html, e.status
    flash(f"Created “{created['title']}”.", "notice")
    flash_outcome(created)
    return redirect(url_for("pages.assets", q=created["title"][:200]))


@bp.get("/assets/<asset_id>/edit")
@page("marketing")
def edit_asset(principal, asset_id):
    """The edit form, filled with the asset."""
    asset = asset_service.get_asset(ctx().sessions, asset_id)
    values = form_values({k: v for k, v in asset.items() if v is not None})
    return render_template(
        "pages/asset_form.html", asset=asset, values=values, errors={}, **choices()
    )


@bp.post("/assets/<asset_id>/edit")
@page("marketing")
def update_asset(principal, asset_id):
    """Save the changes through the service; errors beside the fields."""
    asset = asset_service.get_asset(ctx().sessions, asset_id)
    record = record_from_form(request.form, for_update=True)
    try:
        saved = asset_service.update_asset(ctx().sessions, ctx().settings, asset_id, record)
    except InvalidInput as e:
        html = render_template(
            "pages/asset_form.html",
            asset=asset,
            values=form_values(record),
            errors=field_errors(e),
            **choices(),
        )
        return html, e.status
    flash(f"Saved “{saved['title']}”.", "notice")
    flash_outcome(saved)
    return redirect(url_for("pages.edit_asset", asset_id=asset_id))


@bp.post("/assets/<asset_id>/retire")
@page("marketing")
def retire_asset(principal, asset_id):
    """Retire (never delete): shares and views stay."""
    retired = asset_service.retire_asset(ctx().sessions, asset_id)
    flash(f"Retired “{retired['title']}”.", "notice")
    return redirect(url_for("pages.assets"))


@bp.get("/assets/import")
@page("marketing")
def import_form(principal):
    """The upload form."""
    return render_template("pages/asset_import.html", result=None, error=None)


@bp.post("/assets/import")
@page("marketing")
def import_file(principal):
    """Import a JSON Lines or CSV file; every bad line is listed and nothing is imported
    unless 'skip invalid lines' is ticked."""
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        raise BadRequest("choose a file to import")
    skip_invalid = request.form.get("skip_invalid") == "on"
    fmt = detect_format(upload.filename, upload.mimetype)
    try:
        result = asset_imports.import_assets(
            ctx().sessions, ctx().settings, upload.stream, fmt, skip_invalid
        ).as_dict()
    except InvalidInput as e:
        return render_template("pages/asset_import.html", result=None, error=e), e.status
    status = 422 if result["errors"] and not skip_invalid else 200
    duplicates = [w for w in result.get("warnings", []) if w.get("kind") == "near_duplicate"]
    shown = duplicates[:MAX_DUPLICATES_SHOWN]
    titles = duplicate_titles(shown)
    return render_template(
        "pages/asset_import.html",
        result=result,
        error=None,
        skip_invalid=skip_invalid,
        duplicates=[duplicate_parts(w, titles) for w in shown],
        duplicate_count=len(duplicates),
    ), status


@bp.get("/deals/import")
@page("admin")
def deal_import_form(principal):
    """The deal upload form: the product's format, a CRM's export, or a mapped CSV."""
    return render_template("pages/deal_import.html", result=None, error=None, form={})


@bp.post("/deals/import")
@page("admin")
def deal_import_file(principal):
    """Import deals as the CLI does; every problem is listed as a sentence."""
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        raise BadRequest("choose a file to import")
    form = {
        "from": request.form.get("from") or "enablement",
        "timezone": (request.form.get("timezone") or "").strip()[:64],
        "day_first": request.form.get("day_first") == "on",
        "check": request.form.get("check") == "on",
        "skip_invalid": request.form.get("skip_invalid") == "on",
    }
    options = {
        "source": form["from"],
        "timezone": form["timezone"] or None,
        "day_first": form["day_first"],
        "check": form["check"],
    }
    for name in ("history", "mapping"):
        extra = request.files.get(name)
        if extra is not None and extra.filename:
            options[name] = extra.stream
    try:
        result = transfers.import_deals(
            ctx().sessions,
            ctx().settings,
            upload.stream,
            detect_format(upload.filename, upload.mimetype),
            form["skip_invalid"],
            crm=ctx().crm,
            **options,
        ).as_dict()
    except (InvalidInput, BadRequest) as e:
        return render_template("pages/deal_import.html", result=None, error=e, form=form), e.status
    status = 422 if result["errors"] and not form["skip_invalid"] else 200
    return render_template("pages/deal_import.html", result=result, error=None, form=form), status


@bp.post("/assets/fetch-metadata")
@page("marketing")
def fetch_metadata(principal):
    """'Paste a URL': fill title, summary and author from the page, then show the create form."""
    from enablement.errors import ExternalServiceError
    from enablement.services.page_metadata import fetch_page_metadata

    url = (request.form.get("url") or "").strip()[:4096]
    values: dict = {"status": "approved", "url": url}
    errors: dict = {}
    try:
        found = fetch_page_metadata(url)
    except (InvalidInput, ExternalServiceError) as e:
        errors["fetch"] = [e.message]
    else:
        values.update({k: v for k, v in found.items() if v})
    return render_template(
        "pages/asset_form.html", asset=None, values=values, errors=errors, **choices()
    )
