"""A deal's state and stage history as CRM events and syncs change it: pure rules on plain records.

Stage history is a set of entries (pipeline always filled): an event adds its entry at
occurredAt, whatever order events arrive in, and the current stage is the latest entry
(the same rule for every source: latest_entry). Every other field changes only when the
event is newer than the newest change of that field already applied, and than the deal's
last sync, so a late event never moves a deal back. A synced CRM copy is the whole truth,
except for webhook entries that happened after the copy was read.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

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
    is_newer,
)

# Every stage id -> {pipeline id: is_closed}: a stage id may recur in several pipelines.
StageIndex = Mapping[str, Mapping[str, bool]]

# The start of the reason an event held for a stage no stored pipeline has carries (the inbox
# finds such events by it when a fetch brings HubSpot's pipelines).
HELD_FOR_STAGE = "unknown stage"


@dataclass(frozen=True)
class DealState:
    """What CRM events change on a deal: its fields, its stage history, and when each ordered field last changed."""

    id: str
    pipeline_id: str
    history: frozenset[StageEntry] = frozenset()
    current_stage_id: str | None = None
    name: str = ""
    amount: float | None = None
    owner_id: str | None = None
    industry: str | None = None
    personas: Sequence[str] = ()
    topics: Sequence[str] = ()
    created_at: datetime | None = None
    closed_at: datetime | None = None
    deleted_at: datetime | None = None
    merged_into_id: str | None = None
    # The CRM modification time of the copy the last sync stored (None: never synced).
    source_modified_at: datetime | None = None
    # Ordering field (DealEvent.ordering_field) -> when its newest applied change occurred.
    changed_at: Mapping[str, datetime] = field(default_factory=dict)


@dataclass(frozen=True)
class Outcome:
    """What applying one event came to: its status (APPLIED, IGNORED, PENDING) and why."""

    status: str
    reason: str | None = None
    # PENDING for a stage no stored pipeline has: that stage id (a fetch or sync may bring it).
    held_stage: str | None = None


def latest_entry(history: Iterable[StageEntry]) -> StageEntry | None:
    """The entry that is the current stage: the latest; at the same moment, the greatest stage id."""
    return max(history, default=None)


def is_closed_stage(stages: StageIndex, pipeline_id: str, stage_id: str | None) -> bool:
    """True when the stage is a closed stage of that pipeline."""
    return bool(stage_id and stages.get(stage_id, {}).get(pipeline_id))


def stage_pipeline(stages: StageIndex, stage_id: str, deal_pipeline: str) -> str:
    """The pipeline a stage id belongs to: the deal's own if it has it, else the only pipeline that does."""
    owners = stages.get(stage_id, {})
    if deal_pipeline in owners or len(owners) != 1:
        return deal_pipeline
    return next(iter(owners))


def with_history(deal: DealState, history: Iterable[StageEntry], stages: StageIndex) -> DealState:
    """The deal with this history: its current stage is the latest entry; closed there keeps a close date, open has none."""
    history = frozenset(history)
    latest = latest_entry(history)
    closed_at = None
    if latest is not None and is_closed_stage(stages, latest.pipeline_id, latest.stage_id):
        closed_at = deal.closed_at or latest.entered_at
    return replace(
        deal,
        history=history,
        current_stage_id=latest.stage_id if latest else None,
        closed_at=closed_at,
    )


