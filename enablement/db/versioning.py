"""The data version: bumped by every write that changes report inputs, read by report caches."""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from enablement.db.models import DataVersion
from enablement.db.types import utcnow


def bump_data_version(session: Session) -> None:
    """Increase the data version inside the caller's transaction."""
    updated = session.execute(
        update(DataVersion)
        .where(DataVersion.id == 1)
        .values(version=DataVersion.version + 1, updated_at=utcnow())
    )
    if updated.rowcount == 0:
        session.add(DataVersion(id=1, version=1))
        session.flush()


def current_data_version(session: Session) -> int:
    """The current data version (0 before any write)."""
    return session.scalar(select(DataVersion.version).where(DataVersion.id == 1)) or 0
