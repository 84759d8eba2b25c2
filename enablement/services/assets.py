"""Use cases for the asset library: list, read, create, update, retire, import and export."""

from __future__ import annotations

from collections.abc import Iterable
from contextlib import contextmanager
from datetime import UTC, date, datetime
from typing import IO

from sqlalchemy import and_, func, insert, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, lazyload, noload, sessionmaker

from enablement.config import Settings
from enablement.context import Container
from enablement.db.models import Asset, AssetTag
from enablement.db.types import utcnow
from enablement.db.versioning import bump_data_version
from enablement.domain.assets import (
    FIELDS,
    LIST_FIELDS,
    TAG_DIMENSIONS,
    DuplicateCandidate,
    derived_id,
    find_near_duplicates,
    is_live,
    is_stale,
    tag_key,
    validate_asset,
)
from enablement.domain.pov import assess_pitch
from enablement.errors import Conflict, InvalidInput, NotFound
from enablement.services.files import (
    FileError,
    ImportResult,
    exporter,
    importer,
    read_records,
    write_records,
)

# The file format's fields in CSV column order (body last: it is long).
EXPORT_COLUMNS: list[str] = [
    "id",
    "title",
    "url",
    "kind",
    "author",
    "summary",
    "topics",
    "industries",
    "personas",
    "stages",
    "published_at",
    "review_by",
    "status",
    "series",
    "series_order",
    "body",
]
STATUS_FILTERS: tuple[str, ...] = ("live", "stale", "draft", "approved", "retired", "all")
_CHUNK = 500


def _today() -> date:
    return utcnow().date()


def _iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def asset_view(asset: Asset, today: date, *, body: bool = False) -> dict:
    """The asset as plain data for the API, with its stale and live flags."""
    view = {field: getattr(asset, field) for field in FIELDS if field != "body"}
    view.update(
        topics=list(asset.topics or []),
        industries=list(asset.industries or []),
        personas=list(asset.personas or []),
        stages=list(asset.stages or []),
        pitch_score=asset.pitch_score,
        pitch_flag=bool(asset.pitch_flag),
        stale=is_stale(asset.status, asset.review_by, today),
        live=is_live(asset.status, asset.review_by, today),
        created_at=asset.created_at,
        updated_at=asset.updated_at,
        retired_at=asset.retired_at,
    )
    if body:
        view["body"] = asset.body
    return view


def _status_condition(status: str, today: date):
    if status == "live":
        return and_(
            Asset.status == "approved", or_(Asset.review_by.is_(None), Asset.review_by >= today)
        )
    if status == "stale":
        return and_(Asset.status == "approved", Asset.review_by < today)
    if status == "all":
        return None
    return Asset.status == status


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def list_assets(
    sessions,
    *,
    stage: str | None = None,
    persona: str | None = None,
    industry: str | None = None,
    topic: str | None = None,
    kind: str | None = None,
    q: str | None = None,
    status: str | None = None,
    page: int = 1,
    per_page: int = 50,
    today: date | None = None,
) -> dict:
    """A page of assets matching every filter given; retired ones only with status=retired|all.

    Tag filters compare case-insensitively through the AssetTag index; `q` is a
    case-insensitive substring of title, summary or author.
    """
    today = today or _today()
    conditions = []
    status_condition = _status_condition(status, today) if status else Asset.status != "retired"
    if status_condition is not None:
        conditions.append(status_condition)
    for dimension, value in (
        ("stage", stage),
        ("persona", persona),
        ("industry", industry),
        ("topic", topic),
    ):
        if value and value.strip():
            conditions.append(
                Asset.id.in_(
                    select(AssetTag.asset_id).where(
                        AssetTag.dimension == dimension, AssetTag.value == tag_key(value)
                    )
                )
            )
    if kind:
        conditions.append(Asset.kind == kind)
    if q and q.strip():
        pattern = f"%{_escape_like(q.strip())}%"
        conditions.append(
            or_(
                Asset.title.ilike(pattern, escape="\\"),
                Asset.summary.ilike(pattern, escape="\\"),
                Asset.author.ilike(pattern, escape="\\"),
            )
        )
    with sessions() as session:
        total = session.scalar(select(func.count()).select_from(Asset).where(*conditions))
        rows = session.scalars(
            select(Asset)
            .options(noload(Asset.tags))
            .where(*conditions)
            .order_by(Asset.title, Asset.id)
            .offset((page - 1) * per_page)
            .limit(per_page)
        ).all()
        items = [asset_view(asset, today) for asset in rows]
    return {"items": items, "page": page, "per_page": per_page, "total": total or 0}


