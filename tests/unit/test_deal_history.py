"""What CRM events and syncs do to a deal's state and history (pure: plain records, no database)."""

from __future__ import annotations

import itertools
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from enablement.domain.crm import DealRecord, StageEntry
from enablement.domain.deal_events import (
    APPLIED,
    CHANGED,
    CREATED,
    DELETED,
    IGNORED,
    MERGED,
    PENDING,
    RESTORED,
    STAGE,
    DealEvent,
    EventKey,
)
from enablement.domain.deal_history import (
    DealState,
    apply_event,
    apply_events,
    latest_entry,
    merge_deals,
    synced_history,
)

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
# Stage id -> {pipeline: is_closed}: p1 has disc, demo, won (closed); p2 has its own "start".
STAGES = {
    "disc": {"p1": False},
    "demo": {"p1": False},
    "won": {"p1": True},
    "start": {"p2": False},
}
_ids = itertools.count(1)


def at(days: float) -> datetime:
    """A moment `days` after T0."""
    return T0 + timedelta(days=days)


def ev(days: float, kind: str = CHANGED, deal: str = "d1", **values) -> DealEvent:
    """An event on a deal `days` after T0, under a fresh key."""
    key = EventKey("1", "12", str(next(_ids)), at(days))
    return DealEvent(key=key, kind=kind, deal_id=deal, subscription_type="deal.test", **values)


def stage(days: float, stage_id: str, deal: str = "d1") -> DealEvent:
    """A stage change."""
    return ev(days, field=STAGE, value=stage_id, deal=deal)


def deal(deal_id: str = "d1", **overrides) -> DealState:
    """A deal in p1: disc at T0, demo at day 3 (its current stage)."""
    values = {
        "id": deal_id,
        "pipeline_id": "p1",
        "history": frozenset({StageEntry(at(0), "disc", "p1"), StageEntry(at(3), "demo", "p1")}),
        "current_stage_id": "demo",
        "amount": 1000.0,
        "created_at": at(0),
        **overrides,
    }
    return DealState(**values)


def apply_all(state: DealState, *events: DealEvent, others: tuple[DealState, ...] = ()):
    """The deals after these events, and the outcome of each event in the order given."""
    keyed = list(enumerate(events))
    after, outcomes = apply_events({d.id: d for d in (state, *others)}, keyed, STAGES)
    return after, [outcomes[i] for i, _ in keyed]


def stages_of(state: DealState) -> list[str]:
    """The history's stage ids, oldest first."""
    return [e.stage_id for e in sorted(state.history)]


# -- stage history ------------------------------------------------------------------------


def test_stage_events_in_any_order_give_the_same_history_and_current_stage():
    events = [stage(5, "disc"), stage(6, "demo"), stage(7, "won")]
    results = {
        (tuple(stages_of(s["d1"])), s["d1"].current_stage_id, s["d1"].closed_at)
        for order in itertools.permutations(events)
        for s in [apply_all(deal(), *order)[0]]
    }
    assert results == {(("disc", "demo", "disc", "demo", "won"), "won", at(7))}


def test_a_late_stage_event_adds_its_entry_but_never_moves_the_deal_back():
    after, outcomes = apply_all(deal(), stage(10, "won"), stage(8, "disc"))
    assert outcomes[1].status == APPLIED
    assert stages_of(after["d1"])[-2:] == ["disc", "won"]
    assert after["d1"].current_stage_id == "won"


def test_the_same_entry_twice_is_applied_once():
    after, outcomes = apply_all(deal(), stage(5, "won"), stage(5, "won"))
    assert [o.status for o in outcomes] == [APPLIED, IGNORED]
    assert outcomes[1].reason == "already in the stage history"
    assert len(after["d1"].history) == 3


def test_an_entry_already_in_the_stored_history_is_ignored():
    state, outcome = apply_event(deal(), stage(3, "demo"), STAGES)
    assert outcome.status == IGNORED and state == deal()


def test_a_stage_of_another_pipeline_is_recorded_in_that_pipeline():
    state, _ = apply_event(deal(), stage(5, "start"), STAGES)
    assert latest_entry(state.history) == StageEntry(at(5), "start", "p2")


def test_leaving_a_closed_stage_clears_the_close_date_and_entering_one_sets_it():
    closed, _ = apply_event(deal(), stage(5, "won"), STAGES)
    assert closed.closed_at == at(5)
    reopened, _ = apply_event(closed, stage(6, "demo"), STAGES)
    assert (reopened.current_stage_id, reopened.closed_at) == ("demo", None)


def test_at_the_same_moment_the_greater_stage_id_is_current_as_for_every_source():
    assert latest_entry({StageEntry(at(1), "b"), StageEntry(at(1), "a")}).stage_id == "b"
    assert latest_entry([]) is None


