"""Sample CRM data for tests: pipeline and deal dicts in the file format, files, and direct inserts."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from enablement.db.crm import upsert_deals, upsert_pipelines
from enablement.db.models import Asset
from enablement.domain.crm import UNSET, DealRecord, PipelineRecord, StageEntry, StageRecord

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def iso(value: datetime) -> str:
    """UTC ISO 8601 with a Z, as exports write it."""
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def sample_pipeline(pipeline_id: str = "p1", **overrides) -> dict:
    """A pipelines-file record: five stages, 'prop' confirmed as closing, the others suggested."""
    stages = [
        {
            "id": "disc",
            "label": "Discovery call",
            "display_order": 0,
            "probability": 0.2,
            "is_closed": False,
            "is_won": False,
        },
        {
            "id": "demo",
            "label": "Demo / proof of concept",
            "display_order": 1,
            "probability": 0.5,
            "is_closed": False,
            "is_won": False,
        },
        {
            "id": "prop",
            "label": "Proposal sent",
            "display_order": 2,
            "probability": 0.8,
            "is_closed": False,
            "is_won": False,
            "buying_stage": "closing",
        },
        {
            "id": "won",
            "label": "Closed won",
            "display_order": 3,
            "probability": 1.0,
            "is_closed": True,
            "is_won": True,
        },
        {
            "id": "lost",
            "label": "Closed lost",
            "display_order": 4,
            "probability": 0.0,
            "is_closed": True,
            "is_won": False,
        },
    ]
    return {"id": pipeline_id, "label": "Sales", "stages": stages, **overrides}


def sample_deal(deal_id: str = "d1", history=((0, "disc"), (3, "demo")), **overrides) -> dict:
    """A deals-file record; history is (days after T0, stage id) pairs."""
    return {
        "id": deal_id,
        "name": f"Acme {deal_id}",
        "company": "Acme Corp",
        "pipeline": "p1",
        "amount": 1000.0,
        "currency": "EUR",
        "industry": "manufacturing",
        "owner_id": "o1",
        "created_at": iso(T0),
        "personas": ["cfo"],
        "topics": ["automation"],
        "stage_history": [
            {"stage": stage, "entered_at": iso(T0 + timedelta(days=days))}
            for days, stage in history
        ],
        **overrides,
    }


def write_jsonl(path: Path, records) -> Path:
    """Write records (dicts, or raw strings written as they are) one a line."""
    lines = [r if isinstance(r, str) else json.dumps(r) for r in records]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def pipeline_record(data: dict) -> PipelineRecord:
    """A PipelineRecord from a pipelines-file dict."""
    stages = tuple(
        StageRecord(
            id=s["id"],
            label=s["label"],
            display_order=s.get("display_order", 0),
            probability=s.get("probability"),
            is_closed=s.get("is_closed", False),
            is_won=s.get("is_won", False),
            buying_stage=s.get("buying_stage", UNSET),
        )
        for s in data["stages"]
    )
    return PipelineRecord(id=data["id"], label=data["label"], stages=stages)


def deal_record(data: dict) -> DealRecord:
    """A DealRecord from a deals-file dict."""
    return DealRecord(
        id=data["id"],
        name=data["name"],
        company=data.get("company"),
        pipeline_id=data["pipeline"],
        created_at=datetime.fromisoformat(data["created_at"]),
        amount=data.get("amount"),
        currency=data.get("currency"),
        industry=data.get("industry"),
        owner_id=data.get("owner_id"),
        personas=tuple(data.get("personas", ())),
        topics=tuple(data.get("topics", ())),
        deleted=data.get("deleted", False),
        stage_history=tuple(
            StageEntry(datetime.fromisoformat(e["entered_at"]), e["stage"])
            for e in data["stage_history"]
        ),
    )


def insert_pipeline(sessions, data: dict | None = None) -> None:
    """Store a pipeline (the sample one by default)."""
    with sessions.begin() as session:
        upsert_pipelines(session, [pipeline_record(data or sample_pipeline())])


def insert_deals(sessions, *deals: dict) -> None:
    """Store deals given as deals-file dicts (their pipeline must exist)."""
    with sessions.begin() as session:
        upsert_deals(session, [deal_record(d) for d in deals], source="import")


def insert_asset(sessions, asset_id: str = "a1", **overrides) -> None:
    """Store an approved asset directly through the ORM."""
    values = {
        "id": asset_id,
        "title": f"Asset {asset_id}",
        "url": f"https://content.example/{asset_id}",
        "kind": "article",
        "author": "Ada Writer",
        "status": "approved",
        **overrides,
    }
    with sessions.begin() as session:
        session.add(Asset(**values))
