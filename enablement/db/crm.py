"""Writing CRM data (pipelines, owners, deals with complete stage history) in batches.

Shared by file imports, the HubSpot sync and the demo loader, so that every source
produces the same rows. Callers own the transaction; nothing here commits.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import datetime

from sqlalchemy import bindparam, delete, insert, select
from sqlalchemy.orm import Session

from enablement.db.models import CrmStage, Deal, Owner, Pipeline, StageChange
from enablement.db.types import upsert_insert, utcnow
from enablement.domain.crm import UNSET, DealRecord, OwnerRecord, PipelineRecord, StageEntry
from enablement.domain.deal_history import DealState, latest_entry, synced_history
from enablement.domain.stages import suggest_buying_stage
from enablement.errors import InvalidInput

# The source of history entries added by CRM webhook events.
WEBHOOK_SOURCE = "webhook"
_DEAL_FIELDS = (
    "name",
    "company",
    "pipeline_id",
    "amount",
    "currency",
    "industry",
    "owner_id",
    "created_at",
    "closed_at",
    "source_modified_at",
)
# Deals a statement names at once (well below SQLite's bound-value limit).
_CHUNK = 500


@dataclass
class UpsertCounts:
    """How many records an upsert created, updated, left unchanged or marked deleted."""

    created: int = 0
    updated: int = 0
    unchanged: int = 0
    deleted: int = 0
    stage_changes_added: int = 0
    stage_changes_removed: int = 0

    def add(self, other: UpsertCounts) -> None:
        """Accumulate another batch's counts."""
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))

    @property
    def changed(self) -> bool:
        """True when anything was written."""
        return bool(self.created or self.updated or self.deleted)


def upsert_pipelines(
    session: Session, records: Iterable[PipelineRecord], mapped_by: str | None = None
) -> UpsertCounts:
    """Create or update pipelines and stages; suggest buying stages where none is confirmed.

    A stage's confirmed mapping is never replaced by a suggestion; a record that gives a
    buying stage (even None) confirms it.
    """
    counts = UpsertCounts()
    for record in records:
        pipeline = session.get(Pipeline, record.id)
        created = pipeline is None
        if created:
            pipeline = Pipeline(id=record.id, label=record.label)
            session.add(pipeline)
        changed = _assign(
            pipeline,
            label=record.label,
            display_order=record.display_order,
            archived=record.archived,
        )
        existing = {s.id: s for s in pipeline.stages}
        for stage_record in record.stages:
            stage = existing.get(stage_record.id)
            if stage is None:
                stage = CrmStage(
                    pipeline_id=record.id, id=stage_record.id, label=stage_record.label
                )
                pipeline.stages.append(stage)
                changed = True
            changed |= _assign(
                stage,
                label=stage_record.label,
                display_order=stage_record.display_order,
                probability=stage_record.probability,
                is_closed=stage_record.is_closed,
                is_won=stage_record.is_won,
                archived=stage_record.archived,
            )
            changed |= _map_stage(stage, stage_record.buying_stage, mapped_by)
        if created:
            counts.created += 1
        elif changed:
            counts.updated += 1
        else:
            counts.unchanged += 1
    if counts.changed:
        session.flush()
    return counts


def _map_stage(stage: CrmStage, given, mapped_by: str | None) -> bool:
    """Apply a confirmed mapping, or refresh the suggestion of an unconfirmed stage."""
    if given is not UNSET:
        return _assign(
            stage,
            buying_stage=given,
            mapping_source="confirmed",
            mapping_confidence=1.0,
            mapped_by=mapped_by or stage.mapped_by,
        ) and _touch(stage)
    if stage.mapping_source == "confirmed":
        return False
    suggestion = suggest_buying_stage(stage.label, stage.probability, stage.is_closed)
    return _assign(
        stage,
        buying_stage=suggestion.buying_stage,
        mapping_source="suggested",
        mapping_confidence=suggestion.confidence,
    ) and _touch(stage)


def _touch(stage: CrmStage) -> bool:
    stage.mapped_at = utcnow()
    return True


def _assign(obj, **values) -> bool:
    """Set attributes that differ; True when any did."""
    changed = False
    for name, value in values.items():
        if getattr(obj, name) != value:
            setattr(obj, name, value)
            changed = True
    return changed