def get_asset(sessions, asset_id: str, today: date | None = None) -> dict:
    """One asset (retired ones too), with its body."""
    with sessions() as session:
        asset = session.get(Asset, asset_id)
        if asset is None:
            raise NotFound(f"no asset {asset_id!r}")
        return asset_view(asset, today or _today(), body=True)


def _wanted_tags(lists: dict) -> set[tuple[str, str]]:
    """(dimension, indexed value) pairs for an asset's tag lists."""
    return {
        (dimension, tag_key(value))
        for field, dimension in TAG_DIMENSIONS.items()
        for value in lists.get(field) or []
    }


def _tag_rows(row: dict) -> list[dict]:
    """AssetTag rows of a new asset row."""
    return [
        {"asset_id": row["id"], "dimension": dimension, "value": value}
        for dimension, value in sorted(_wanted_tags(row))
    ]


def _sync_tags(asset: Asset) -> None:
    """Make the AssetTag index rows match the asset's tag lists."""
    want = _wanted_tags({field: getattr(asset, field) for field in TAG_DIMENSIONS})
    have = {(tag.dimension, tag.value): tag for tag in asset.tags}
    for key, tag in have.items():
        if key not in want:
            asset.tags.remove(tag)
    for dimension, value in sorted(want - have.keys()):
        asset.tags.append(AssetTag(dimension=dimension, value=value))


def _apply(asset: Asset, values: dict, product_terms: tuple[str, ...]) -> None:
    """Set the given fields, keep retired_at, tags and the pitch score consistent."""
    for field, value in values.items():
        if field != "id":
            setattr(asset, field, list(value) if field in LIST_FIELDS else value)
    if asset.status == "retired":
        asset.retired_at = asset.retired_at or utcnow()
    else:
        asset.retired_at = None
    asset.pitch_score, asset.pitch_flag = assess_pitch(
        asset.title, asset.summary, asset.body, product_terms
    )
    _sync_tags(asset)


def _new_row(values: dict, product_terms: tuple[str, ...]) -> dict:
    """A full row of a new asset (for a bulk insert), pitch score and retired_at included."""
    row = {field: (list(v) if field in LIST_FIELDS else v) for field, v in values.items()}
    score, flag = assess_pitch(row["title"], row.get("summary"), row.get("body"), product_terms)
    now = utcnow()
    row.update(
        pitch_score=score,
        pitch_flag=flag,
        retired_at=now if row["status"] == "retired" else None,
        created_at=now,
        updated_at=now,
    )
    return row


def _differs(asset: Asset, values: dict) -> bool:
    return any(
        getattr(asset, field) != (list(value) if field in LIST_FIELDS else value)
        for field, value in values.items()
        if field != "id"
    )


def _candidates(asset: Asset) -> list[DuplicateCandidate]:
    """The asset as a near-duplicate candidate (none when retired)."""
    if asset.status == "retired":
        return []
    return [DuplicateCandidate(asset.id, asset.title, asset.url)]


def _warnings(session: Session, new: list[DuplicateCandidate]) -> list[dict]:
    """Near-duplicate warnings for changed, non-retired assets against every other asset not retired."""
    if not new:
        return []
    ids = {candidate.id for candidate in new}
    existing = [
        DuplicateCandidate(row.id, row.title, row.url)
        for row in session.execute(
            select(Asset.id, Asset.title, Asset.url)
            .where(Asset.status != "retired")
            .order_by(Asset.id)
        )
        if row.id not in ids
    ]
    return find_near_duplicates(new, existing)


