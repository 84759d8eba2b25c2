"""The sync use case on the in-memory CRM: exact data after kills at any call, deletions, write-back, lock."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from enablement.db.models import Asset, Base, Deal, Share, StageChange, SyncState
from enablement.domain.crm import (
    CrmRefused,
    DealRecord,
    OwnerRecord,
    PipelineRecord,
    StageEntry,
    StageRecord,
)
from enablement.errors import ExternalServiceError
from enablement.services.sync import CURSOR_KEY, FULL_KEY, SWEEP_EVERY, SWEEP_KEY, sync_crm
from enablement.services.writeback import note_marker
from integrations.memory import InMemoryCrm

T0 = datetime(2024, 1, 1, tzinfo=UTC)
SHARED_AT = datetime(2024, 5, 2, 15, 30, tzinfo=UTC)
ACTIVE, ARCHIVED = 10, 2  # deals 1..10 active, 11 and 12 archived


class Killed(Exception):
    """The process died here."""


def make_deal(i: int) -> DealRecord:
    """Deal i: Discovery then Proposal; every third one re-enters Discovery; deal 5 came from Renewals."""
    history = (
        StageEntry(T0 - timedelta(days=40 - i), "s1"),
        StageEntry(T0 - timedelta(days=40 - i, hours=-5), "s2"),
    )
    if i % 3 == 0:
        history += (StageEntry(T0 - timedelta(days=40 - i, hours=-9), "s1"),)
    if i == 5:
        history = (StageEntry(T0 - timedelta(days=60), "r1"), *history)
    return DealRecord(
        id=str(i),
        name=f"D{i}",
        pipeline_id="p",
        created_at=T0 - timedelta(days=60),
        stage_history=history,
    )


def portal() -> InMemoryCrm:
    """Two pipelines, two owners, ten active and two archived deals, all last modified a day before T0."""
    crm = InMemoryCrm(now=T0 - timedelta(days=1), page_size=3, batch_size=4, ids_page_size=5)
    crm.add_pipeline(
        PipelineRecord(
            "p",
            "Sales",
            (
                StageRecord("s1", "Discovery"),
                StageRecord("s2", "Proposal"),
                StageRecord("won", "Closed won", is_closed=True, is_won=True, probability=1.0),
            ),
        )
    )
    crm.add_pipeline(PipelineRecord("q", "Renewals", (StageRecord("r1", "Renewal due"),)))
    crm.add_owner(OwnerRecord("o1", "o1@example.com"))
    crm.add_owner(OwnerRecord("o2", "o2@example.com", archived=True))
    for i in range(1, ACTIVE + ARCHIVED + 1):
        crm.put_deal(make_deal(i))
        if i > ACTIVE:
            crm.archive_deal(str(i))
    crm.advance(timedelta(days=1))
    return crm


def change(crm: InMemoryCrm) -> None:
    """A day of work in the CRM: wins, a re-entry, an archived deal and a new one."""
    crm.advance(timedelta(days=1))
    for i in (1, 3, 7, 9):
        crm.move_deal(str(i), "won")
    crm.move_deal("2", "s1")  # back to Discovery: a re-entry
    crm.archive_deal("4")
    crm.put_deal(
        replace(make_deal(30), created_at=crm.now, stage_history=(StageEntry(crm.now, "s1"),))
    )
    crm.advance(timedelta(hours=1))


@pytest.fixture
def crm() -> InMemoryCrm:
    """The portal, as the first sync finds it."""
    return portal()


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


def expected(crm: InMemoryCrm) -> tuple:
    """The snapshot a correct sync of this CRM leaves (pipeline of each entry resolved)."""
    home = {"r1": "q"}
    deals = sorted((d.id, d.deleted, d.stage_history[-1].stage_id) for d in crm.deals.values())
    changes = sorted(
        (
            (d.id, home.get(e.stage_id, d.pipeline_id), e.stage_id, e.entered_at)
            for d in crm.deals.values()
            for e in d.stage_history
        ),
        key=lambda r: (r[0], r[3]),
    )
    return deals, changes


def clear(sessions) -> None:
    """Empty every table."""
    with sessions.begin() as session:
        for table in reversed(Base.metadata.sorted_tables):
            session.execute(table.delete())


def state(sessions, key: str) -> dict | None:
    """A stored sync state value."""
    with sessions() as session:
        row = session.get(SyncState, key)
        return dict(row.value) if row else None


def comparable(snap: tuple) -> tuple:
    """A snapshot with times made aware (SQLite hands back naive UTC)."""
    deals, changes = snap
    return deals, [(d, p, s, t if t.tzinfo else t.replace(tzinfo=UTC)) for d, p, s, t in changes]


# -- full and incremental sync -----------------------------------------------------------


def test_a_full_sync_stores_every_deal_with_its_exact_history_and_archived_ones_as_deleted(
    crm, sessions
):
    summary = sync_crm(sessions, crm, full=True, now=crm.clock)

    assert comparable(snapshot(sessions)) == expected(crm)
    assert summary.mode == "full" and not summary.resumed
    assert summary.deals.created == ACTIVE + ARCHIVED and summary.deals_read == ACTIVE + ARCHIVED
    assert (summary.pipelines.created, summary.owners.created) == (2, 2)
    assert summary.api_calls == crm.call_counts().calls and summary.retries == 0
    assert state(sessions, FULL_KEY) is None
    assert state(sessions, CURSOR_KEY) == {
        "modified_since": (T0 - timedelta(minutes=5)).isoformat()
    }


def test_a_deal_that_moved_pipelines_keeps_each_entry_in_its_own_pipeline(crm, sessions):
    sync_crm(sessions, crm, full=True, now=crm.clock)
    with sessions() as session:
        pipelines = dict(
            session.execute(
                select(StageChange.stage_id, StageChange.pipeline_id).where(
                    StageChange.deal_id == "5"
                )
            ).all()
        )
    assert pipelines == {"r1": "q", "s1": "p", "s2": "p"}


def test_a_second_full_sync_changes_nothing(crm, sessions):
    sync_crm(sessions, crm, full=True, now=crm.clock)
    again = sync_crm(sessions, crm, full=True, now=crm.clock)
    assert again.deals.unchanged == ACTIVE + ARCHIVED
    assert again.deals.stage_changes_added == again.deals.stage_changes_removed == 0


def test_without_a_cursor_an_incremental_sync_runs_a_full_one(crm, sessions):
    assert sync_crm(sessions, crm, now=crm.clock).mode == "full"


def test_an_incremental_sync_reads_only_changed_deals_and_ends_as_a_full_sync_would(crm, sessions):
    sync_crm(sessions, crm, full=True, now=crm.clock)
    change(crm)

    summary = sync_crm(sessions, crm, now=crm.clock)

    assert summary.mode == "incremental"
    assert summary.deals_read == 6  # four wins, one re-entry, one new deal
    # A day has passed since the full sync: the deletion sweep runs and finds the archived deal.
    assert (summary.deals.created, summary.deals.updated, summary.deleted_by_sweep) == (1, 5, 1)
    assert crm.calls_to("iter_all_deals") == 5  # the full sync's pages only: no listing since
    assert comparable(snapshot(sessions)) == expected(crm)
    assert state(sessions, CURSOR_KEY) == {
        "modified_since": (crm.now - timedelta(minutes=5)).isoformat()
    }


def test_an_archived_deal_is_marked_deleted_and_keeps_its_history(crm, sessions):
    sync_crm(sessions, crm, full=True, now=crm.clock)
    before = [c for c in snapshot(sessions)[1] if c[0] == "4"]
    crm.advance(timedelta(hours=1))
    crm.archive_deal("4")

    summary = sync_crm(sessions, crm, now=crm.clock, sweep=True)

    assert summary.deleted_by_sweep == 1
    deals, changes = snapshot(sessions)
    assert ("4", True, "s2") in deals
    assert [c for c in changes if c[0] == "4"] == before
    assert sync_crm(sessions, crm, now=crm.clock, sweep=True).deleted_by_sweep == 0  # once only


def test_a_purged_deal_is_marked_deleted_by_the_next_sweep_and_keeps_its_history(crm, sessions):
    sync_crm(sessions, crm, full=True, now=crm.clock)
    crm.advance(timedelta(hours=1))
    crm.purge_deal("7")  # neither active nor archived any more

    assert sync_crm(sessions, crm, now=crm.clock).swept is None  # the last sweep is an hour old
    assert ("7", False, "s2") in snapshot(sessions)[0]
    crm.advance(SWEEP_EVERY)
    summary = sync_crm(sessions, crm, now=crm.clock)  # a day later the sweep is due

    assert (summary.swept, summary.deleted_by_sweep) == (ACTIVE - 1, 1)
    deals, changes = snapshot(sessions)
    assert ("7", True, "s2") in deals and any(c[0] == "7" for c in changes)
    assert state(sessions, SWEEP_KEY) == {"at": crm.now.isoformat()}


def test_the_sweep_leaves_deals_from_files_alone(crm, sessions):
    from tests.crm_data import insert_deals, insert_pipeline, sample_deal, sample_pipeline

    insert_pipeline(sessions, sample_pipeline("p1"))
    insert_deals(sessions, sample_deal("from-a-file", pipeline="p1"))
    sync_crm(sessions, crm, full=True, now=crm.clock)
    summary = sync_crm(sessions, crm, now=crm.clock, sweep=True)
    assert summary.deleted_by_sweep == 0
    assert ("from-a-file", False) in {d[:2] for d in snapshot(sessions)[0]}


def test_the_incremental_cost_does_not_depend_on_the_archive(sessions):
    calls = []
    for archived in (0, 400):
        clear(sessions)
        crm = portal()
        for i in range(archived):
            crm.put_deal(make_deal(1_000 + i))
            crm.archive_deal(str(1_000 + i))
        sync_crm(sessions, crm, full=True, now=crm.clock)
        crm.advance(timedelta(hours=1))
        for i in (1, 2, 3):
            crm.move_deal(str(i), "won")
        crm.advance(timedelta(minutes=1))
        before = crm.call_counts().calls
        summary = sync_crm(sessions, crm, now=crm.clock)
        assert summary.deals_read == 3
        calls.append(crm.call_counts().calls - before)
    assert calls == [3, 3]  # pipelines, owners, one page of changed deals


def test_a_resumed_full_sync_leaves_purged_deals_to_the_next_sweep(crm, sessions):
    sync_crm(sessions, crm, full=True, now=crm.clock)
    crm.purge_deal("7")
    crm.fail(after=3, times=1, error=Killed)  # pipelines, owners, one page, then killed
    with pytest.raises(Killed):
        sync_crm(sessions, crm, full=True, now=crm.clock)

    summary = sync_crm(sessions, crm, full=True, now=crm.clock)

    assert summary.resumed and summary.swept is None  # it did not see the first page's ids
    assert ("7", False, "s2") in snapshot(sessions)[0]
    assert sync_crm(sessions, crm, now=crm.clock, sweep=True).deleted_by_sweep == 1


def test_a_full_sync_killed_after_any_call_and_run_again_ends_identical(crm, sessions):
    sync_crm(sessions, crm, full=True, now=crm.clock)
    reference = snapshot(sessions)
    calls, pages = crm.call_counts().calls, crm.calls_to("iter_all_deals")
    assert pages == 5  # 10 active deals in pages of 3, then 2 archived

    for kill_after in range(calls):
        clear(sessions)
        crm.log.clear()
        crm.fail(after=kill_after, times=1, error=Killed)
        with pytest.raises(Killed):
            sync_crm(sessions, crm, full=True, now=crm.clock)
        committed = crm.calls_to("iter_all_deals")
        crm.log.clear()

        summary = sync_crm(sessions, crm, full=True, now=crm.clock)

        assert snapshot(sessions) == reference, f"killed after {kill_after} calls"
        assert summary.resumed == (kill_after >= 2)  # stored once pipelines and owners are in
        assert crm.calls_to("iter_all_deals") == pages - committed  # committed pages not read again


def test_an_incremental_sync_killed_after_any_call_and_run_again_ends_identical(sessions):
    crm = portal()
    sync_crm(sessions, crm, full=True, now=crm.clock)
    change(crm)
    before = crm.call_counts().calls
    sync_crm(sessions, crm, now=crm.clock)
    reference = snapshot(sessions)
    calls = crm.call_counts().calls - before
    assert calls == 6  # pipelines, owners, two pages of changed deals, two pages of the sweep

    for kill_after in range(calls):
        clear(sessions)
        crm = portal()
        sync_crm(sessions, crm, full=True, now=crm.clock)
        change(crm)
        crm.fail(after=kill_after, times=1, error=Killed)
        with pytest.raises(Killed):
            sync_crm(sessions, crm, now=crm.clock)

        sync_crm(sessions, crm, now=crm.clock)

        assert snapshot(sessions) == reference, f"killed after {kill_after} calls"


def test_a_deal_in_an_unknown_pipeline_is_skipped_with_a_warning_after_one_refetch(crm, sessions):
    crm.put_deal(replace(make_deal(40), pipeline_id="ghost"))
    summary = sync_crm(sessions, crm, full=True, now=crm.clock)
    assert summary.skipped == 1
    assert any("unknown pipeline 'ghost'" in w for w in summary.warnings)
    assert crm.calls_to("fetch_pipelines") == 2
    assert "40" not in {d[0] for d in snapshot(sessions)[0]}


def test_progress_is_reported_per_phase(crm, sessions):
    seen: list[tuple[str, int]] = []
    sync_crm(sessions, crm, full=True, now=crm.clock, on_progress=lambda p, n: seen.append((p, n)))
    assert seen[:2] == [("pipelines", 2), ("owners", 2)]
    deals = [n for phase, n in seen if phase == "deals"]
    assert deals == sorted(deals) and deals[-1] == ACTIVE + ARCHIVED


def test_a_failing_crm_ends_the_sync_without_moving_the_cursor(crm, sessions):
    sync_crm(sessions, crm, full=True, now=crm.clock)
    cursor = state(sessions, CURSOR_KEY)
    change(crm)
    crm.fail(method="iter_deals_modified_between")
    with pytest.raises(ExternalServiceError):
        sync_crm(sessions, crm, now=crm.clock)
    assert state(sessions, CURSOR_KEY) == cursor


def test_a_second_sync_on_postgresql_is_refused_while_one_runs(crm, sessions):
    from sqlalchemy import text

    from enablement.errors import Conflict
    from enablement.services.sync import _LOCK_KEY

    engine = sessions.kw["bind"]
    if engine.dialect.name != "postgresql":
        pytest.skip("the guard is PostgreSQL's advisory lock; SQLite is one process")
    with engine.connect() as running:  # another sync holds the lock
        running.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _LOCK_KEY})
        with pytest.raises(Conflict, match="another sync is running"):
            sync_crm(sessions, crm, full=True, now=crm.clock)
        running.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _LOCK_KEY})
        running.commit()
    assert crm.call_counts().calls == 0  # refused before asking the CRM anything
    assert sync_crm(sessions, crm, full=True, now=crm.clock).deals.created == ACTIVE + ARCHIVED


# -- write-back --------------------------------------------------------------------------


@pytest.fixture
def shares(crm, sessions) -> list[int]:
    """Three shares waiting for write-back: two to deal 1, one to deal 2."""
    sync_crm(sessions, crm, full=True, now=crm.clock)
    ids = []
    with sessions.begin() as session:
        session.add(
            Asset(
                id="a1",
                title="Buying <committees>",
                url="https://example.com/a1",
                kind="case_study",
                author="Ann",
            )
        )
        for n, deal_id in enumerate(["1", "1", "2"]):
            share = Share(
                deal_id=deal_id,
                asset_id="a1",
                shared_at=SHARED_AT + timedelta(minutes=n),
                shared_by="rep@example.com" if n == 0 else None,
                channel="email" if n == 0 else None,
                writeback_state="pending",
            )
            session.add(share)
            session.flush()
            ids.append(share.id)
    return ids


def stored_share(sessions, share_id: int) -> Share:
    """The share as stored."""
    with sessions() as session:
        return session.get(Share, share_id)


def notes_per_share(crm: InMemoryCrm, shares: list[int]) -> dict[int, int]:
    """How many notes carry each share's marker."""
    return {s: sum(note_marker(s) in n.body for n in crm.notes) for s in shares}


