"""Reading pipeline, deal and share files into records, with per-line errors.

The edge of the CRM imports: every line goes through its file schema (crm_schemas) and
becomes a record; a line that does not, or repeats the key of an earlier line, becomes a
FileError. Checks against the database (known stages, deals, assets) are the import use
cases' (enablement.services.crm_imports).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import IO, Generic, NamedTuple, TypeVar

from marshmallow import Schema, ValidationError

from enablement.domain.crm import (
    UNSET,
    DealRecord,
    OwnerRecord,
    PipelineRecord,
    StageEntry,
    StageRecord,
)
from enablement.errors import BadRequest
from enablement.files.crm_schemas import (
    LIST_FIELDS,
    DealFileSchema,
    OwnerFileSchema,
    PipelineFileSchema,
    ShareFileSchema,
)
from enablement.files.formats import FileError, read_records

R = TypeVar("R")


@dataclass
class FileRecords(Generic[R]):
    """What a file held: (line, record) for every valid line, errors and warnings by line."""

    records: list[tuple[int, R]] = field(default_factory=list)
    errors: list[FileError] = field(default_factory=list)
    warnings: list[dict] = field(default_factory=list)
    # What the keys of errors are to people: columns of a CSV, fields of JSON Lines.
    label: str = "field"


class ShareRecord(NamedTuple):
    """A share of an asset to a deal, as a share file holds it."""

    deal_id: str
    asset_id: str
    shared_at: datetime
    shared_by: str | None = None
    channel: str | None = None


def read_pipelines(stream: IO[bytes], fmt: str) -> FileRecords[PipelineRecord]:
    """Pipelines with their stages (JSON Lines only); warnings for what would mislead a report."""
    if fmt != "jsonl":
        raise BadRequest("pipelines are imported from JSON Lines only (stages are nested)")
    read: FileRecords[PipelineRecord] = FileRecords()
    for line, data in _read(stream, fmt, PipelineFileSchema(), read, lambda d: d["id"], "id"):
        record = _pipeline_record(data, position=len(read.records))
        read.warnings.extend(pipeline_warnings(record, line))
        read.records.append((line, record))
    return read


def read_deals(stream: IO[bytes], fmt: str) -> FileRecords[DealRecord]:
    """Deals with their complete stage history."""
    read: FileRecords[DealRecord] = FileRecords()
    rows = _read(stream, fmt, DealFileSchema(), read, lambda d: d["id"], "id", LIST_FIELDS)
    read.records.extend((line, _deal_record(data)) for line, data in rows)
    return read


def read_shares(stream: IO[bytes], fmt: str) -> FileRecords[ShareRecord]:
    """Shares; a second line with the same (deal, asset, shared_at) is an error."""
    read: FileRecords[ShareRecord] = FileRecords()
    key = lambda d: (d["deal_id"], d["asset_id"], d["shared_at"])  # noqa: E731
    for line, data in _read(stream, fmt, ShareFileSchema(), read, key, "shared_at"):
        record = ShareRecord(
            data["deal_id"],
            data["asset_id"],
            data["shared_at"],
            data.get("shared_by"),
            data.get("channel"),
        )
        read.records.append((line, record))
    return read


def read_owners(stream: IO[bytes], fmt: str) -> FileRecords[OwnerRecord]:
    """Owners (salespeople): id, e-mail and name, so deals from CRM exports resolve their owner."""
    read: FileRecords[OwnerRecord] = FileRecords()
    for line, data in _read(stream, fmt, OwnerFileSchema(), read, lambda d: d["id"], "id"):
        record = OwnerRecord(
            data["id"],
            data.get("email"),
            data.get("first_name"),
            data.get("last_name"),
            data["archived"],
        )
        read.records.append((line, record))
    return read


def _read(
    stream, fmt, schema: Schema, read: FileRecords, key: Callable, key_field: str, list_fields=()
) -> Iterator[tuple[int, dict]]:
    """Parse and load every line; errors (and repeated keys) go to read; yields (line, loaded)."""
    required = [name for name, f in schema.fields.items() if f.required]
    read.label = "column" if fmt == "csv" else "field"
    lines = read_records(
        stream, fmt, list_fields=list_fields, columns=list(schema.fields), required=required
    )
    seen: dict = {}
    for line, raw in lines:
        if isinstance(raw, FileError):
            raw.label = read.label
            read.errors.append(raw)
            continue
        try:
            data = schema.load(raw)
        except ValidationError as e:
            read.errors.append(FileError(line, e.messages, read.label))
            continue
        first = seen.setdefault(key(data), line)
        if first != line:
            read.errors.append(
                FileError(line, {key_field: [f"duplicate of line {first}"]}, read.label)
            )
            continue
        yield line, data


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


def _deal_record(data: dict) -> DealRecord:
    """The record of a loaded deal (stage and pipeline ids interned: a big file repeats them)."""
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
        current_stage_id=None if history else data.get("stage"),
        deleted_at=data.get("deleted_at") if data["deleted"] else None,
    )
