"""The sync use case against an in-memory CRM: a sync killed after any page, run again, ends with the same data."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from enablement.db.models import Deal, StageChange
from enablement.domain.crm import DealRecord, OwnerRecord, PipelineRecord, StageEntry, StageRecord
from integrations.hubspot.client import DealPage
from integrations.hubspot.sync import sync_crm

T0 = datetime(2024, 1, 1, tzinfo=UTC)


class Killed(Exception):
    """The process died here."""


class MemoryCrm:
    """The CRM interface over lists in memory; `kill_after` pages raises Killed (a crash mid-sync)."""

    def __init__(self, deals: list[DealRecord], archived: list[DealRecord], page: int = 3):
        self.deals, self.archived, self.page = deals, archived, page
        self.kill_after: int | None = None
        self.served = 0

    def fetch_pipelines(self):
        return [
            PipelineRecord(
                "p", "P", (StageRecord("s1", "Discovery"), StageRecord("s2", "Proposal"))
            )
        ]

    def iter_owners(self):
        yield OwnerRecord("o1", "o1@example.com")

    def _pages(self, rows, after):
        start = int(after or 0)
        while True:
            if self.kill_after is not None and self.served >= self.kill_after:
                raise Killed
            self.served += 1
            chunk = rows[start : start + self.page]
            start += self.page
            more = start < len(rows)
            yield DealPage(chunk, resume=str(start) if more else None, done=not more)
            if not more:
                return

    def iter_all_deals(self, after=None, archived=False):
        yield from self._pages(self.archived if archived else self.deals, after)

    def iter_deals_modified_between(self, start, end):
        changed = [d for d in self.deals if start <= d.source_modified_at < end]
        yield from (DealPage(p.deals) for p in self._pages(changed, None))
        yield DealPage([], resume=end.isoformat())

    def iter_archived_deal_ids(self):
        yield [d.id for d in self.archived]


def make_deal(i: int, deleted: bool = False) -> DealRecord:
    history = (
        StageEntry(T0 + timedelta(days=i), "s1"),
        StageEntry(T0 + timedelta(days=i, hours=5), "s2"),
    )
    if i % 3 == 0:  # a re-entry
        history += (StageEntry(T0 + timedelta(days=i, hours=9), "s1"),)
    return DealRecord(
        id=str(i),
        name=f"D{i}",
        pipeline_id="p",
        created_at=T0,
        stage_history=history,
        source_modified_at=T0 + timedelta(days=i),
        deleted=deleted,
    )


def snapshot(sessions) -> tuple:
    """Every deal (id, deleted?, current stage) and every stage change, in order."""
    with sessions() as session:
        deals = session.execute(
            select(Deal.id, Deal.deleted_at.is_not(None), Deal.current_stage_id).order_by(Deal.id)
        ).all()
        changes = session.execute(
            select(
                StageChange.deal_id,
                StageChange.pipeline_id,
                StageChange.stage_id,
                StageChange.entered_at,
            ).order_by(StageChange.deal_id, StageChange.entered_at)
        ).all()
    return [tuple(r) for r in deals], [tuple(r) for r in changes]


def clear(sessions) -> None:
    from enablement.db.models import Base

    with sessions.begin() as session:
        for table in reversed(Base.metadata.sorted_tables):
            session.execute(table.delete())


@pytest.fixture
def crm() -> MemoryCrm:
    """Ten active deals (pages of three) and two archived ones."""
    return MemoryCrm([make_deal(i) for i in range(1, 11)], [make_deal(i, True) for i in (11, 12)])


def test_a_full_sync_killed_after_any_page_and_run_again_ends_identical(crm, sessions):
    sync_crm(sessions, crm, full=True)
    reference = snapshot(sessions)
    pages = crm.served
    assert pages == 5
    for kill_after in range(pages):
        clear(sessions)
        crm.served, crm.kill_after = 0, kill_after
        with pytest.raises(Killed):
            sync_crm(sessions, crm, full=True)
        crm.served, crm.kill_after = 0, None
        sync_crm(sessions, crm, full=True)
        assert snapshot(sessions) == reference, f"killed after {kill_after} pages"
        assert crm.served == pages - kill_after  # committed pages are not read again


def test_an_incremental_sync_killed_after_any_page_and_run_again_ends_identical(crm, sessions):
    sync_crm(sessions, crm, full=True, now=lambda: T0)
    crm.deals = [
        DealRecord(
            **{
                **d.__dict__,
                "stage_history": d.stage_history + (StageEntry(T0 + timedelta(days=30), "s1"),),
            }
        )
        for d in crm.deals
    ]
    later = lambda: T0 + timedelta(days=60)  # noqa: E731
    sync_crm(sessions, crm, now=later)
    reference = snapshot(sessions)
    for kill_after in range(4):
        clear(sessions)
        crm.served, crm.kill_after = 0, None
        sync_crm(sessions, crm, full=True, now=lambda: T0)
        crm.kill_after = crm.served + kill_after
        with pytest.raises(Killed):
            sync_crm(sessions, crm, now=later)
        crm.kill_after = None
        sync_crm(sessions, crm, now=later)
        assert snapshot(sessions) == reference, f"killed after {kill_after} pages"


def test_a_second_sync_on_postgresql_is_refused_while_one_runs(crm, sessions):
    from sqlalchemy import text

    from enablement.errors import Conflict
    from integrations.hubspot.sync import _LOCK_KEY

    engine = sessions.kw["bind"]
    if engine.dialect.name != "postgresql":
        pytest.skip("the guard is PostgreSQL's advisory lock; SQLite is one process")
    with engine.connect() as running:  # another sync holds the lock
        running.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _LOCK_KEY})
        with pytest.raises(Conflict, match="another sync is running"):
            sync_crm(sessions, crm, full=True)
        running.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _LOCK_KEY})
        running.commit()
    assert sync_crm(sessions, crm, full=True).deals.created == 12
