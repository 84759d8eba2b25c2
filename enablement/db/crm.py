"""Writing CRM data (pipelines, owners, deals with complete stage history) in batches.

Shared by file imports, the HubSpot sync and the demo loader, so that every source
produces the same rows. Callers own the transaction; nothing here commits.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields
from datetime import datetime

from sqlalchemy import bindparam, delete, func, insert, select
from sqlalchemy.orm import Session

from enablement.db.models import CrmStage, Deal, Owner, Pipeline, StageChange
from enablement.db.types import utcnow
from enablement.domain.crm import UNSET, DealRecord, OwnerRecord, PipelineRecord, ordered_history
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
    stored: dict[str, dict[tuple, int]] = defaultdict(dict)
    from_events: dict[str, set[tuple]] = defaultdict(set)
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
        stored[deal_id][(pipeline_id, stage_id, entered_at)] = row_id
        if entry_source == WEBHOOK_SOURCE:
            from_events[deal_id].add((pipeline_id, stage_id, entered_at))
    now = utcnow()
    to_insert: list[dict] = []
    to_delete: list[int] = []
    for record in records:
        history = ordered_history(record.stage_history)
        wanted = {(e.pipeline_id or record.pipeline_id, e.stage_id, e.entered_at) for e in history}
        current = history[-1].stage_id if history else None
        read_at = record.source_modified_at
        newer = [k for k in from_events.get(record.id, ()) if read_at and k[2] > read_at]
        if newer:
            wanted.update(newer)
            latest = max(newer, key=lambda k: k[2])
            if not history or latest[2] > history[-1].entered_at:
                current = latest[1]
        values = {name: getattr(record, name) for name in _DEAL_FIELDS}
        values.update(
            current_stage_id=current,
            personas=list(record.personas),
            topics=list(record.topics),
            deleted_at=None,
        )
        deal = deals.get(record.id)
        if record.deleted:
            values["deleted_at"] = deal.deleted_at if deal and deal.deleted_at else now
        if deal is None:
            deal = Deal(id=record.id, **values)
            session.add(deal)
            counts.created += 1
            changed = True
        else:
            changed = _assign(deal, **values)
        have = stored.get(record.id, {})
        added = wanted - have.keys()
        removed = have.keys() - wanted
        to_insert += [
            {
                "deal_id": record.id,
                "pipeline_id": p,
                "stage_id": s,
                "entered_at": t,
                "source": source,
            }
            for p, s, t in added
        ]
        to_delete += [have[key] for key in removed]
        counts.stage_changes_added += len(added)
        counts.stage_changes_removed += len(removed)
        if deal in session.new:
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


def mark_deals_deleted(session: Session, ids: Iterable[str]) -> int:
    """Mark deals deleted (archived in the CRM), keeping their history; returns how many changed."""
    now, changed = utcnow(), 0
    for deal in session.scalars(
        select(Deal).where(Deal.id.in_(list(ids)), Deal.deleted_at.is_(None))
    ):
        deal.deleted_at = now
        changed += 1
    return changed


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


def _insert_ignoring_duplicates(session: Session, table, rows: list[dict], keys: list[str]):
    """INSERT ... ON CONFLICT (keys) DO NOTHING on either engine; returns the statement's result."""
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as dialect_insert
    else:
        from sqlalchemy.dialects.sqlite import insert as dialect_insert
    statement = dialect_insert(table).on_conflict_do_nothing(index_elements=keys)
    return session.execute(statement, rows)


# Deal columns an event may change (saved together by save_changed_deals).
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


def save_changed_deals(session: Session, deals: Iterable[Deal]) -> int:
    """Write the changed ones of these (locked) deals in one statement; returns how many.

    NOTE: the ORM's flush splits updates by which columns changed (one statement per run
    of alike rows); one executemany with every event column is one round trip.
    """
    changed = [d for d in deals if session.is_modified(d)]
    now = utcnow()
    rows = [
        {"b_id": d.id, "b_updated_at": now, **{f"b_{c}": getattr(d, c) for c in _EVENT_COLUMNS}}
        for d in changed
    ]
    for deal in deals:
        if deal in session:
            session.expunge(deal)
    if rows:
        table = Deal.__table__
        statement = (
            table.update()
            .where(table.c.id == bindparam("b_id"))
            .values({c: bindparam(f"b_{c}") for c in (*_EVENT_COLUMNS, "updated_at")})
        )
        session.execute(statement, rows)
    return len(rows)


