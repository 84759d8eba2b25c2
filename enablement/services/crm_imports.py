"""Import pipelines, deals and shares from files, and export deals and shares in the same format.

Every import validates every record first (marshmallow, then checks across records and
against the database) and writes nothing when any record is invalid, unless skip_invalid.
Re-importing the same file changes nothing.
"""

from __future__ import annotations

import json
import math
import re
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import IO

from marshmallow import (
    RAISE,
    Schema,
    ValidationError,
    fields,
    pre_load,
    validate,
    validates_schema,
)
from sqlalchemy import select
from sqlalchemy.orm import Session

from enablement.db.crm import UpsertCounts, upsert_deals, upsert_pipelines
from enablement.db.models import Asset, CrmStage, Deal, Share, StageChange
from enablement.db.versioning import bump_data_version
from enablement.domain.crm import UNSET, DealRecord, PipelineRecord, StageEntry, StageRecord
from enablement.domain.links import link_token, token_hash
from enablement.domain.stages import BUYING_STAGES
from enablement.errors import BadRequest
from enablement.services.files import (
    FileError,
    ImportResult,
    exporter,
    importer,
    read_records,
    write_records,
)

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


# ---------------------------------------------------------------- schemas (one record each)


class _Strict(Schema):
    class Meta:
        unknown = RAISE


_ISO = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}:\d{2})$")


def parse_timestamp(value) -> datetime:
    """An ISO 8601 timestamp with a zone (Z or an offset) as an aware datetime; else ValueError."""
    if not isinstance(value, str) or not _ISO.match(value):
        if isinstance(value, str) and _ISO.match(value + "Z"):
            raise ValueError("the timestamp has no zone; add Z or an offset like +01:00")
        raise ValueError("not an ISO 8601 timestamp with a zone (like 2026-01-05T09:00:00Z)")
    return datetime.fromisoformat(value)


class FileTimestamp(fields.Field):
    """A zoned ISO 8601 timestamp (fast: files carry millions of them)."""

    def _deserialize(self, value, attr, data, **kwargs):
        try:
            return parse_timestamp(value)
        except ValueError as e:
            raise ValidationError(str(e)) from None


def _timestamp(**kwargs) -> FileTimestamp:
    return FileTimestamp(**kwargs)


class StageHistoryField(fields.Field):
    """A non-empty list of {"stage", "entered_at", "pipeline"?}, checked in one tight loop.

    NOTE: a Nested schema per entry made validation the slowest part of a 100,000-deal import.
    """

    KEYS = frozenset({"stage", "entered_at", "pipeline"})
    MAX_ENTRIES = 10_000

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, list):
            raise ValidationError("must be a list of {stage, entered_at}")
        if not value:
            raise ValidationError("must not be empty: the history is complete")
        if len(value) > self.MAX_ENTRIES:
            raise ValidationError(f"more than {self.MAX_ENTRIES} entries")
        entries, errors = [], {}
        for index, entry in enumerate(value):
            problems = self._entry_errors(entry)
            if problems:
                errors[index] = problems
                continue
            loaded = {"stage": entry["stage"], "entered_at": parse_timestamp(entry["entered_at"])}
            if "pipeline" in entry:
                loaded["pipeline"] = entry["pipeline"]
            entries.append(loaded)
        if errors:
            raise ValidationError(errors)
        return entries

    def _entry_errors(self, entry) -> dict:
        if not isinstance(entry, dict):
            return {"_schema": ["must be an object {stage, entered_at}"]}
        problems = {key: ["unknown field"] for key in entry.keys() - self.KEYS}
        for key in ("stage", "pipeline"):
            if key not in entry:
                if key == "stage":
                    problems[key] = ["missing"]
                continue
            text = entry[key]
            if not isinstance(text, str) or not 1 <= len(text) <= 64:
                problems[key] = ["must be a string of 1 to 64 characters"]
        if "entered_at" not in entry:
            problems["entered_at"] = ["missing"]
        else:
            try:
                parse_timestamp(entry["entered_at"])
            except ValueError as e:
                problems["entered_at"] = [str(e)]
        return problems


def _text(max_len: int, **kwargs) -> fields.String:
    return fields.String(validate=validate.Length(min=1, max=max_len), **kwargs)


def _finite(value: float) -> None:
    if not math.isfinite(value):
        raise ValidationError("must be a finite number")


