"""Import pipelines, deals and shares: records read from a file (files.crm_readers), checked and stored.

Every import checks every record (against each other and the database) and writes nothing
when any record is invalid, unless skip_invalid. Re-importing the same file changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import select
from sqlalchemy.orm import Session

from enablement.db import transaction
from enablement.db.crm import UpsertCounts, upsert_deals, upsert_owners, upsert_pipelines
from enablement.db.models import Asset, CrmStage, Deal, Share
from enablement.domain.crm import Crm, DealRecord, OwnerRecord, PipelineRecord
from enablement.files.crm_readers import FileRecords, ShareRecord
from enablement.files.formats import FileError, ImportResult
from enablement.services.nudges import after_stage_entries
from enablement.services.shares import NewShare, store_shares

DEAL_BATCH = 500
SHARE_BATCH = 1000
# on_progress(done, total): long imports report batches written; the CLI draws a bar.
Progress = Callable[[int, int], None]


def _no_progress(done: int, total: int) -> None:
    """Progress nobody watches."""


def _result(kind: str, read: FileRecords, check: bool = False) -> ImportResult:
    """A result that starts with the file's own errors and warnings."""
    return ImportResult(kind, errors=list(read.errors), warnings=list(read.warnings), checked=check)


def _finish(result: ImportResult, total_valid: int, skip_invalid: bool) -> bool:
    """True when the import should write; errors in line order, skipped records counted."""
    result.errors.sort(key=lambda e: (e.file, e.line))
    if result.errors and not skip_invalid:
        return False
    result.skipped = len({e.line for e in result.errors if not e.file})
    return total_valid > 0


def _apply(result: ImportResult, counts: UpsertCounts) -> None:
    result.created += counts.created
    result.updated += counts.updated + counts.deleted
    result.unchanged += counts.unchanged


def _import_all(sessions, kind: str, read: FileRecords, skip_invalid: bool, check: bool, upsert):
    """Every record of a file in one transaction through upsert(session, records) -> counts."""
    result = _result(kind, read, check)
    records = [record for _, record in read.records]
    if not _finish(result, len(records), skip_invalid):
        return result
    with transaction(sessions, check) as session:
        _apply(result, upsert(session, records))
    return result


def import_pipelines(
    sessions, settings, read: FileRecords[PipelineRecord], skip_invalid: bool, check: bool = False
) -> ImportResult:
    """Create or update pipelines and stages; a given buying_stage is a confirmed mapping."""
    return _import_all(
        sessions,
        "pipelines",
        read,
        skip_invalid,
        check,
        lambda session, records: upsert_pipelines(session, records, mapped_by="import"),
    )


def import_owners(
    sessions, settings, read: FileRecords[OwnerRecord], skip_invalid: bool, check: bool = False
) -> ImportResult:
    """Create or update owners (what a sync stores), so owner names and e-mails resolve."""
    return _import_all(sessions, "owners", read, skip_invalid, check, upsert_owners)


def _known_stages(session: Session) -> dict[str, set[str]]:
    """pipeline id -> its stage ids, as stored."""
    known: dict[str, set[str]] = {}
    for pipeline_id, stage_id in session.execute(select(CrmStage.pipeline_id, CrmStage.id)):
        known.setdefault(pipeline_id, set()).add(stage_id)
    return known


def _check_deal(record: DealRecord, known: dict[str, set[str]]) -> dict:
    """Errors of a deal against the stored pipelines (empty when fine)."""
    errors: dict = {}
    if record.pipeline_id not in known:
        errors["pipeline"] = [f"unknown pipeline {record.pipeline_id!r}; import pipelines first"]
        return errors
    for index, entry in enumerate(record.stage_history):
        pipeline = record.pipeline_id if entry.pipeline_id is None else entry.pipeline_id
        if pipeline not in known:
            errors.setdefault("stage_history", {})[index] = {
                "pipeline": [f"unknown pipeline {pipeline!r}"]
            }
        elif entry.stage_id not in known[pipeline]:
            errors.setdefault("stage_history", {})[index] = {
                "stage": [f"unknown stage {entry.stage_id!r} in pipeline {pipeline!r}"]
            }
    current = record.current_stage_id
    if current is not None and current not in known[record.pipeline_id]:
        errors["stage"] = [f"unknown stage {current!r} in pipeline {record.pipeline_id!r}"]
    if record.closed_at is not None and record.closed_at < record.created_at:
        errors["closed_at"] = ["earlier than created_at"]
    return errors


