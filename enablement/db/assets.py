"""Asset queries and the tag index: the SQL side of the asset library (no commits here)."""

from __future__ import annotations

from datetime import date

from sqlalchemy import and_, insert, or_, select
from sqlalchemy.orm import Session

from enablement.db.models import Asset, AssetTag
from enablement.domain.assets import (
    LIST_FIELDS,
    TAG_DIMENSIONS,
    DuplicateCandidate,
    find_near_duplicates,
)
from enablement.domain.tags import tag_key

STATUS_FILTERS: tuple[str, ...] = ("live", "stale", "draft", "approved", "retired", "all")
CHUNK = 500


def live_condition(today: date):
    """SQL form of domain.assets.is_live: approved and review_by not passed (a test keeps them equal)."""
    return and_(
        Asset.status == "approved", or_(Asset.review_by.is_(None), Asset.review_by >= today)
    )


def stale_condition(today: date):
    """SQL form of domain.assets.is_stale: approved and past review_by."""
    return and_(Asset.status == "approved", Asset.review_by < today)


def status_condition(status: str | None, today: date):
    """The WHERE clause of a status filter (STATUS_FILTERS); no filter hides retired assets."""
    if status is None:
        return Asset.status != "retired"
    if status == "live":
        return live_condition(today)
    if status == "stale":
        return stale_condition(today)
    if status == "all":
        return None
    return Asset.status == status


def escape_like(text: str) -> str:
    """Text for a LIKE pattern with its wildcards taken literally (escape character '\\')."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def tagged(dimension: str, value: str):
    """Assets carrying this tag in this dimension (compared by tag_key)."""
    return Asset.id.in_(
        select(AssetTag.asset_id).where(
            AssetTag.dimension == dimension, AssetTag.value == tag_key(value)
        )
    )


def wanted_tags(lists: dict) -> set[tuple[str, str]]:
    """(dimension, indexed value) pairs for an asset's tag lists."""
    return {
        (dimension, tag_key(value))
        for field, dimension in TAG_DIMENSIONS.items()
        for value in lists.get(field) or []
    }


def sync_tags(asset: Asset) -> None:
    """Make the AssetTag index rows match the asset's tag lists."""
    want = wanted_tags({field: getattr(asset, field) for field in TAG_DIMENSIONS})
    have = {(tag.dimension, tag.value): tag for tag in asset.tags}
    for key, tag in have.items():
        if key not in want:
            asset.tags.remove(tag)
    for dimension, value in sorted(want - have.keys()):
        asset.tags.append(AssetTag(dimension=dimension, value=value))


def insert_assets(session: Session, rows: list[dict]) -> None:
    """Bulk-insert full asset rows and their tag index rows (in chunks)."""
    # NOTE: bulk inserts: the ORM unit of work is ~4x slower at 10,000 assets.
    for start in range(0, len(rows), CHUNK):
        chunk = rows[start : start + CHUNK]
        session.execute(insert(Asset), chunk)
        tags = [
            {"asset_id": row["id"], "dimension": dimension, "value": value}
            for row in chunk
            for dimension, value in sorted(wanted_tags(row))
        ]
        if tags:
            session.execute(insert(AssetTag), tags)


def near_duplicate_warnings(session: Session, new: list[DuplicateCandidate]) -> list[dict]:
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


def list_values(values: dict) -> dict:
    """The record's values with tag lists as plain lists (what the model columns hold)."""
    return {field: (list(v) if field in LIST_FIELDS else v) for field, v in values.items()}