class StageFileSchema(_Strict):
    """A pipeline stage in a pipelines file."""

    id = _text(64, required=True)
    label = _text(255, required=True)
    display_order = fields.Integer(load_default=0, validate=validate.Range(min=0, max=10_000))
    probability = fields.Float(
        allow_none=True, load_default=None, validate=[validate.Range(min=0, max=1), _finite]
    )
    is_closed = fields.Boolean(load_default=False)
    is_won = fields.Boolean(load_default=False)
    archived = fields.Boolean(load_default=False)
    buying_stage = fields.String(allow_none=True, validate=validate.OneOf(BUYING_STAGES))

    @validates_schema
    def _won_is_closed(self, data, **_):
        if data.get("is_won") and not data.get("is_closed"):
            raise ValidationError("a won stage must be closed", "is_won")


class PipelineFileSchema(_Strict):
    """One line of a pipelines file."""

    id = _text(64, required=True)
    label = _text(255, required=True)
    display_order = fields.Integer(load_default=0, validate=validate.Range(min=0, max=10_000))
    archived = fields.Boolean(load_default=False)
    stages = fields.List(
        fields.Nested(StageFileSchema), required=True, validate=validate.Length(min=1, max=500)
    )

    @validates_schema
    def _unique_stage_ids(self, data, **_):
        seen: set[str] = set()
        for stage in data.get("stages", []):
            if stage["id"] in seen:
                raise ValidationError(f"stage id {stage['id']!r} appears twice", "stages")
            seen.add(stage["id"])


class DealFileSchema(_Strict):
    """One line of a deals file."""

    id = _text(64, required=True)
    name = fields.String(required=True, validate=validate.Length(max=500))
    company = fields.String(allow_none=True, validate=validate.Length(max=500))
    pipeline = _text(64, required=True)
    amount = fields.Float(required=True, allow_none=True, validate=[validate.Range(min=0), _finite])
    currency = fields.String(allow_none=True, validate=validate.Regexp(r"^[A-Z]{3}$"))
    industry = fields.String(allow_none=True, validate=validate.Length(max=255))
    owner_id = fields.String(allow_none=True, validate=validate.Length(max=64))
    created_at = _timestamp(required=True)
    closed_at = _timestamp(allow_none=True)
    personas = fields.List(_text(255), load_default=list, validate=validate.Length(max=100))
    topics = fields.List(_text(255), load_default=list, validate=validate.Length(max=100))
    stage_history = StageHistoryField(required=True)
    deleted = fields.Boolean(load_default=False)

    @pre_load
    def _history_from_csv_cell(self, data, **_):
        # CSV carries the history as JSON in one cell.
        if isinstance(data, dict) and isinstance(data.get("stage_history"), str):
            try:
                data = {**data, "stage_history": json.loads(data["stage_history"])}
            except ValueError:
                raise ValidationError("not valid JSON", "stage_history") from None
        return data


class ShareFileSchema(_Strict):
    """One line of a shares file."""

    deal_id = _text(64, required=True)
    asset_id = _text(64, required=True)
    shared_at = _timestamp(required=True)
    shared_by = fields.String(allow_none=True, validate=validate.Length(max=255))
    channel = fields.String(allow_none=True, validate=validate.Length(max=32))


# ---------------------------------------------------------------- helpers


def _progress(iterable, length: int, label: str):
    """The CLI's progress bar (only on a terminal)."""
    if not sys.stderr.isatty():
        from contextlib import nullcontext

        return nullcontext(iterable)
    from enablement.cli import progress

    return progress(iterable, length=length, label=label)


def _load_all(stream, fmt, schema: Schema, result: ImportResult, list_fields=()):
    """Parse and load every record; errors go to result; yields (line, loaded dict)."""
    for line, raw in read_records(stream, fmt, list_fields=list_fields):
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


def _iso(value: datetime | None) -> str | None:
    """UTC ISO 8601 with a Z."""
    if value is None:
        return None
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


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


@importer("pipelines")
def import_pipelines(container, stream: IO[bytes], fmt: str, skip_invalid: bool) -> ImportResult:
    """Create or update pipelines and stages (JSONL); a given buying_stage is a confirmed mapping."""
    if fmt != "jsonl":
        raise BadRequest("pipelines are imported from JSON Lines only (stages are nested)")
    result = ImportResult("pipelines")
    seen: dict[str, int] = {}
    records: list[PipelineRecord] = []
    for line, data in _load_all(stream, fmt, PipelineFileSchema(), result):
        if _duplicate(result, seen, data["id"], line, "id"):
            continue
        records.append(_pipeline_record(data))
    if not _finish(result, len(records), skip_invalid):
        return result
    with container.sessions.begin() as session:
        _apply(result, upsert_pipelines(session, records, mapped_by="import"))
    return result


