"""Asset files: import (JSON Lines, CSV or a JSON array) and export, in the one asset record format.

The record's fields come from enablement.domain.assets.ASSET_FIELDS, so a file the export
writes is one the import reads back unchanged.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import IO

from sqlalchemy import select
from sqlalchemy.orm import Session, lazyload, noload, sessionmaker

from enablement.config import Settings
from enablement.db.assets import CHUNK, insert_assets, near_duplicate_warnings
from enablement.db.models import Asset
from enablement.domain.assets import (
    ASSET_FIELDS,
    FIELDS,
    LIST_FIELDS,
    DuplicateCandidate,
    derived_id,
    to_record,
    validate_asset,
)
from enablement.domain.timestamps import InvalidTimestamp, format_timestamp, parse_timestamp
from enablement.errors import InvalidInput
from enablement.files.formats import FileError, ImportResult, read_records, write_records
from enablement.services.assets import apply_values, differs, new_row, write_transaction

# Files carry one field the API does not take: when a retired asset was retired (the API
# sets it by retiring), so that a backup restores it exactly.
FILE_FIELDS: tuple[str, ...] = (*FIELDS, "retired_at")


def _retired_at(record: dict) -> tuple[dict, object, list[str]]:
    """(the record without retired_at, its moment or None, problems with it)."""
    if "retired_at" not in record:
        return record, None, []
    record = dict(record)
    given = record.pop("retired_at")
    if given is None:
        return record, None, []
    try:
        moment = parse_timestamp(given)
    except InvalidTimestamp as e:
        return record, None, [str(e)]
    if record.get("status") != "retired":
        return record, None, ["only a retired asset (status retired) has a retired_at"]
    return record, moment, []


def _validate_all(
    numbered: Iterable[tuple[int, object]], from_text: bool
) -> tuple[list[tuple[int, dict]], list[FileError]]:
    """Validate every record; duplicate ids in one file are errors on every line that has them."""
    valid: list[tuple[int, dict]] = []
    errors: list[FileError] = []
    for line, record in numbered:
        if isinstance(record, FileError):
            errors.append(record)
            continue
        if not isinstance(record, dict):
            errors.append(FileError(line, "each record must be an object"))
            continue
        record, retired_at, retired_problems = _retired_at(record)
        values, problems = validate_asset(record, from_text=from_text)
        if retired_problems:
            problems = {**problems, "retired_at": retired_problems}
        if problems:
            errors.append(FileError(line, problems))
            continue
        if retired_at is not None:
            values["retired_at"] = retired_at
        if values.get("id") is None:
            values["id"] = derived_id(values["url"])
            values["_derived"] = True
        valid.append((line, values))
    lines_by_id: dict[str, list[int]] = {}
    for line, values in valid:
        lines_by_id.setdefault(values["id"], []).append(line)
    duplicated = {i: lines for i, lines in lines_by_id.items() if len(lines) > 1}
    if duplicated:
        kept = []
        for line, values in valid:
            lines = duplicated.get(values["id"])
            if lines is None:
                kept.append((line, values))
                continue
            others = ", ".join(str(n) for n in lines if n != line)
            what = "the same URL (no id given)" if values.get("_derived") else "the same id"
            message = f"duplicate id {values['id']!r}: {what} as line(s) {others}"
            errors.append(FileError(line, {"id": [message]}))
        valid = kept
    errors.sort(key=lambda e: e.line)
    for _, values in valid:
        values.pop("_derived", None)
    return valid, errors


def import_asset_records(
    sessions: sessionmaker[Session],
    settings: Settings,
    numbered: Iterable[tuple[int, object]],
    skip_invalid: bool = False,
    from_text: bool = False,
    check: bool = False,
) -> ImportResult:
    """Validate every record, then upsert by id in one transaction (or import nothing on error).

    Line numbers are file lines (or 1-based positions of a JSON array). Unchanged
    records are counted, not written, so re-importing a file changes nothing.
    """
    valid, errors = _validate_all(numbered, from_text)
    result = ImportResult(kind="assets", errors=errors, checked=check)
    if errors and not skip_invalid:
        return result
    result.skipped = len(errors)
    if not valid:
        return result
    terms = settings.product_terms
    with write_transaction(sessions, check) as session:
        ids = [values["id"] for _, values in valid]
        found: dict[str, Asset] = {}
        for start in range(0, len(ids), CHUNK):
            chunk = ids[start : start + CHUNK]
            # NOTE: tags load lazily, only for the assets that change.
            query = select(Asset).options(lazyload(Asset.tags)).where(Asset.id.in_(chunk))
            found.update((a.id, a) for a in session.scalars(query))
        new_rows: list[dict] = []
        changed: list[DuplicateCandidate] = []
        for _, values in valid:
            asset = found.get(values["id"])
            if asset is None:
                new_rows.append(new_row(values, terms))
                result.created += 1
            elif differs(asset, values):
                apply_values(asset, values, terms)
                result.updated += 1
            else:
                result.unchanged += 1
                continue
            if values["status"] != "retired":
                changed.append(DuplicateCandidate(values["id"], values["title"], values["url"]))
        if result.created or result.updated:
            session.flush()
            insert_assets(session, new_rows)
            result.warnings = near_duplicate_warnings(session, changed)
    return result


def import_assets(
    sessions: sessionmaker[Session],
    settings: Settings,
    stream: IO[bytes],
    fmt: str,
    skip_invalid: bool,
    check: bool = False,
) -> ImportResult:
    """Import assets from a JSON Lines or CSV stream (lists in CSV joined by ';'); check: dry run."""
    required = [spec.name for spec in ASSET_FIELDS if spec.required]
    numbered = list(
        read_records(stream, fmt, list_fields=LIST_FIELDS, columns=FILE_FIELDS, required=required)
    )
    return import_asset_records(
        sessions, settings, numbered, skip_invalid, from_text=fmt == "csv", check=check
    )


def import_asset_list(
    sessions: sessionmaker[Session],
    settings: Settings,
    items: list,
    skip_invalid: bool,
    check: bool = False,
) -> ImportResult:
    """Import assets from a JSON array; positions are 1-based indexes; check: dry run."""
    if not isinstance(items, list):
        raise InvalidInput("the body must be a JSON array of asset objects")
    return import_asset_records(
        sessions, settings, enumerate(items, start=1), skip_invalid, check=check
    )


def asset_record(asset: Asset) -> dict:
    """The asset in the file format (what import reads); absent values left out."""
    record = to_record({field: getattr(asset, field) for field in FIELDS})
    if asset.retired_at is not None and asset.status == "retired":
        record["retired_at"] = format_timestamp(asset.retired_at)
    return record


def export_assets(
    sessions: sessionmaker[Session], settings: Settings, out: IO[str], fmt: str
) -> int:
    """Write every asset (retired too), ordered by id, in the format import reads."""
    with sessions() as session:
        rows = session.scalars(
            select(Asset)
            .options(noload(Asset.tags))
            .order_by(Asset.id)
            .execution_options(yield_per=CHUNK)
        )
        return write_records(
            (asset_record(asset) for asset in rows),
            fmt,
            out,
            list(FILE_FIELDS),
            list_fields=LIST_FIELDS,
        )