def import_deals(
    sessions,
    settings,
    read: FileRecords[DealRecord],
    skip_invalid: bool,
    on_progress: Progress = _no_progress,
    batch: int = DEAL_BATCH,
    crm: Crm | None = None,
    check: bool = False,
    prepare: Callable | None = None,
) -> ImportResult:
    """Create or update deals with their complete stage history, `batch` deals per write; then
    the nudges of their stage entries (after the commit; none for a dry run, and entries older
    than NUDGE_WINDOW_HOURS, a backfill, get none).

    prepare(session, result) runs first in the same transaction (a CRM export's importer
    creates the pipelines and stages its deals name there); check makes it a dry run.
    """
    result = _result("deals", read, check)
    if prepare is not None:
        try:
            with transaction(sessions, check) as session:
                written = _import_deals_in(
                    session, result, read, skip_invalid, on_progress, batch, prepare
                )
        except _NothingWritten:
            return result
        if not check:
            after_stage_entries(sessions, settings, crm, written)
        return result
    with sessions() as session:
        known = _known_stages(session)
    records: list[DealRecord] = []
    for line, record in read.records:
        errors = _check_deal(record, known)
        if errors:
            result.errors.append(FileError(line, errors, read.label))
        else:
            records.append(record)
    if not _finish(result, len(records), skip_invalid):
        return result
    # NOTE: one transaction for the whole file (all or nothing); the session is emptied per
    # batch so a 100,000-deal file never holds more than one batch of ORM objects.
    with transaction(sessions, check) as session:
        _write_deals(session, result, records, on_progress, batch)
    if not check:
        after_stage_entries(sessions, settings, crm, [r.id for r in records])
    return result


def _import_deals_in(session, result, read, skip_invalid, on_progress, batch, prepare) -> list[str]:
    """Prepare (create what the deals need), check every deal, write: all in one transaction."""
    prepare(session, result)
    session.flush()
    known = _known_stages(session)
    records = []
    for line, record in read.records:
        errors = _check_deal(record, known)
        if errors:
            result.errors.append(FileError(line, errors, read.label))
        else:
            records.append(record)
    if not _finish(result, len(records), skip_invalid):
        # What prepare created goes too: an import that fails writes nothing.
        raise _NothingWritten
    _write_deals(session, result, records, on_progress, batch)
    return [r.id for r in records]


class _NothingWritten(Exception):
    """Raised inside an import's transaction to roll back everything it did."""


def _write_deals(session, result, records, on_progress, batch) -> None:
    for start in range(0, len(records), batch):
        _apply(result, upsert_deals(session, records[start : start + batch], "import"))
        session.flush()
        session.expunge_all()
        on_progress(min(start + batch, len(records)), len(records))


def import_shares(
    sessions,
    settings,
    read: FileRecords[ShareRecord],
    skip_invalid: bool,
    batch: int = SHARE_BATCH,
    check: bool = False,
) -> ImportResult:
    """Add shares of assets to deals; a share already stored (deal, asset, shared_at) is unchanged."""
    result = _result("shares", read, check)
    with sessions() as session:
        deals = _existing(session, Deal.id, {r.deal_id for _, r in read.records})
        assets = _existing(session, Asset.id, {r.asset_id for _, r in read.records})
    valid: list[ShareRecord] = []
    for line, record in read.records:
        errors = {}
        if record.deal_id not in deals:
            errors["deal_id"] = [f"unknown deal {record.deal_id!r}"]
        if record.asset_id not in assets:
            errors["asset_id"] = [f"unknown asset {record.asset_id!r}"]
        if errors:
            result.errors.append(FileError(line, errors, read.label))
        else:
            valid.append(record)
    if not _finish(result, len(valid), skip_invalid):
        return result
    with transaction(sessions, check) as session:
        for start in range(0, len(valid), batch):
            chunk = valid[start : start + batch]
            stored = _stored_shares(session, chunk)
            new = [
                NewShare(r.deal_id, r.asset_id, r.shared_at, r.shared_by, r.channel)
                for r in chunk
                if (r.deal_id, r.asset_id, r.shared_at) not in stored
            ]
            result.unchanged += len(chunk) - len(new)
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


def _stored_shares(session: Session, chunk: list[ShareRecord]) -> set[tuple]:
    """(deal, asset, shared_at) of the chunk's shares already stored."""
    deal_ids = {r.deal_id for r in chunk}
    rows = session.execute(
        select(Share.deal_id, Share.asset_id, Share.shared_at).where(Share.deal_id.in_(deal_ids))
    )
    return {tuple(row) for row in rows}