def create_deal_if_absent(session: Session, values: dict) -> None:
    """Create a deal row unless one with this id exists (another writer may create it at the same moment)."""
    row = {"personas": [], "topics": [], "name": "", "updated_at": utcnow(), **values}
    _insert_ignoring_duplicates(session, Deal.__table__, [row], ["id"])


def add_stage_entries(
    session: Session, entries: Iterable[tuple[str, str, str, datetime]], source: str
) -> set[tuple[str, str, str, datetime]]:
    """Add (deal, pipeline, stage, entered_at) history entries; ones already stored are skipped.

    Returns the entries that were new. A history is a set ordered by time, so entries may
    arrive in any order: a deal's current stage is its latest entry (latest_entries).
    """
    rows = [
        {"deal_id": d, "pipeline_id": p, "stage_id": s, "entered_at": t, "source": source}
        for d, p, s, t in dict.fromkeys(entries)
    ]
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as dialect_insert
    else:
        from sqlalchemy.dialects.sqlite import insert as dialect_insert
    added: set[tuple[str, str, str, datetime]] = set()
    table = StageChange.__table__
    key = [table.c.deal_id, table.c.pipeline_id, table.c.stage_id, table.c.entered_at]
    # Same order in every writer: no deadlock on the unique index.
    rows.sort(key=lambda r: (r["deal_id"], r["entered_at"], r["pipeline_id"], r["stage_id"]))
    if rows:
        # One cached statement over many parameter sets (batched into multi-row INSERTs).
        statement = (
            dialect_insert(table)
            .on_conflict_do_nothing(index_elements=[c.name for c in key])
            .returning(*key)
        )
        added.update(tuple(row) for row in session.execute(statement, rows))
    return added


def latest_entries(
    session: Session, deal_ids: Iterable[str]
) -> dict[str, tuple[str, str, datetime]]:
    """Each deal's latest history entry (pipeline, stage, entered_at): its current stage."""
    ids = sorted(set(deal_ids))
    if not ids:
        return {}
    newest = (
        select(
            StageChange.deal_id,
            StageChange.pipeline_id,
            StageChange.stage_id,
            StageChange.entered_at,
            func.row_number()
            .over(
                partition_by=StageChange.deal_id,
                order_by=(StageChange.entered_at.desc(), StageChange.id.desc()),
            )
            .label("rank"),
        )
        .where(StageChange.deal_id.in_(ids))
        .subquery()
    )
    rows = session.execute(
        select(
            newest.c.deal_id, newest.c.pipeline_id, newest.c.stage_id, newest.c.entered_at
        ).where(newest.c.rank == 1)
    )
    return {deal_id: (p, s, t) for deal_id, p, s, t in rows}


def stage_index(session: Session) -> dict[str, dict[str, bool]]:
    """Every stored stage id -> {pipeline id: is_closed} (the stage map is small: hundreds of rows)."""
    index: dict[str, dict[str, bool]] = defaultdict(dict)
    for pipeline_id, stage_id, is_closed in session.execute(
        select(CrmStage.pipeline_id, CrmStage.id, CrmStage.is_closed)
    ):
        index[stage_id][pipeline_id] = bool(is_closed)
    return dict(index)


def stage_pipeline(stages: dict[str, dict[str, bool]], stage_id: str, deal_pipeline: str) -> str:
    """The pipeline a stage id belongs to: the deal's own if it has it, else the only pipeline that does."""
    owners = stages.get(stage_id, {})
    if deal_pipeline in owners or len(owners) != 1:
        return deal_pipeline
    return next(iter(owners))


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