def test_each_pending_share_becomes_one_note_on_its_deal(crm, sessions, shares):
    summary = sync_crm(sessions, crm, writeback=True, now=crm.clock)

    assert summary.notes_written == 3 and summary.notes_failed == 0
    first = crm.notes[0]
    assert (first.deal_id, first.timestamp) == ("1", SHARED_AT)
    assert first.body == (
        "rep@example.com shared the case study “Buying <committees>” via email.\n"
        f"https://example.com/a1\n{note_marker(shares[0])}"
    )
    assert crm.notes[2].body.startswith("a salesperson shared the case study")
    for share_id, note in zip(shares, crm.notes, strict=True):
        share = stored_share(sessions, share_id)
        assert (share.writeback_state, share.writeback_note_id) == ("done", note.id)

    assert sync_crm(sessions, crm, writeback=True, now=crm.clock).notes_written == 0
    assert notes_per_share(crm, shares) == dict.fromkeys(shares, 1)


def test_without_writeback_no_note_is_written(crm, sessions, shares):
    sync_crm(sessions, crm, now=crm.clock)
    assert crm.notes == [] and stored_share(sessions, shares[0]).writeback_state == "pending"


def test_a_failed_write_back_is_kept_and_retried_by_the_next_sync(crm, sessions, shares):
    crm.fail(method="create_note", times=1)
    summary = sync_crm(sessions, crm, writeback=True, now=crm.clock)
    assert (summary.notes_written, summary.notes_failed) == (2, 1)
    share = stored_share(sessions, shares[0])
    assert share.writeback_state == "failed" and "injected" in share.writeback_error

    sync_crm(sessions, crm, writeback=True, now=crm.clock)
    share = stored_share(sessions, shares[0])
    assert share.writeback_state == "done" and share.writeback_error is None
    assert notes_per_share(crm, shares) == dict.fromkeys(shares, 1)


