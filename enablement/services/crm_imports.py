"""Import pipelines, deals and shares from files, and export deals and shares in the same format.

Every import validates every record first (the file schemas, then checks across records
and against the database) and writes nothing when any record is invalid, unless
skip_invalid. Re-importing the same file changes nothing.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from typing import IO

from marshmallow import Schema, ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from enablement.config import Settings
from enablement.db.crm import UpsertCounts, upsert_deals, upsert_pipelines
from enablement.db.models import Asset, CrmStage, Deal, Pipeline, Share, StageChange
from enablement.domain.crm import UNSET, DealRecord, PipelineRecord, StageEntry, StageRecord
from enablement.domain.timestamps import format_timestamp
from enablement.errors import BadRequest
from enablement.files.crm_schemas import DealFileSchema, PipelineFileSchema, ShareFileSchema
from enablement.files.formats import FileError, ImportResult, read_records, write_records
from enablement.services.shares import NewShare, store_shares

DEAL_BATCH = 500
SHARE_BATCH = 1000
DEAL_COLUMNS = [
    "id",
    "name",
    "company",
    "pipeline",
    "amount",
    "currency",
    "industry",
    "owner_id",
    "created_at",
    "closed_at",
    "personas",
    "topics",
    "stage_history",
    "deleted",
]
SHARE_COLUMNS = ["deal_id", "asset_id", "shared_at", "shared_by", "channel"]
LIST_FIELDS = ("personas", "topics")
# on_progress(done, total): long imports report batches written; the CLI draws a bar.
Progress = Callable[[int, int], None]


def _no_progress(done: int, total: int) -> None:
    """Progress nobody watches."""


# ---------------------------------------------------------------- helpers


def _load_all(stream, fmt, schema: Schema, result: ImportResult, list_fields=()):
    """Parse and load every record; errors go to result; yields (line, loaded dict)."""
    required = [name for name, f in schema.fields.items() if f.required]
    records = read_records(
        stream, fmt, list_fields=list_fields, columns=list(schema.fields), required=required
    )
    for line, raw in records:
        if isinstance(raw, FileError):
            result.errors.append(raw)
            continue
        try:
            yield line, schema.load(raw)
        except ValidationError as e:
            result.errors.append(FileError(line, e.messages))


def _duplicate(result: ImportResult, seen: dict, key, line: int, what: str) -> bool:
    """Record a duplicate-key error naming both lines; True when key was seen before."""
    first = seen.get(key)
    if first is not None:
        result.errors.append(FileError(line, {what: [f"duplicate of line {first}"]}))
        return True
    seen[key] = line
    return False


def _finish(result: ImportResult, total_valid: int, skip_invalid: bool) -> bool:
    """True when the import should write; counts skipped records."""
    if result.errors and not skip_invalid:
        return False
    result.skipped = len({e.line for e in result.errors})
    return total_valid > 0


def _apply(result: ImportResult, counts: UpsertCounts) -> None:
    result.created += counts.created
    result.updated += counts.updated + counts.deleted
    result.unchanged += counts.unchanged


# ---------------------------------------------------------------- pipelines


def import_pipelines(
    sessions: sessionmaker[Session],
    settings: Settings,
    stream: IO[bytes],
    fmt: str,
    skip_invalid: bool,
) -> ImportResult:
    """Create or update pipelines and stages (JSONL); a given buying_stage is a confirmed mapping."""
    if fmt != "jsonl":
        raise BadRequest("pipelines are imported from JSON Lines only (stages are nested)")
    result = ImportResult("pipelines")
    seen: dict[str, int] = {}
    records: list[PipelineRecord] = []
    for line, data in _load_all(stream, fmt, PipelineFileSchema(), result):
        if _duplicate(result, seen, data["id"], line, "id"):
            continue
        record = _pipeline_record(data, position=len(records))
        result.warnings.extend(pipeline_warnings(record, line))
        records.append(record)
    if not _finish(result, len(records), skip_invalid):
        return result
    with sessions.begin() as session:
        _apply(result, upsert_pipelines(session, records, mapped_by="import"))
    return result


def _pipeline_record(data: dict, position: int) -> PipelineRecord:
    """The record of a loaded pipeline; a left-out display_order is the position in the file."""
    stages = tuple(
        StageRecord(
            id=s["id"],
            label=s["label"],
            display_order=index if s["display_order"] is None else s["display_order"],
            probability=s["probability"],
            is_closed=s["is_closed"],
            is_won=s["is_won"],
            archived=s["archived"],
            buying_stage=s.get("buying_stage", UNSET),
        )
        for index, s in enumerate(data["stages"])
    )
    return PipelineRecord(
        id=data["id"],
        label=data["label"],
        stages=stages,
        display_order=position if data["display_order"] is None else data["display_order"],
        archived=data["archived"],
    )


def pipeline_warnings(record: PipelineRecord, line: int) -> list[dict]:
    """What in a valid pipeline would make a report quietly wrong: repeated orders, no closed stage."""
    warnings = []
    orders: dict[int, str] = {}
    for stage in record.stages:
        if stage.display_order in orders:
            warnings.append(
                {
                    "kind": "repeated_display_order",
                    "line": line,
                    "pipeline": record.id,
                    "stages": [orders[stage.display_order], stage.id],
                    "message": "two stages share a display_order: advances between them "
                    "are not counted in the per-CRM-stage cycle time",
                }
            )
        orders.setdefault(stage.display_order, stage.id)
    if not any(stage.is_closed for stage in record.stages):
        warnings.append(
            {
                "kind": "no_closed_stage",
                "line": line,
                "pipeline": record.id,
                "message": "no stage has is_closed: true, so no deal in this pipeline "
                "is ever won or lost",
            }
        )
    return warnings


def export_pipelines(
    sessions: sessionmaker[Session], settings: Settings, out: IO[str], fmt: str
) -> int:
    """Write every pipeline with its stages as JSON Lines, in the format import reads.

    A confirmed mapping is written as the stage's buying_stage (null: deliberately none),
    so re-importing it confirms the same map; a suggestion is left out and suggested again.
    """
    if fmt != "jsonl":
        raise BadRequest("pipelines are exported as JSON Lines only (stages are nested)")
    with sessions() as session:
        pipelines = session.scalars(
            select(Pipeline).order_by(Pipeline.display_order, Pipeline.id)
        ).all()
        rows = [pipeline_row(p) for p in pipelines]
    return write_records(rows, fmt, out, [])


def pipeline_row(pipeline: Pipeline) -> dict:
    """The file form of a pipeline and its stages, in display order."""
    stages = []
    for stage in sorted(pipeline.stages, key=lambda s: (s.display_order, s.id)):
        row = {
            "id": stage.id,
            "label": stage.label,
            "display_order": stage.display_order,
            "probability": stage.probability,
            "is_closed": stage.is_closed,
            "is_won": stage.is_won,
            "archived": stage.archived,
        }
        if stage.mapping_source != "suggested":
            row["buying_stage"] = stage.buying_stage
        stages.append(row)
    return {
        "id": pipeline.id,
        "label": pipeline.label,
        "display_order": pipeline.display_order,
        "archived": pipeline.archived,
        "stages": stages,
    }


# ---------------------------------------------------------------- deals


def _known_stages(session: Session) -> dict[str, set[str]]:
    """pipeline id -> its stage ids, as stored."""
    known: dict[str, set[str]] = {}
    for pipeline_id, stage_id in session.execute(select(CrmStage.pipeline_id, CrmStage.id)):
        known.setdefault(pipeline_id, set()).add(stage_id)
    return known


def _check_deal(data: dict, known: dict[str, set[str]]) -> dict:
    """Errors of a loaded deal against the stored pipelines (empty when fine)."""
    errors: dict = {}
    if data["pipeline"] not in known:
        errors["pipeline"] = [f"unknown pipeline {data['pipeline']!r}; import pipelines first"]
        return errors
    for index, entry in enumerate(data["stage_history"]):
        pipeline = entry.get("pipeline", data["pipeline"])
        if pipeline not in known:
            errors.setdefault("stage_history", {})[index] = {
                "pipeline": [f"unknown pipeline {pipeline!r}"]
            }
        elif entry["stage"] not in known[pipeline]:
            errors.setdefault("stage_history", {})[index] = {
                "stage": [f"unknown stage {entry['stage']!r} in pipeline {pipeline!r}"]
            }
    closed_at = data.get("closed_at")
    if closed_at is not None and closed_at < data["created_at"]:
        errors["closed_at"] = ["earlier than created_at"]
    return errors


def _deal_record(data: dict) -> DealRecord:
    history = tuple(
        StageEntry(
            entered_at=e["entered_at"],
            stage_id=sys.intern(e["stage"]),
            pipeline_id=sys.intern(e["pipeline"]) if "pipeline" in e else None,
        )
        for e in data["stage_history"]
    )
    return DealRecord(
        id=data["id"],
        name=data["name"],
        pipeline_id=data["pipeline"],
        created_at=data["created_at"],
        stage_history=history,
        amount=data["amount"],
        currency=data.get("currency"),
        industry=data.get("industry"),
        owner_id=data.get("owner_id"),
        closed_at=data.get("closed_at"),
        personas=tuple(data["personas"]),
        topics=tuple(data["topics"]),
        company=data.get("company"),
        deleted=data["deleted"],
    )


def import_deals(
    sessions: sessionmaker[Session],
    settings: Settings,
    stream: IO[bytes],
    fmt: str,
    skip_invalid: bool,
    on_progress: Progress = _no_progress,
) -> ImportResult:
    """Create or update deals with their complete stage history, in batches of DEAL_BATCH."""
    result = ImportResult("deals")
    with sessions() as session:
        known = _known_stages(session)
    seen: dict[str, int] = {}
    records: list[DealRecord] = []
    for line, data in _load_all(stream, fmt, DealFileSchema(), result, LIST_FIELDS):
        if _duplicate(result, seen, data["id"], line, "id"):
            continue
        errors = _check_deal(data, known)
        if errors:
            result.errors.append(FileError(line, errors))
            continue
        records.append(_deal_record(data))
    if not _finish(result, len(records), skip_invalid):
        return result
    # NOTE: one transaction for the whole file (all or nothing); the session is emptied per
    # batch so a 100,000-deal file never holds more than one batch of ORM objects.
    with sessions.begin() as session:
        for start in range(0, len(records), DEAL_BATCH):
            _apply(result, upsert_deals(session, records[start : start + DEAL_BATCH], "import"))
            session.flush()
            session.expunge_all()
            on_progress(min(start + DEAL_BATCH, len(records)), len(records))
    return result


def export_deals(
    sessions: sessionmaker[Session], settings: Settings, out: IO[str], fmt: str
) -> int:
    """Write every deal (deleted ones with "deleted": true) in the format import reads."""
    return write_records(_deal_rows(sessions), fmt, out, DEAL_COLUMNS, LIST_FIELDS)


def _deal_rows(sessions) -> Iterator[dict]:
    """Deals ordered by id, read in batches with their histories."""
    with sessions() as session:
        last = ""
        while True:
            deals = session.scalars(
                select(Deal).where(Deal.id > last).order_by(Deal.id).limit(DEAL_BATCH)
            ).all()
            if not deals:
                return
            ids = [d.id for d in deals]
            history: dict[str, list] = {}
            for deal_id, pipeline_id, stage_id, entered_at in session.execute(
                select(
                    StageChange.deal_id,
                    StageChange.pipeline_id,
                    StageChange.stage_id,
                    StageChange.entered_at,
                )
                .where(StageChange.deal_id.in_(ids))
                .order_by(StageChange.deal_id, StageChange.entered_at, StageChange.id)
            ):
                history.setdefault(deal_id, []).append((pipeline_id, stage_id, entered_at))
            for deal in deals:
                yield deal_row(deal, history.get(deal.id, []))
            last = ids[-1]
            session.expunge_all()


def deal_row(deal: Deal, history: list[tuple]) -> dict:
    """The file form of a deal; optional fields that are empty are left out."""
    row: dict = {"id": deal.id, "name": deal.name}
    if deal.company is not None:
        row["company"] = deal.company
    row["pipeline"] = deal.pipeline_id
    row["amount"] = deal.amount
    for key in ("currency", "industry", "owner_id"):
        if getattr(deal, key) is not None:
            row[key] = getattr(deal, key)
    row["created_at"] = format_timestamp(deal.created_at)
    if deal.closed_at is not None:
        row["closed_at"] = format_timestamp(deal.closed_at)
    row["personas"] = list(deal.personas or [])
    row["topics"] = list(deal.topics or [])
    entries = []
    for pipeline_id, stage_id, entered_at in history:
        entry = {"stage": stage_id, "entered_at": format_timestamp(entered_at)}
        if pipeline_id != deal.pipeline_id:
            entry["pipeline"] = pipeline_id
        entries.append(entry)
    row["stage_history"] = entries
    if deal.deleted_at is not None:
        row["deleted"] = True
    return row


# ---------------------------------------------------------------- shares


def import_shares(
    sessions: sessionmaker[Session],
    settings: Settings,
    stream: IO[bytes],
    fmt: str,
    skip_invalid: bool,
) -> ImportResult:
    """Add shares of assets to deals; a share already stored (deal, asset, shared_at) is unchanged."""
    result = ImportResult("shares")
    loaded: list[tuple[int, dict]] = []
    seen: dict[tuple, int] = {}
    for line, data in _load_all(stream, fmt, ShareFileSchema(), result):
        key = (data["deal_id"], data["asset_id"], data["shared_at"])
        if _duplicate(result, seen, key, line, "shared_at"):
            continue
        loaded.append((line, data))
    with sessions() as session:
        deals = _existing(session, Deal.id, {d["deal_id"] for _, d in loaded})
        assets = _existing(session, Asset.id, {d["asset_id"] for _, d in loaded})
    valid = []
    for line, data in loaded:
        errors = {}
        if data["deal_id"] not in deals:
            errors["deal_id"] = [f"unknown deal {data['deal_id']!r}"]
        if data["asset_id"] not in assets:
            errors["asset_id"] = [f"unknown asset {data['asset_id']!r}"]
        if errors:
            result.errors.append(FileError(line, errors))
        else:
            valid.append(data)
    result.errors.sort(key=lambda e: e.line)
    if not _finish(result, len(valid), skip_invalid):
        return result
    with sessions.begin() as session:
        for start in range(0, len(valid), SHARE_BATCH):
            batch = valid[start : start + SHARE_BATCH]
            stored = _stored_shares(session, batch)
            new = []
            for data in batch:
                key = (data["deal_id"], data["asset_id"], data["shared_at"])
                if key in stored:
                    result.unchanged += 1
                    continue
                new.append(
                    NewShare(
                        data["deal_id"],
                        data["asset_id"],
                        data["shared_at"],
                        data.get("shared_by"),
                        data.get("channel"),
                    )
                )
            store_shares(session, settings, new, "import")
            result.created += len(new)
    return result


def _existing(session: Session, column, ids: set[str]) -> set[str]:
    found: set[str] = set()
    ordered = sorted(ids)
    for start in range(0, len(ordered), 1000):
        found |= set(
            session.scalars(select(column).where(column.in_(ordered[start : start + 1000])))
        )
    return found


def _stored_shares(session: Session, batch: list[dict]) -> set[tuple]:
    """(deal, asset, shared_at) of the batch's shares already stored."""
    deal_ids = {d["deal_id"] for d in batch}
    rows = session.execute(
        select(Share.deal_id, Share.asset_id, Share.shared_at).where(Share.deal_id.in_(deal_ids))
    )
    return {tuple(row) for row in rows}


def export_shares(
    sessions: sessionmaker[Session], settings: Settings, out: IO[str], fmt: str
) -> int:
    """Write every share in the format import reads."""
    return write_records(_share_rows(sessions), fmt, out, SHARE_COLUMNS)


def _share_rows(sessions) -> Iterator[dict]:
    with sessions() as session:
        last_id = 0
        while True:
            rows = session.execute(
                select(
                    Share.id,
                    Share.deal_id,
                    Share.asset_id,
                    Share.shared_at,
                    Share.shared_by,
                    Share.channel,
                )
                .where(Share.id > last_id)
                .order_by(Share.id)
                .limit(SHARE_BATCH)
            ).all()
            if not rows:
                return
            for share_id, deal_id, asset_id, shared_at, shared_by, channel in rows:
                row = {
                    "deal_id": deal_id,
                    "asset_id": asset_id,
                    "shared_at": format_timestamp(shared_at),
                }
                if shared_by is not None:
                    row["shared_by"] = shared_by
                if channel is not None:
                    row["channel"] = channel
                yield row
                last_id = share_id
