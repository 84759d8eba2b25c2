"""Writing CRM data (pipelines, owners, deals with complete stage history) in batches.

Shared by file imports, the HubSpot sync and the demo loader, so that every source
produces the same rows. Callers own the transaction; nothing here commits.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields

from sqlalchemy import delete, insert, select
from sqlalchemy.orm import Session

from enablement.db.models import CrmStage, Deal, Owner, Pipeline, StageChange
from enablement.db.types import utcnow
from enablement.domain.crm import UNSET, DealRecord, OwnerRecord, PipelineRecord, ordered_history
from enablement.domain.stages import suggest_buying_stage
from enablement.errors import InvalidInput

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
    deleted and keep its history.
    """
    counts = UpsertCounts()
    if not records:
        return counts
    ids = [r.id for r in records]
    if len(set(ids)) != len(ids):
        raise InvalidInput("a batch of deals repeats an id")
    _check_pipelines(session, {r.pipeline_id for r in records})
    deals = {d.id: d for d in session.scalars(select(Deal).where(Deal.id.in_(ids)))}
    stored: dict[str, dict[tuple, int]] = defaultdict(dict)
    rows = session.execute(
        select(
            StageChange.id,
            StageChange.deal_id,
            StageChange.pipeline_id,
            StageChange.stage_id,
            StageChange.entered_at,
        ).where(StageChange.deal_id.in_(ids))
    )
    for row_id, deal_id, pipeline_id, stage_id, entered_at in rows:
        stored[deal_id][(pipeline_id, stage_id, entered_at)] = row_id
    now = utcnow()
    to_insert: list[dict] = []
    to_delete: list[int] = []
    for record in records:
        history = ordered_history(record.stage_history)
        wanted = {(e.pipeline_id or record.pipeline_id, e.stage_id, e.entered_at) for e in history}
        current = history[-1].stage_id if history else None
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


def _check_pipelines(session: Session, pipeline_ids: set[str]) -> None:
    known = set(session.scalars(select(Pipeline.id).where(Pipeline.id.in_(pipeline_ids))))
    unknown = sorted(pipeline_ids - known)
    if unknown:
        raise InvalidInput(f"unknown pipeline(s): {', '.join(unknown)}", {"pipelines": unknown})