def test_a_note_created_before_a_crash_is_found_again_not_duplicated(crm, sessions, shares):
    # The CRM created the note, then the process died before recording success.
    existing = crm.create_note("1", f"an earlier attempt\n{note_marker(shares[0])}", SHARED_AT)
    with sessions.begin() as session:
        session.get(Share, shares[0]).writeback_attempts = 1
    summary = sync_crm(sessions, crm, writeback=True, now=crm.clock)
    assert summary.notes_written == 3
    assert stored_share(sessions, shares[0]).writeback_note_id == existing
    assert notes_per_share(crm, shares) == dict.fromkeys(shares, 1)


def test_a_write_back_killed_at_any_call_and_run_again_leaves_one_note_per_share(
    crm, sessions, shares
):
    with sessions() as session:
        open_states = {s: session.get(Share, s).writeback_state for s in shares}
    start = crm.call_counts().calls
    sync_crm(sessions, crm, writeback=True, now=crm.clock)
    calls = crm.call_counts().calls - start
    for kill_after in range(calls):
        crm.notes.clear()
        with sessions.begin() as session:
            for share_id, value in open_states.items():
                share = session.get(Share, share_id)
                share.writeback_state, share.writeback_note_id = value, None
                share.writeback_attempts = 0
        crm.fail(after=kill_after, times=1, error=Killed)
        with pytest.raises(Killed):
            sync_crm(sessions, crm, writeback=True, now=crm.clock)

        sync_crm(sessions, crm, writeback=True, now=crm.clock)

        assert notes_per_share(crm, shares) == dict.fromkeys(shares, 1), (
            f"killed after {kill_after}"
        )
        assert {stored_share(sessions, s).writeback_state for s in shares} == {"done"}