@contextmanager
def _transaction(sessions):
    """A write transaction; a concurrent insert of the same id becomes a 409, not a 500."""
    try:
        with sessions.begin() as session:
            yield session
    except IntegrityError as e:
        raise Conflict(
            "another write created the same asset at the same time; try again",
            {"reason": str(e.orig)[:200]},
        ) from None


def _invalid_body(errors: dict) -> InvalidInput:
    return InvalidInput("invalid body", {"body": errors})


def create_asset(container: Container, fields: dict) -> dict:
    """Create an asset; the answer carries near-duplicate warnings (never blocking).

    Without an id the asset gets the id derived from its URL (as an id-less file
    record would), or a fresh one when that id is taken.
    """
    values, errors = validate_asset(fields)
    if errors:
        raise _invalid_body(errors)
    today = _today()
    with _transaction(container.sessions) as session:
        asset_id = values.get("id")
        if asset_id is not None:
            if session.get(Asset, asset_id) is not None:
                raise Conflict(f"an asset with id {asset_id!r} exists", {"id": asset_id})
        else:
            asset_id = derived_id(values["url"])
            if session.get(Asset, asset_id) is not None:
                asset_id = f"{asset_id}-{utcnow().strftime('%Y%m%d%H%M%S%f')}"
        asset = Asset(id=asset_id, tags=[])
        _apply(asset, values, container.settings.product_terms)
        session.add(asset)
        session.flush()
        warnings = _warnings(session, _candidates(asset))
        bump_data_version(session)
        view = asset_view(asset, today, body=True)
    view["warnings"] = warnings
    return view


def update_asset(container: Container, asset_id: str, changes: dict) -> dict:
    """Change some fields of an asset; status 'retired' retires it, another status revives it."""
    values, errors = validate_asset(changes, partial=True)
    values.pop("id", None)
    if "id" in changes:
        errors.setdefault("id", []).append("The id cannot be changed.")
    if errors:
        raise _invalid_body(errors)
    today = _today()
    with container.sessions.begin() as session:
        asset = session.get(Asset, asset_id)
        if asset is None:
            raise NotFound(f"no asset {asset_id!r}")
        warnings: list[dict] = []
        if _differs(asset, values):
            _apply(asset, values, container.settings.product_terms)
            session.flush()
            warnings = _warnings(session, _candidates(asset))
            bump_data_version(session)
        view = asset_view(asset, today, body=True)
    view["warnings"] = warnings
    return view