# -- fields: the newest change wins -------------------------------------------------------


def test_a_late_field_change_never_overwrites_a_newer_one():
    newer, _ = apply_event(deal(), ev(6, field="amount", value=7.0), STAGES)
    state, outcome = apply_event(newer, ev(5, field="amount", value=5.0), STAGES)
    assert state.amount == 7.0
    assert outcome.status == IGNORED and "newer change of amount" in outcome.reason


def test_in_one_batch_changes_apply_in_occurred_order_whatever_the_arrival():
    after, outcomes = apply_all(
        deal(), ev(6, field="amount", value=7.0), ev(5, field="amount", value=5.0)
    )
    assert after["d1"].amount == 7.0 and after["d1"].changed_at["amount"] == at(6)
    assert [o.status for o in outcomes] == [APPLIED, APPLIED]


def test_field_changes_arriving_out_of_order_end_at_the_newest_value():
    changes = [ev(d, field="amount", value=float(d)) for d in (4, 9, 6)]
    for order in itertools.permutations(changes):
        assert apply_all(deal(), *order)[0]["d1"].amount == 9.0


def test_a_change_no_newer_than_the_newest_applied_one_is_ignored_after_a_restart():
    stored = deal(changed_at={"amount": at(6)})
    for days in (6, 5):
        state, outcome = apply_event(stored, ev(days, field="amount", value=1.0), STAGES)
        assert outcome.status == IGNORED and state.amount == 1000.0
    state, outcome = apply_event(stored, ev(7, field="amount", value=1.0), STAGES)
    assert (outcome.status, state.amount, state.changed_at["amount"]) == (APPLIED, 1.0, at(7))


def test_a_change_older_than_the_last_sync_is_ignored():
    synced = deal(source_modified_at=at(5))
    state, outcome = apply_event(synced, ev(5, field="name", value="Old"), STAGES)
    assert (outcome.status, outcome.reason) == (IGNORED, "older than the deal's last sync")
    state, outcome = apply_event(synced, ev(5.1, field="name", value="New"), STAGES)
    assert (outcome.status, state.name) == (APPLIED, "New")


def test_the_close_date_of_an_open_deal_is_a_forecast_not_a_close():
    state, outcome = apply_event(deal(), ev(5, field="closed_at", value=at(30)), STAGES)
    assert outcome.status == IGNORED and "forecast" in outcome.reason
    assert state.closed_at is None


def test_the_close_date_of_a_closed_deal_is_kept_even_when_it_closed_in_the_same_batch():
    after, outcomes = apply_all(deal(), ev(5.5, field="closed_at", value=at(5)), stage(5, "won"))
    assert [o.status for o in outcomes] == [APPLIED, APPLIED]
    assert after["d1"].closed_at == at(5)


def test_an_untracked_property_changes_nothing():
    state, outcome = apply_event(deal(), ev(5, field=None, value=None), STAGES)
    assert outcome.status == IGNORED and state == deal()


def test_a_move_to_an_unknown_pipeline_waits_with_its_reason():
    state, outcome = apply_event(deal(), ev(5, field="pipeline_id", value="p9"), STAGES)
    assert outcome.status == PENDING and "unknown pipeline 'p9'" in outcome.reason
    moved, outcome = apply_event(deal(), ev(5, field="pipeline_id", value="p2"), STAGES)
    assert (outcome.status, moved.pipeline_id) == (APPLIED, "p2")


def test_an_event_for_a_deal_not_loaded_waits():
    state, outcome = apply_event(None, stage(5, "won"), STAGES)
    assert state is None and outcome.status == PENDING


def test_a_creation_event_sets_when_the_deal_was_created():
    state, outcome = apply_event(deal(), ev(-1, kind=CREATED), STAGES)
    assert (outcome.status, state.created_at) == (APPLIED, at(-1))


# -- deletion, restore, merge -------------------------------------------------------------


def test_deletion_and_restore_follow_occurred_at_not_arrival():
    deleted = ev(5, kind=DELETED)
    restored = ev(6, kind=RESTORED)
    for order in ((deleted, restored), (restored, deleted)):
        assert apply_all(deal(), *order)[0]["d1"].deleted_at is None
    late_delete = ev(7, kind=DELETED)
    after, _ = apply_all(deal(), late_delete, restored)
    assert after["d1"].deleted_at == at(7)


def test_a_restore_also_undoes_a_merge():
    merged = deal(deleted_at=at(4), merged_into_id="d9")
    state, _ = apply_event(merged, ev(5, kind=RESTORED), STAGES)
    assert (state.deleted_at, state.merged_into_id) == (None, None)