def upsert_owners(session: Session, records: Iterable[OwnerRecord]) -> UpsertCounts:
    """Create or update CRM owners."""
    counts = UpsertCounts()
    for record in records:
        owner = session.get(Owner, record.id)
        if owner is None:
            session.add(
                Owner(
                    id=record.id,
                    email=record.email,
                    first_name=record.first_name,
                    last_name=record.last_name,
                    archived=record.archived,
                )
            )
            counts.created += 1
        elif _assign(
            owner,
            email=record.email,
            first_name=record.first_name,
            last_name=record.last_name,
            archived=record.archived,
        ):
            counts.updated += 1
        else:
            counts.unchanged += 1
    return counts


def upsert_deals(session: Session, records: Sequence[DealRecord], source: str) -> UpsertCounts:
    """Create or update a batch of deals and make each stored stage history equal the record's.

    Histories are compared as sets of (pipeline, stage, entered_at): only differences are
    written, so re-applying the same data changes nothing. Deleted records mark the deal
    deleted and keep its history. Entries a webhook added after the record's CRM
    modification time are kept: the record was read before they happened.
    """
    counts = UpsertCounts()
    if not records:
        return counts
    ids = [r.id for r in records]
    if len(set(ids)) != len(ids):
        raise InvalidInput("a batch of deals repeats an id")
    _check_pipelines(session, {r.pipeline_id for r in records})
    # NOTE: rows locked in id order (PostgreSQL), as webhook writers lock them, so a history
    # read here cannot miss an entry a webhook commits before this transaction ends.
    deals = {
        d.id: d
        for d in session.scalars(
            select(Deal).where(Deal.id.in_(sorted(ids))).order_by(Deal.id).with_for_update()
        )
    }
    # NOTE: a webhook may be creating one of the missing deals right now: insert them (ON
    # CONFLICT DO NOTHING waits for and yields to its row), then update what it created.
    now = utcnow()
    created = _create_missing_deals(session, [r for r in records if r.id not in deals], now)
    deals.update(lock_deals(session, {r.id for r in records} - deals.keys()))
    stored: dict[str, dict[StageEntry, int]] = defaultdict(dict)
    from_events: dict[str, set[StageEntry]] = defaultdict(set)
    rows = session.execute(
        select(
            StageChange.id,
            StageChange.deal_id,
            StageChange.pipeline_id,
            StageChange.stage_id,
            StageChange.entered_at,
            StageChange.source,
        ).where(StageChange.deal_id.in_(ids))
    )
    for row_id, deal_id, pipeline_id, stage_id, entered_at, entry_source in rows:
        entry = StageEntry(entered_at, stage_id, pipeline_id)
        stored[deal_id][entry] = row_id
        if entry_source == WEBHOOK_SOURCE:
            from_events[deal_id].add(entry)
    to_insert: list[dict] = []
    to_delete: list[int] = []
    for record in records:
        wanted = synced_history(record, from_events.get(record.id, ()))
        deal = deals[record.id]
        values = _deal_values(record, wanted, now)
        if record.deleted and not record.deleted_at and deal.deleted_at:
            values["deleted_at"] = deal.deleted_at
        changed = _assign(deal, **values) or record.id in created
        counts.created += record.id in created
        have = stored.get(record.id, {})
        added = wanted - have.keys()
        removed = have.keys() - wanted
        to_insert += [
            {
                "deal_id": record.id,
                "pipeline_id": e.pipeline_id,
                "stage_id": e.stage_id,
                "entered_at": e.entered_at,
                "source": source,
            }
            for e in added
        ]
        to_delete += [have[key] for key in removed]
        counts.stage_changes_added += len(added)
        counts.stage_changes_removed += len(removed)
        if record.id in created:
            continue
        if record.deleted and changed:
            counts.deleted += 1
        elif changed or added or removed:
            counts.updated += 1
        else:
            counts.unchanged += 1
    session.flush()
    if to_delete:
        session.execute(delete(StageChange).where(StageChange.id.in_(to_delete)))
    if to_insert:
        session.execute(insert(StageChange), to_insert)
    return counts