def apply_event(
    deal: DealState | None, event: DealEvent, stages: StageIndex
) -> tuple[DealState | None, Outcome]:
    """Apply one event (not a merge: merge_deals) to a deal; returns the deal afterwards and the outcome."""
    if deal is None:
        return None, Outcome(PENDING, "unknown deal, and no pipeline is stored to create it in")
    if event.kind == MERGED:
        raise ValueError("a merge changes several deals: use merge_deals")
    if event.kind == CREATED:
        return replace(deal, created_at=event.occurred_at), Outcome(APPLIED)
    if event.kind == CHANGED and event.field is None:
        return deal, Outcome(IGNORED, "a property the product does not track")
    if event.kind == CHANGED and event.field == STAGE:
        if event.value not in stages:
            # NOTE: held, not applied: an entry in no pipeline has no buying stage and no
            # place in a file export; a sync that brings the stage applies it.
            return deal, Outcome(
                PENDING,
                f"{HELD_FOR_STAGE} {event.value!r}: held until a sync brings it",
                held_stage=event.value,
            )
        pipeline = stage_pipeline(stages, event.value, deal.pipeline_id)
        entry = StageEntry(event.occurred_at, event.value, pipeline)
        if entry in deal.history:
            return deal, Outcome(IGNORED, "already in the stage history")
        return with_history(deal, deal.history | {entry}, stages), Outcome(APPLIED)
    # Fields, deletion and restore: the newest change wins.
    ordering = event.ordering_field
    if deal.source_modified_at is not None and event.occurred_at <= deal.source_modified_at:
        return deal, Outcome(IGNORED, "older than the deal's last sync")
    if not is_newer(event.occurred_at, deal.changed_at.get(ordering)):
        return deal, Outcome(IGNORED, f"a newer change of {ordering} is already applied")
    if event.kind == DELETED:
        changed = replace(deal, deleted_at=event.occurred_at)
    elif event.kind == RESTORED:
        changed = replace(deal, deleted_at=None, merged_into_id=None)
    elif event.field == "pipeline_id" and event.value not in _pipelines(stages):
        return deal, Outcome(PENDING, f"unknown pipeline {event.value!r} (run `enablement sync`)")
    elif event.field == "closed_at" and not is_closed_stage(
        stages, deal.pipeline_id, deal.current_stage_id
    ):
        return deal, Outcome(IGNORED, "the close date of an open deal is a forecast, not a close")
    else:
        changed = replace(deal, **{event.field: event.value})
    changed = replace(changed, changed_at={**deal.changed_at, ordering: event.occurred_at})
    return changed, Outcome(APPLIED)


def _pipelines(stages: StageIndex) -> set[str]:
    """Ids of every pipeline that has stages."""
    return {p for owners in stages.values() for p in owners}


def merge_deals(
    winner: DealState, losers: Sequence[DealState], occurred_at: datetime, stages: StageIndex
) -> tuple[DealState, list[DealState]]:
    """Merged deals leave (deleted, pointing at the winner); the winner gets their combined history."""
    left = [
        replace(loser, merged_into_id=winner.id, deleted_at=loser.deleted_at or occurred_at)
        for loser in losers
    ]
    history = winner.history.union(*(loser.history for loser in losers))
    return with_history(winner, history, stages), left


def apply_events(
    deals: Mapping[str, DealState], events: Iterable[tuple[int, DealEvent]], stages: StageIndex
) -> tuple[dict[str, DealState], dict[int, Outcome]]:
    """Apply (key, event) pairs in occurredAt order (then key) to these deals; the deals afterwards and each key's outcome."""
    after = dict(deals)
    outcomes: dict[int, Outcome] = {}
    for key, event in sorted(events, key=lambda item: (item[1].occurred_at, item[0])):
        deal = after.get(event.deal_id)
        if event.kind == MERGED and deal is not None and deal.merged_into_id is not None:
            # NOTE: a deal merged away cannot absorb others: B<-A after A<-B would leave no deal.
            outcome = Outcome(
                IGNORED, f"deal {deal.id} was itself merged into deal {deal.merged_into_id}"
            )
        elif event.kind == MERGED and deal is not None:
            losers = [after[i] for i in event.merged_ids if i in after and i != deal.id]
            deal, left = merge_deals(deal, losers, event.occurred_at, stages)
            after.update((loser.id, loser) for loser in left)
            outcome = Outcome(APPLIED)
        else:
            deal, outcome = apply_event(deal, event, stages)
        if deal is not None:
            after[deal.id] = deal
        outcomes[key] = outcome
    return after, outcomes


def synced_history(
    record: DealRecord, from_webhooks: Iterable[StageEntry]
) -> frozenset[StageEntry]:
    """The history a CRM copy gives its deal: the copy's entries, plus webhook entries after the copy was read.

    The copy was read at its source_modified_at, before those entries happened, so they
    survive; older webhook entries the copy lacks are strays and go. A record without a
    modification time (a file import) is the whole truth.
    """
    own = {
        StageEntry(e.entered_at, e.stage_id, e.pipeline_id or record.pipeline_id)
        for e in record.stage_history
    }
    read_at = record.source_modified_at
    if read_at is None:
        return frozenset(own)
    return frozenset(own.union(e for e in from_webhooks if e.entered_at > read_at))
