"""Import deals from another CRM's own export: labels become pipeline and stage ids, owners
by name or e-mail become owner ids, then the deals import as any deals file does.

Unknown pipelines and stages are created as the pipelines importer would (suggested buying
stages, flagged for the stage map); everything runs in the deal import's one transaction, so
an import that fails, or a --check, creates nothing.
"""

from __future__ import annotations

import re
import sys
from collections import defaultdict
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from enablement.db.crm import upsert_pipelines
from enablement.db.models import CrmStage, Owner, Pipeline
from enablement.domain.crm import DealRecord, PipelineRecord, StageEntry, StageRecord
from enablement.domain.tags import normalise_tag
from enablement.files.crm_readers import FileRecords
from enablement.files.formats import FileError, ImportResult
from enablement.files.vendor_exports import ForeignDeal, ForeignFile
from enablement.services import crm_imports

_SLUG = re.compile(r"[^a-z0-9]+")


def import_foreign_deals(
    sessions, settings, read: ForeignFile, skip_invalid: bool, check: bool = False, **options
) -> ImportResult:
    """Resolve and import the deals of a CRM export; warnings say what was created or unmatched."""
    records: FileRecords[DealRecord] = FileRecords(
        errors=list(read.errors), warnings=list(read.warnings), label="column"
    )

    def prepare(session: Session, result: ImportResult) -> None:
        stages = _resolve_stages(session, read.deals, result)
        owners = _owner_index(session)
        for deal in read.deals:
            record = _record(deal, stages, owners, result)
            if record is not None:
                records.records.append((deal.line, record))

    return crm_imports.import_deals(
        sessions, settings, records, skip_invalid, check=check, prepare=prepare, **options
    )


def _key(text: str) -> str:
    return normalise_tag(text).casefold()


def _slug(label: str, taken: set[str]) -> str:
    """An id from a label (`Closed Won` -> `closed-won`), unique among taken."""
    base = _SLUG.sub("-", label.casefold()).strip("-")[:56] or "stage"
    candidate, n = base, 1
    while candidate in taken:
        n += 1
        candidate = f"{base}-{n}"
    taken.add(candidate)
    return candidate


def closed_flags(label: str) -> tuple[bool, bool]:
    """(is_closed, is_won) a new stage is given from its label: CRMs name them Closed Won / Closed Lost."""
    words = set(_SLUG.sub(" ", label.casefold()).split())
    won = "won" in words
    lost = bool(words & {"lost", "dead", "disqualified"})
    return won or lost, won


class _Stages:
    """Labels (and ids) of stored and newly created pipelines and stages, by folded text."""

    def __init__(self) -> None:
        self.pipelines: dict[str, str] = {}  # folded label or id -> pipeline id
        self.stages: dict[str, dict[str, str]] = defaultdict(
            dict
        )  # pipeline id -> folded -> stage id
        self.closed: dict[tuple[str, str], bool] = {}

    def pipeline(self, label: str) -> str | None:
        return self.pipelines.get(_key(label))

    def stage(self, pipeline_id: str, label: str) -> str | None:
        return self.stages[pipeline_id].get(_key(label))


def _resolve_stages(session: Session, deals: list[ForeignDeal], result: ImportResult) -> _Stages:
    """Map every pipeline and stage label the deals name to an id, creating the missing ones."""
    known = _Stages()
    stored = session.scalars(select(Pipeline)).all()
    taken_pipelines = {p.id for p in stored}
    for pipeline in stored:
        known.pipelines.setdefault(_key(pipeline.id), pipeline.id)
    for pipeline in stored:
        known.pipelines.setdefault(_key(pipeline.label), pipeline.id)
    for stage in session.scalars(select(CrmStage)):
        known.stages[stage.pipeline_id].setdefault(_key(stage.id), stage.id)
        known.closed[(stage.pipeline_id, stage.id)] = stage.is_closed
    for stage in session.scalars(select(CrmStage)):
        known.stages[stage.pipeline_id].setdefault(_key(stage.label), stage.id)
    # Labels in the order the export shows them: per-stage columns and history, then current.
    wanted: dict[str, list[str]] = defaultdict(list)
    pipeline_labels: dict[str, str] = {}
    for deal in deals:
        pipeline_labels.setdefault(_key(deal.pipeline), deal.pipeline)
        for stage, pipeline, _ in deal.history:
            pipeline_labels.setdefault(_key(pipeline or deal.pipeline), pipeline or deal.pipeline)
            wanted[_key(pipeline or deal.pipeline)].append(stage)
        wanted[_key(deal.pipeline)].append(deal.stage)
    new_records = []
    for folded, label in pipeline_labels.items():
        pipeline_id = known.pipelines.get(folded)
        existing = next((p for p in stored if p.id == pipeline_id), None)
        if pipeline_id is None:
            pipeline_id = _slug(label, taken_pipelines)
            known.pipelines[folded] = pipeline_id
            result.warnings.append(
                {
                    "kind": "pipeline_created",
                    "pipeline": pipeline_id,
                    "message": f"created pipeline {label!r} (id {pipeline_id!r})",
                }
            )
        order = 1 + max((s.display_order for s in existing.stages), default=-1) if existing else 0
        taken_stages = set(known.stages[pipeline_id].values())
        new_stages = []
        for stage_label in dict.fromkeys(wanted[folded]):
            if known.stage(pipeline_id, stage_label) is not None:
                continue
            stage_id = _slug(stage_label, taken_stages)
            known.stages[pipeline_id][_key(stage_label)] = stage_id
            is_closed, is_won = closed_flags(stage_label)
            known.closed[(pipeline_id, stage_id)] = is_closed
            new_stages.append(
                StageRecord(stage_id, stage_label[:255], order, is_closed=is_closed, is_won=is_won)
            )
            order += 1
            result.warnings.append(
                {
                    "kind": "stage_created",
                    "pipeline": pipeline_id,
                    "stage": stage_id,
                    "message": f"created stage {stage_label!r} in pipeline {pipeline_id!r}"
                    f"{' (closed, won)' if is_won else ' (closed)' if is_closed else ''}; "
                    "its buying stage is a suggestion: confirm it in the stage map",
                }
            )
        if new_stages or existing is None:
            new_records.append(
                PipelineRecord(
                    pipeline_id,
                    existing.label if existing else label[:255],
                    tuple(new_stages),
                    existing.display_order if existing else len(stored) + len(new_records),
                    existing.archived if existing else False,
                )
            )
    if new_records:
        upsert_pipelines(session, new_records, mapped_by=None)
    return known


