"""Data versions: counters bumped by writes, read by caches to know when to recompute.

Two counters, so that the frequent event (a buyer opening a link) does not throw away
caches that do not depend on it (effectiveness, cycle time, deal search):
DATA for deals, stage history, the stage map, assets and shares; ENGAGEMENT for link views.
"""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from enablement.db.models import DataVersion
from enablement.db.types import utcnow

DATA = 1
ENGAGEMENT = 2


def bump_data_version(session: Session, counter: int = DATA) -> None:
    """Increase a data version (DATA by default) inside the caller's transaction."""
    bump = (
        update(DataVersion)
        .where(DataVersion.id == counter)
        .values(version=DataVersion.version + 1, updated_at=utcnow())
    )
    if session.execute(bump).rowcount:
        return
    try:
        # The first write ever: two workers may race to create the row; one insert wins.
        with session.begin_nested():
            session.add(DataVersion(id=counter, version=1))
    except IntegrityError:
        session.execute(bump)


def current_data_version(session: Session, counter: int = DATA) -> int:
    """The current version of a counter (0 before any write)."""
    return session.scalar(select(DataVersion.version).where(DataVersion.id == counter)) or 0