def _pipeline_record(data: dict) -> PipelineRecord:
    stages = tuple(
        StageRecord(
            id=s["id"],
            label=s["label"],
            display_order=s["display_order"],
            probability=s["probability"],
            is_closed=s["is_closed"],
            is_won=s["is_won"],
            archived=s["archived"],
            buying_stage=s.get("buying_stage", UNSET),
        )
        for s in data["stages"]
    )
    return PipelineRecord(
        id=data["id"],
        label=data["label"],
        stages=stages,
        display_order=data["display_order"],
        archived=data["archived"],
    )


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


@importer("deals")
def import_deals(container, stream: IO[bytes], fmt: str, skip_invalid: bool) -> ImportResult:
    """Create or update deals with their complete stage history, in batches of DEAL_BATCH."""
    result = ImportResult("deals")
    with container.sessions() as session:
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
    batches = range(0, len(records), DEAL_BATCH)
    # NOTE: one transaction for the whole file (all or nothing); the session is emptied per
    # batch so a 100,000-deal file never holds more than one batch of ORM objects.
    with (
        container.sessions.begin() as session,
        _progress(batches, len(batches), "importing deals") as bar,
    ):
        for start in bar:
            _apply(result, upsert_deals(session, records[start : start + DEAL_BATCH], "import"))
            session.flush()
            session.expunge_all()
    return result


@exporter("deals")
def export_deals(container, out: IO[str], fmt: str) -> int:
    """Write every deal (deleted ones with "deleted": true) in the format import reads."""
    return write_records(_deal_rows(container), fmt, out, DEAL_COLUMNS, LIST_FIELDS)


def _deal_rows(container) -> Iterator[dict]:
    """Deals ordered by id, read in batches with their histories."""
    with container.sessions() as session:
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
    row["created_at"] = _iso(deal.created_at)
    if deal.closed_at is not None:
        row["closed_at"] = _iso(deal.closed_at)
    row["personas"] = list(deal.personas or [])
    row["topics"] = list(deal.topics or [])
    entries = []
    for pipeline_id, stage_id, entered_at in history:
        entry = {"stage": stage_id, "entered_at": _iso(entered_at)}
        if pipeline_id != deal.pipeline_id:
            entry["pipeline"] = pipeline_id
        entries.append(entry)
    row["stage_history"] = entries
    if deal.deleted_at is not None:
        row["deleted"] = True
    return row


# ---------------------------------------------------------------- shares


@importer("shares")
def import_shares(container, stream: IO[bytes], fmt: str, skip_invalid: bool) -> ImportResult:
    """Add shares of assets to deals; a share already stored (deal, asset, shared_at) is unchanged."""
    result = ImportResult("shares")
    loaded: list[tuple[int, dict]] = []
    seen: dict[tuple, int] = {}
    for line, data in _load_all(stream, fmt, ShareFileSchema(), result):
        key = (data["deal_id"], data["asset_id"], data["shared_at"])
        if _duplicate(result, seen, key, line, "shared_at"):
            continue
        loaded.append((line, data))
    with container.sessions() as session:
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
    secret = container.settings.secret_key
    writeback = "pending" if container.settings.hubspot_writeback == "notes" else None
    with container.sessions.begin() as session:
        for start in range(0, len(valid), SHARE_BATCH):
            batch = valid[start : start + SHARE_BATCH]
            stored = _stored_shares(session, batch)
            new = []
            for data in batch:
                key = (data["deal_id"], data["asset_id"], data["shared_at"])
                if key in stored:
                    result.unchanged += 1
                    continue
                share = Share(
                    deal_id=data["deal_id"],
                    asset_id=data["asset_id"],
                    shared_at=data["shared_at"],
                    shared_by=data.get("shared_by"),
                    channel=data.get("channel"),
                    source="import",
                    writeback_state=writeback,
                )
                session.add(share)
                new.append(share)
            session.flush()
            for share in new:
                share.link_token_hash = token_hash(link_token(secret, share.id))
            session.flush()
            session.expunge_all()
            result.created += len(new)
        if result.created:
            bump_data_version(session)
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


@exporter("shares")
def export_shares(container, out: IO[str], fmt: str) -> int:
    """Write every share in the format import reads."""
    return write_records(_share_rows(container), fmt, out, SHARE_COLUMNS)


def _share_rows(container) -> Iterator[dict]:
    with container.sessions() as session:
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
                row = {"deal_id": deal_id, "asset_id": asset_id, "shared_at": _iso(shared_at)}
                if shared_by is not None:
                    row["shared_by"] = shared_by
                if channel is not None:
                    row["channel"] = channel
                yield row
                last_id = share_id