def test_a_share_of_a_deal_the_crm_does_not_know_fails_without_stopping_others(
    crm, sessions, shares
):
    crm.deals.pop("2")
    summary = sync_crm(sessions, crm, writeback=True, now=crm.clock)
    assert (summary.notes_written, summary.notes_failed) == (2, 1)
    assert stored_share(sessions, shares[2]).writeback_state == "failed"


def test_refused_credentials_stop_the_write_back_and_keep_the_share_open(crm, sessions, shares):
    crm.fail(method="create_note", times=1, error=lambda: CrmRefused("the CRM refused the token"))
    with pytest.raises(CrmRefused):
        sync_crm(sessions, crm, writeback=True, now=crm.clock)
    assert crm.notes == []
    assert {stored_share(sessions, s).writeback_state for s in shares} == {"pending"}
    sync_crm(sessions, crm, writeback=True, now=crm.clock)
    assert notes_per_share(crm, shares) == dict.fromkeys(shares, 1)


# -- the command -------------------------------------------------------------------------


def test_the_sync_command_runs_on_the_wired_crm_and_prints_its_summary(crm, runner, container):
    container.crm = crm
    result = runner("sync", "--full")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines() == [
        "sync: full",
        "pipelines: 2 created, 0 updated",
        "owners: 2 created, 0 updated",
        "deals: 12 read, 12 created, 0 updated, 0 deleted, 0 unchanged, 0 skipped",
        "stage changes: 29 added, 0 removed",
        "api calls: 7 (0 retries, 0 rate-limited)",
        "deletion sweep: 12 deals listed in the CRM, 0 gone from the CRM marked deleted",
    ]


def test_without_a_token_the_app_has_no_crm(container):
    assert container.crm is None