def _deal_values(record: DealRecord, wanted: set[StageEntry], now: datetime) -> dict:
    """The deal row's columns a CRM record sets, given the history it will have."""
    latest = latest_entry(wanted)
    values = {name: getattr(record, name) for name in _DEAL_FIELDS}
    values.update(
        # NOTE: a file that knows only the current stage (no history) still sets it.
        current_stage_id=latest.stage_id if latest else record.current_stage_id,
        personas=list(record.personas),
        topics=list(record.topics),
        deleted_at=(record.deleted_at or now) if record.deleted else None,
    )
    return values


def _create_missing_deals(session: Session, records: list[DealRecord], now: datetime) -> set[str]:
    """Insert these deals unless another writer has (or is about to); returns the ids this call created."""
    if not records:
        return set()
    rows = [
        {"id": r.id, "updated_at": now, **_deal_values(r, synced_history(r, ()), now)}
        for r in sorted(records, key=lambda r: r.id)
    ]
    result = _insert_ignoring_duplicates(session, Deal.__table__, rows, ["id"], Deal.id)
    return set(result.scalars())


def lock_deals(session: Session, ids: Iterable[str]) -> dict[str, Deal]:
    """The stored deals among `ids`, locked until the transaction ends.

    PostgreSQL: row locks taken in id order, so two writers touching the same deals
    queue on those rows only (and never deadlock); SQLite's BEGIN IMMEDIATE already
    serialises writers.
    """
    wanted = sorted(set(ids))
    if not wanted:
        return {}
    query = select(Deal).where(Deal.id.in_(wanted)).order_by(Deal.id).with_for_update()
    return {deal.id: deal for deal in session.scalars(query)}


def _insert_ignoring_duplicates(
    session: Session, table, rows: list[dict], keys: list[str], *returning
):
    """INSERT ... ON CONFLICT (keys) DO NOTHING on either engine; returns the statement's result.

    With `returning` columns, the result has them for the rows this statement inserted.
    """
    statement = upsert_insert(session, table).on_conflict_do_nothing(index_elements=keys)
    if returning:
        return session.execute(statement.values(rows).returning(*returning))
    return session.execute(statement, rows)


# Deal columns an event may change (DealState's fields, saved together by save_deal_states).
_EVENT_COLUMNS = (
    "name",
    "pipeline_id",
    "current_stage_id",
    "amount",
    "owner_id",
    "industry",
    "personas",
    "topics",
    "created_at",
    "closed_at",
    "deleted_at",
    "merged_into_id",
)


def deal_states(
    session: Session, deals: Iterable[Deal], changed_at: Mapping[tuple[str, str], datetime]
) -> dict[str, DealState]:
    """These (locked) deals as plain records with their stored histories; changed_at: {(deal, field): when}."""
    deals = list(deals)
    histories: dict[str, set[StageEntry]] = defaultdict(set)
    ids = sorted(d.id for d in deals)
    for start in range(0, len(ids), _CHUNK):
        rows = session.execute(
            select(
                StageChange.deal_id,
                StageChange.pipeline_id,
                StageChange.stage_id,
                StageChange.entered_at,
            ).where(StageChange.deal_id.in_(ids[start : start + _CHUNK]))
        )
        for deal_id, pipeline_id, stage_id, entered_at in rows:
            histories[deal_id].add(StageEntry(entered_at, stage_id, pipeline_id))
    fields_by_deal: dict[str, dict[str, datetime]] = defaultdict(dict)
    for (deal_id, name), moment in changed_at.items():
        fields_by_deal[deal_id][name] = moment
    return {
        d.id: DealState(
            id=d.id,
            history=frozenset(histories.get(d.id, ())),
            source_modified_at=d.source_modified_at,
            changed_at=fields_by_deal.get(d.id, {}),
            **{c: getattr(d, c) for c in _EVENT_COLUMNS},
        )
        for d in deals
    }


