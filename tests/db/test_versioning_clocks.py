"""Table fingerprints see every update whatever the writer's clock: hosts whose clocks differ share caches safely."""

from datetime import timedelta

from sqlalchemy import func, select, update

from enablement.db.models import Asset, Deal
from enablement.db.types import utcnow
from enablement.db.versioning import table_versions
from tests.crm_data import insert_asset, insert_deals, insert_pipeline, sample_deal


def versions(sessions, table):
    with sessions() as session:
        return table_versions(session, [table])


def newest(sessions, column):
    with sessions() as session:
        return session.scalar(select(func.max(column)))


def test_an_update_stamped_by_a_clock_that_is_behind_changes_the_deals_fingerprint(sessions):
    insert_pipeline(sessions)
    insert_deals(sessions, sample_deal("d1"), sample_deal("d2"))
    with sessions.begin() as session:  # host A, clock right: d2 is the newest write
        session.execute(update(Deal).where(Deal.id == "d2").values(updated_at=utcnow()))
    before = versions(sessions, Deal)
    top = newest(sessions, Deal.updated_at)
    with sessions.begin() as session:  # host B, clock 5 s behind, writes later
        session.execute(
            update(Deal)
            .where(Deal.id == "d1")
            .values(name="Renamed on host B", updated_at=top - timedelta(seconds=5))
        )
    assert newest(sessions, Deal.updated_at) == top  # (count, newest) alone would not move
    after = versions(sessions, Deal)
    assert after != before
    assert versions(sessions, Deal) == after  # and it is stable while nothing is written


def test_an_update_that_commits_after_a_newer_stamped_one_changes_the_assets_fingerprint(sessions):
    insert_asset(sessions, "a1")
    insert_asset(sessions, "a2")
    stamp = utcnow()  # taken by a transaction that commits last
    with sessions.begin() as session:
        session.execute(
            update(Asset).where(Asset.id == "a2").values(updated_at=stamp + timedelta(seconds=1))
        )
    before = versions(sessions, Asset)
    with sessions.begin() as session:
        session.execute(update(Asset).where(Asset.id == "a1").values(title="New", updated_at=stamp))
    assert versions(sessions, Asset) != before


def test_old_rows_leave_the_sum_alone(sessions):
    insert_asset(sessions, "a1")
    with sessions.begin() as session:  # written long ago: outside the recent window
        session.execute(update(Asset).values(updated_at=utcnow() - timedelta(days=2)))
    (name, count, mark) = versions(sessions, Asset)[0]
    assert (name, count) == ("assets", 1)
    assert mark.endswith("+0")