def retire_asset(sessions, asset_id: str) -> dict:
    """Retire an asset (status retired, retired_at set); its shares and views stay."""
    today = _today()
    with sessions.begin() as session:
        asset = session.get(Asset, asset_id)
        if asset is None:
            raise NotFound(f"no asset {asset_id!r}")
        if asset.status != "retired":
            asset.status = "retired"
            asset.retired_at = utcnow()
            bump_data_version(session)
        return asset_view(asset, today, body=True)


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
        values, problems = validate_asset(record, from_text=from_text)
        if problems:
            errors.append(FileError(line, problems))
            continue
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
    container: Container,
    numbered: Iterable[tuple[int, object]],
    skip_invalid: bool = False,
    from_text: bool = False,
) -> ImportResult:
    """Validate every record, then upsert by id in one transaction (or import nothing on error).

    Line numbers are file lines (or 1-based positions of a JSON array). Unchanged
    records are counted, not written, so re-importing a file changes nothing.
    """
    valid, errors = _validate_all(numbered, from_text)
    result = ImportResult(kind="assets", errors=errors)
    if errors and not skip_invalid:
        return result
    result.skipped = len(errors)
    if not valid:
        return result
    terms = container.settings.product_terms
    with _transaction(container.sessions) as session:
        ids = [values["id"] for _, values in valid]
        found: dict[str, Asset] = {}
        for start in range(0, len(ids), _CHUNK):
            chunk = ids[start : start + _CHUNK]
            # NOTE: tags load lazily, only for the assets that change.
            query = select(Asset).options(lazyload(Asset.tags)).where(Asset.id.in_(chunk))
            found.update((a.id, a) for a in session.scalars(query))
        new_rows: list[dict] = []
        changed: list[DuplicateCandidate] = []
        for _, values in valid:
            asset = found.get(values["id"])
            if asset is None:
                new_rows.append(_new_row(values, terms))
                result.created += 1
            elif _differs(asset, values):
                _apply(asset, values, terms)
                result.updated += 1
            else:
                result.unchanged += 1
                continue
            if values["status"] != "retired":
                changed.append(DuplicateCandidate(values["id"], values["title"], values["url"]))
        if result.created or result.updated:
            session.flush()
            # NOTE: new assets go in as bulk inserts: the ORM unit of work is ~4x slower at 10,000.
            for start in range(0, len(new_rows), _CHUNK):
                chunk = new_rows[start : start + _CHUNK]
                session.execute(insert(Asset), chunk)
                tags = [tag for row in chunk for tag in _tag_rows(row)]
                if tags:
                    session.execute(insert(AssetTag), tags)
            result.warnings = _warnings(session, changed)
            bump_data_version(session)
    return result


@importer("assets")
def import_assets(container: Container, stream: IO[bytes], fmt: str, skip_invalid: bool):
    """Import assets from a JSON Lines or CSV stream (lists in CSV joined by ';')."""
    numbered = list(read_records(stream, fmt, list_fields=LIST_FIELDS))
    return import_asset_records(container, numbered, skip_invalid, from_text=fmt == "csv")


def import_asset_list(container: Container, items: list, skip_invalid: bool) -> ImportResult:
    """Import assets from a JSON array; positions are 1-based indexes."""
    if not isinstance(items, list):
        raise InvalidInput("the body must be a JSON array of asset objects")
    return import_asset_records(container, enumerate(items, start=1), skip_invalid)


def asset_record(asset: Asset) -> dict:
    """The asset in the file format (what import reads); absent values left out."""
    record = {
        "id": asset.id,
        "title": asset.title,
        "url": asset.url,
        "kind": asset.kind,
        "author": asset.author,
        "summary": asset.summary,
        "topics": list(asset.topics or []),
        "industries": list(asset.industries or []),
        "personas": list(asset.personas or []),
        "stages": list(asset.stages or []),
        "published_at": _iso(asset.published_at),
        "review_by": asset.review_by.isoformat() if asset.review_by else None,
        "status": asset.status,
        "series": asset.series,
        "series_order": asset.series_order,
        "body": asset.body,
    }
    return {key: value for key, value in record.items() if value is not None}


@exporter("assets")
def export_assets(container: Container, out: IO[str], fmt: str) -> int:
    """Write every asset (retired too), ordered by id, in the format import reads."""
    with container.sessions() as session:
        rows = session.scalars(
            select(Asset)
            .options(noload(Asset.tags))
            .order_by(Asset.id)
            .execution_options(yield_per=_CHUNK)
        )
        return write_records(
            (asset_record(asset) for asset in rows),
            fmt,
            out,
            EXPORT_COLUMNS,
            list_fields=LIST_FIELDS,
        )


def rescore_assets(sessions: sessionmaker[Session], settings: Settings) -> int:
    """Recompute every asset's pitch score and flag (e.g. after PRODUCT_TERMS change); returns how many changed."""
    changed = 0
    with sessions.begin() as session:
        for asset in session.scalars(select(Asset)):
            score, flag = assess_pitch(
                asset.title, asset.summary, asset.body, settings.product_terms
            )
            if asset.pitch_score != score or asset.pitch_flag != flag:
                asset.pitch_score, asset.pitch_flag = score, flag
                changed += 1
        if changed:
            bump_data_version(session)
    return changed