def _owner_index(session: Session) -> dict[str, list[str]]:
    """Folded id, e-mail and full name -> owner ids (a name two owners share lists both)."""
    index: dict[str, list[str]] = defaultdict(list)
    for owner in session.scalars(select(Owner).order_by(Owner.id)):
        keys = {owner.id.casefold()}
        if owner.email:
            keys.add(owner.email.strip().casefold())
        name = " ".join(p for p in (owner.first_name, owner.last_name) if p)
        if name:
            keys.add(_key(name))
        for key in keys:
            index[key].append(owner.id)
    return index


def _owner(deal: ForeignDeal, owners: dict[str, list[str]], result: ImportResult) -> str | None:
    """The owner id the export's owner cell names; a warning (and no owner) when it names nobody or two."""
    if deal.owner is None:
        return None
    found = owners.get(_key(deal.owner)) or owners.get(deal.owner.strip().casefold()) or []
    if len(found) == 1:
        return found[0]
    why = (
        f"matches {len(found)} owners ({', '.join(found[:5])})"
        if found
        else "matches no owner by id, e-mail or name"
        + ("" if owners else " (no owners are stored: run `enablement sync` or import owners)")
    )
    result.warnings.append(
        {
            "kind": "unmatched_owner",
            "line": deal.line,
            "column": deal.owner_column,
            "value": deal.owner,
            "message": f'column "{deal.owner_column}": {deal.owner[:80]!r} {why}; '
            "the deal is imported without an owner",
        }
    )
    return None


def _record(
    deal: ForeignDeal, known: _Stages, owners: dict[str, list[str]], result: ImportResult
) -> DealRecord | None:
    """The DealRecord of a resolved deal; None (with the line's errors) when its dates disagree."""
    pipeline_id = known.pipeline(deal.pipeline)
    stage_id = known.stage(pipeline_id, deal.stage)
    history = []
    for label, pipeline_label, at in deal.history:
        entry_pipeline = known.pipeline(pipeline_label) if pipeline_label else pipeline_id
        history.append(
            StageEntry(
                at,
                sys.intern(known.stage(entry_pipeline, label)),
                None if entry_pipeline == pipeline_id else entry_pipeline,
            )
        )
    history = sorted(set(history))
    if history and (history[-1].stage_id, history[-1].pipeline_id) != (stage_id, None):
        result.warnings.append(
            {
                "kind": "history_ends_elsewhere",
                "line": deal.line,
                "deal": deal.id,
                "message": f"deal {deal.id!r}: the export's history ends in another stage than "
                f"its current stage {deal.stage!r}; the history is imported as the export "
                "gives it",
            }
        )
    # NOTE: CRMs fill Close Date for open deals too (the expected close); only a deal in a
    # closed stage has closed.
    closed_at = deal.closed_at if known.closed.get((pipeline_id, stage_id)) else None
    # A date-only Close Date (midnight) of a deal that entered its closed stage later that
    # day closed when it entered that stage.
    if closed_at is not None and history and history[-1].stage_id == stage_id:
        entered = history[-1].entered_at
        if closed_at < entered < closed_at + timedelta(days=1):
            closed_at = entered
    problems = {}
    if closed_at is not None and closed_at < deal.created_at:
        problems[deal.closed_column or "closed_at"] = ["is earlier than the create date"]
    if problems:
        result.errors.append(FileError(deal.line, problems, "column"))
        return None
    return DealRecord(
        id=deal.id,
        name=deal.name,
        pipeline_id=pipeline_id,
        created_at=deal.created_at,
        stage_history=tuple(history),
        amount=deal.amount,
        currency=deal.currency,
        industry=deal.industry,
        owner_id=_owner(deal, owners, result),
        closed_at=closed_at,
        personas=deal.personas,
        topics=deal.topics,
        company=deal.company,
        current_stage_id=None if history else stage_id,
    )
