"""Export pipelines, deals and shares in the format their imports read (JSON Lines or CSV).

Reads in batches, so a 100,000-deal export never holds more than a batch of ORM objects.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import IO

from sqlalchemy import select

from enablement.db.models import Deal, Owner, Pipeline, Share, StageChange
from enablement.domain.timestamps import format_timestamp
from enablement.errors import BadRequest
from enablement.files.crm_schemas import DEAL_COLUMNS, LIST_FIELDS, OWNER_COLUMNS, SHARE_COLUMNS
from enablement.files.formats import write_records

DEAL_BATCH = 500  # deals, each with its history
SHARE_BATCH = 1000


def export_pipelines(sessions, settings, out: IO[str], fmt: str) -> int:
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


def export_deals(sessions, settings, out: IO[str], fmt: str) -> int:
    """Write every deal (deleted ones with "deleted": true) in the format import reads."""
    return write_records(_deal_rows(sessions, settings), fmt, out, DEAL_COLUMNS, LIST_FIELDS)


def _deal_rows(sessions, settings) -> Iterator[dict]:
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
    if not entries and deal.current_stage_id is not None:
        row["stage"] = deal.current_stage_id
    if deal.deleted_at is not None:
        row["deleted"] = True
        row["deleted_at"] = format_timestamp(deal.deleted_at)
    return row


def export_shares(sessions, settings, out: IO[str], fmt: str) -> int:
    """Write every share in the format import reads."""
    return write_records(_share_rows(sessions, settings), fmt, out, SHARE_COLUMNS)


def _share_rows(sessions, settings) -> Iterator[dict]:
    """Shares ordered by id, read in batches."""
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


def export_owners(sessions, settings, out: IO[str], fmt: str) -> int:
    """Write every owner in the format import reads."""
    with sessions() as session:
        rows = [
            {
                key: value
                for key, value in (
                    ("id", o.id),
                    ("email", o.email),
                    ("first_name", o.first_name),
                    ("last_name", o.last_name),
                    ("archived", o.archived),
                )
                if value is not None
            }
            for o in session.scalars(select(Owner).order_by(Owner.id))
        ]
    return write_records(rows, fmt, out, OWNER_COLUMNS)