def test_a_merge_retires_the_merged_deals_into_the_winner_with_their_combined_history():
    loser = deal(
        "d2", history=frozenset({StageEntry(at(1), "disc", "p1"), StageEntry(at(8), "won", "p1")})
    )
    after, outcomes = apply_all(
        deal(), ev(9, kind=MERGED, merged_ids=("d2", "d404")), others=(loser,)
    )
    assert outcomes[0].status == APPLIED
    winner, gone = after["d1"], after["d2"]
    assert stages_of(winner) == ["disc", "disc", "demo", "won"]
    assert (winner.current_stage_id, winner.closed_at) == ("won", at(8))
    assert (gone.merged_into_id, gone.deleted_at, gone.history) == ("d1", at(9), loser.history)


def test_a_merge_keeps_an_earlier_deletion_time_of_a_merged_deal():
    _, (gone,) = merge_deals(deal(), [deal("d2", deleted_at=at(2))], at(9), STAGES)
    assert gone.deleted_at == at(2)


def test_a_merge_into_a_deal_not_loaded_waits():
    after, outcomes = apply_all(deal("d2"), ev(9, kind=MERGED, deal="d1", merged_ids=("d2",)))
    assert outcomes[0].status == PENDING and after["d2"].merged_into_id is None


def test_apply_event_refuses_a_merge_which_changes_several_deals():
    with pytest.raises(ValueError, match="merge_deals"):
        apply_event(deal(), ev(9, kind=MERGED, merged_ids=("d2",)), STAGES)


# -- a sync meets webhook entries ---------------------------------------------------------


def record(**overrides) -> DealRecord:
    """The CRM's copy of d1: disc at T0, demo at day 3, read at day 5."""
    values = {
        "id": "d1",
        "name": "Acme",
        "pipeline_id": "p1",
        "created_at": at(0),
        "stage_history": (StageEntry(at(0), "disc"), StageEntry(at(3), "demo")),
        "source_modified_at": at(5),
        **overrides,
    }
    return DealRecord(**values)


def test_entries_newer_than_the_crm_read_survive_a_sync_and_older_strays_go():
    webhook = {StageEntry(at(4), "won", "p1"), StageEntry(at(6), "disc", "p1")}
    history = synced_history(record(), webhook)
    assert sorted(history) == [
        StageEntry(at(0), "disc", "p1"),
        StageEntry(at(3), "demo", "p1"),
        StageEntry(at(6), "disc", "p1"),
    ]
    assert latest_entry(history).stage_id == "disc"


def test_an_entry_at_the_moment_of_the_crm_read_is_in_the_copy_already():
    assert StageEntry(at(5), "won", "p1") not in synced_history(
        record(), {StageEntry(at(5), "won", "p1")}
    )


def test_a_copy_without_a_read_time_is_the_whole_truth():
    copy = record(source_modified_at=None)
    assert synced_history(copy, {StageEntry(at(6), "won", "p1")}) == synced_history(copy, ())
    assert len(synced_history(copy, ())) == 2


def test_a_copys_entries_without_a_pipeline_are_in_the_deals_pipeline():
    copy = record(stage_history=(StageEntry(at(0), "start", "p2"), StageEntry(at(1), "disc")))
    assert {e.pipeline_id for e in synced_history(copy, ())} == {"p1", "p2"}


def test_events_applied_again_after_a_sync_change_nothing():
    synced = replace(deal(), source_modified_at=at(5), history=synced_history(record(), ()))
    after, outcomes = apply_all(synced, stage(3, "demo"), ev(4, field="amount", value=1.0))
    assert [o.status for o in outcomes] == [IGNORED, IGNORED]
    assert after["d1"] == synced


def test_merging_back_a_deal_that_absorbed_the_winner_never_deletes_both():
    a, b = deal("d1"), deal("d2")
    after, outcomes = apply_all(
        a,
        ev(9, kind=MERGED, deal="d1", merged_ids=("d2",)),
        ev(10, kind=MERGED, deal="d2", merged_ids=("d1",)),
        others=(b,),
    )
    assert [outcomes[0].status, outcomes[1].status] == [APPLIED, IGNORED]
    assert "merged into deal d1" in outcomes[1].reason
    assert after["d1"].deleted_at is None and after["d1"].merged_into_id is None
    assert after["d2"].merged_into_id == "d1"


def test_a_deal_named_among_its_own_merged_ids_is_not_deleted():
    after, outcomes = apply_all(deal("d1"), ev(9, kind=MERGED, merged_ids=("d1",)))
    assert outcomes[0].status == APPLIED
    assert after["d1"].deleted_at is None and after["d1"].merged_into_id is None