def save_deal_states(
    session: Session, before: Mapping[str, DealState], after: Mapping[str, DealState], source: str
) -> None:
    """Store what changed between two versions of these deals: their fields in one statement, new history entries.

    NOTE: one executemany with every event column is one round trip; the ORM's flush would
    split the updates by which columns changed. History only grows here (events add entries).
    """
    now = utcnow()
    rows, entries = [], []
    for deal_id in sorted(after):
        new, old = after[deal_id], before.get(deal_id)
        if old is None:
            raise ValueError(f"deal {deal_id} was not loaded")
        entries += [
            (deal_id, e.pipeline_id, e.stage_id, e.entered_at) for e in new.history - old.history
        ]
        values = {c: getattr(new, c) for c in _EVENT_COLUMNS}
        if values != {c: getattr(old, c) for c in _EVENT_COLUMNS}:
            rows.append(
                {"b_id": deal_id, "b_updated_at": now, **{f"b_{c}": v for c, v in values.items()}}
            )
    add_stage_entries(session, entries, source)
    if rows:
        table = Deal.__table__
        statement = (
            table.update()
            .where(table.c.id == bindparam("b_id"))
            .values({c: bindparam(f"b_{c}") for c in (*_EVENT_COLUMNS, "updated_at")})
        )
        session.execute(statement, rows)


def create_deal_if_absent(session: Session, values: dict) -> None:
    """Create a deal row unless one with this id exists (another writer may create it at the same moment)."""
    row = {"personas": [], "topics": [], "name": "", "updated_at": utcnow(), **values}
    _insert_ignoring_duplicates(session, Deal.__table__, [row], ["id"])


def add_stage_entries(
    session: Session, entries: Iterable[tuple[str, str, str, datetime]], source: str
) -> set[tuple[str, str, str, datetime]]:
    """Add (deal, pipeline, stage, entered_at) history entries; ones already stored are skipped; returns the new ones."""
    rows = [
        {"deal_id": d, "pipeline_id": p, "stage_id": s, "entered_at": t, "source": source}
        for d, p, s, t in dict.fromkeys(entries)
    ]
    added: set[tuple[str, str, str, datetime]] = set()
    table = StageChange.__table__
    key = [table.c.deal_id, table.c.pipeline_id, table.c.stage_id, table.c.entered_at]
    # Same order in every writer: no deadlock on the unique index.
    rows.sort(key=lambda r: (r["deal_id"], r["entered_at"], r["pipeline_id"], r["stage_id"]))
    if rows:
        # One cached statement over many parameter sets (batched into multi-row INSERTs).
        statement = (
            upsert_insert(session, table)
            .on_conflict_do_nothing(index_elements=[c.name for c in key])
            .returning(*key)
        )
        added.update(tuple(row) for row in session.execute(statement, rows))
    return added


def stage_index(session: Session) -> dict[str, dict[str, bool]]:
    """Every stored stage id -> {pipeline id: is_closed} (the stage map is small: hundreds of rows)."""
    index: dict[str, dict[str, bool]] = defaultdict(dict)
    for pipeline_id, stage_id, is_closed in session.execute(
        select(CrmStage.pipeline_id, CrmStage.id, CrmStage.is_closed)
    ):
        index[stage_id][pipeline_id] = bool(is_closed)
    return dict(index)


def _check_pipelines(session: Session, pipeline_ids: set[str]) -> None:
    known = set(session.scalars(select(Pipeline.id).where(Pipeline.id.in_(pipeline_ids))))
    unknown = sorted(pipeline_ids - known)
    if unknown:
        raise InvalidInput(f"unknown pipeline(s): {', '.join(unknown)}", {"pipelines": unknown})


def mark_missing_deals_deleted(
    session: Session, present: set[str], offline_sources: Iterable[str], unchanged_since
) -> int:
    """Mark deleted the live CRM deals not in `present` and not written since `unchanged_since`; returns how many.

    A CRM deal is one with a stage change from a source other than `offline_sources`
    (file imports, the demo), which a CRM listing never contains.
    """
    from_crm = (
        select(StageChange.deal_id)
        .where(StageChange.source.not_in(list(offline_sources)))
        .distinct()
    )
    live = session.scalars(
        select(Deal.id).where(
            Deal.deleted_at.is_(None),
            Deal.updated_at < unchanged_since,
            Deal.id.in_(from_crm),
        )
    )
    gone = [deal_id for deal_id in live if deal_id not in present]
    now = utcnow()
    for start in range(0, len(gone), 500):
        for deal in session.scalars(select(Deal).where(Deal.id.in_(gone[start : start + 500]))):
            deal.deleted_at = now
    return len(gone)
