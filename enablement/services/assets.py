"""Use cases of the asset library: list, read, create, update, retire and rescore assets."""

from __future__ import annotations

from contextlib import contextmanager
from datetime import date

from sqlalchemy import func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, noload, sessionmaker

from enablement.config import Settings
from enablement.db import assets as asset_queries
from enablement.db import transaction
from enablement.db.models import Asset, LinkView, Share
from enablement.db.types import utcnow
from enablement.domain.assets import (
    FIELDS,
    LIST_FIELDS,
    DuplicateCandidate,
    derived_id,
    is_live,
    is_stale,
    validate_asset,
)
from enablement.domain.pov import assess_pitch
from enablement.errors import Conflict, InvalidInput, NotFound


def _today() -> date:
    return utcnow().date()


def asset_view(asset: Asset, today: date, *, body: bool = False) -> dict:
    """The asset as plain data for the API, with its stale and live flags."""
    view = {field: getattr(asset, field) for field in FIELDS if field != "body"}
    view.update({field: list(view[field] or []) for field in LIST_FIELDS})
    view.update(
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


def usage_counts(session: Session, asset_ids: list[str]) -> dict[str, dict]:
    """Per asset: how many times it was shared and how many times buyers opened its links."""
    counts = {asset_id: {"share_count": 0, "view_count": 0} for asset_id in asset_ids}
    if not asset_ids:
        return counts
    shared = select(Share.asset_id, func.count()).where(Share.asset_id.in_(asset_ids))
    for asset_id, n in session.execute(shared.group_by(Share.asset_id)):
        counts[asset_id]["share_count"] = n
    viewed = (
        select(Share.asset_id, func.count(LinkView.id))
        .join(LinkView, LinkView.share_id == Share.id)
        .where(Share.asset_id.in_(asset_ids))
        .group_by(Share.asset_id)
    )
    for asset_id, n in session.execute(viewed):
        counts[asset_id]["view_count"] = n
    return counts


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
    series: str | None = None,
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
    status_condition = asset_queries.status_condition(status or None, today)
    if status_condition is not None:
        conditions.append(status_condition)
    for dimension, value in (
        ("stage", stage),
        ("persona", persona),
        ("industry", industry),
        ("topic", topic),
    ):
        if value and value.strip():
            conditions.append(asset_queries.tagged(dimension, value))
    if kind:
        conditions.append(Asset.kind == kind)
    if series and series.strip():
        conditions.append(func.lower(Asset.series) == series.strip().lower())
    if q and q.strip():
        pattern = f"%{asset_queries.escape_like(q.strip())}%"
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
        usage = usage_counts(session, [asset.id for asset in rows])
        items = [asset_view(asset, today) | usage[asset.id] for asset in rows]
    return {"items": items, "page": page, "per_page": per_page, "total": total or 0}


def get_asset(sessions, asset_id: str, today: date | None = None) -> dict:
    """One asset (retired ones too), with its body."""
    with sessions() as session:
        asset = session.get(Asset, asset_id)
        if asset is None:
            raise NotFound(f"no asset {asset_id!r}")
        view = asset_view(asset, today or _today(), body=True)
        return view | usage_counts(session, [asset.id])[asset.id]


def apply_values(asset: Asset, values: dict, product_terms: tuple[str, ...]) -> None:
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
    asset_queries.sync_tags(asset)


def new_row(values: dict, product_terms: tuple[str, ...]) -> dict:
    """A full row of a new asset (for a bulk insert), pitch score and retired_at included."""
    row = asset_queries.list_values(values)
    score, flag = assess_pitch(row["title"], row.get("summary"), row.get("body"), product_terms)
    now = utcnow()
    row.update(
        pitch_score=score,
        pitch_flag=flag,
        retired_at=(row.get("retired_at") or now) if row["status"] == "retired" else None,
        created_at=now,
        updated_at=now,
    )
    return row


def differs(asset: Asset, values: dict) -> bool:
    """True when applying values would change the stored asset."""
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


@contextmanager
def write_transaction(sessions, check: bool = False):
    """A write transaction (rolled back when check); a concurrent insert of the same id is a 409."""
    try:
        with transaction(sessions, check) as session:
            yield session
    except IntegrityError as e:
        raise Conflict(
            "another write created the same asset at the same time; try again",
            {"reason": str(e.orig)[:200]},
        ) from None


def _invalid_body(errors: dict) -> InvalidInput:
    return InvalidInput("invalid body", {"body": errors})


def create_asset(sessions: sessionmaker[Session], settings: Settings, fields: dict) -> dict:
    """Create an asset; the answer carries near-duplicate warnings (never blocking).

    Without an id the asset gets the id derived from its URL (as an id-less file
    record would), or a fresh one when that id is taken.
    """
    values, errors = validate_asset(fields)
    if errors:
        raise _invalid_body(errors)
    today = _today()
    with write_transaction(sessions) as session:
        asset_id = values.get("id")
        if asset_id is not None:
            if session.get(Asset, asset_id) is not None:
                raise Conflict(f"an asset with id {asset_id!r} exists", {"id": asset_id})
        else:
            asset_id = derived_id(values["url"])
            if session.get(Asset, asset_id) is not None:
                asset_id = f"{asset_id}-{utcnow().strftime('%Y%m%d%H%M%S%f')}"
        asset = Asset(id=asset_id, tags=[])
        apply_values(asset, values, settings.product_terms)
        session.add(asset)
        session.flush()
        warnings = asset_queries.near_duplicate_warnings(session, _candidates(asset))
        view = asset_view(asset, today, body=True)
    view["warnings"] = warnings
    return view


def update_asset(
    sessions: sessionmaker[Session], settings: Settings, asset_id: str, changes: dict
) -> dict:
    """Change some fields of an asset; status 'retired' retires it, another status revives it."""
    values, errors = validate_asset(changes, partial=True)
    values.pop("id", None)
    if "id" in changes:
        errors.setdefault("id", []).append("The id cannot be changed.")
    if errors:
        raise _invalid_body(errors)
    today = _today()
    with sessions.begin() as session:
        asset = session.get(Asset, asset_id)
        if asset is None:
            raise NotFound(f"no asset {asset_id!r}")
        warnings: list[dict] = []
        if differs(asset, values):
            apply_values(asset, values, settings.product_terms)
            session.flush()
            warnings = asset_queries.near_duplicate_warnings(session, _candidates(asset))
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
        return asset_view(asset, today, body=True)


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
    return changed


def asset_titles(sessions, ids) -> dict[str, str]:
    """Asset id -> title for the ids given (retired ones too); unknown ids are left out."""
    wanted = sorted({i for i in ids if i})
    titles: dict[str, str] = {}
    with sessions() as session:
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            rows = session.execute(select(Asset.id, Asset.title).where(Asset.id.in_(chunk)))
            titles.update((row.id, row.title) for row in rows)
    return titles
