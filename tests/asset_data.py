"""Asset records for tests: valid by default, changed per test."""

from __future__ import annotations

import json

TOPICS = ("pricing strategy", "ai adoption", "security", "procurement")


def asset_record(i: int = 1, **changes) -> dict:
    """A valid asset record in the file format, number i; keyword arguments replace fields."""
    record = {
        "id": f"asset-{i}",
        "title": f"Field notes on buying committees, part {i}",
        "url": f"https://insights.example.com/notes/{i}",
        "kind": "article",
        "author": "Grace Hopper",
        "summary": f"What we learned from {i} buying committees.",
        "topics": [TOPICS[i % len(TOPICS)]],
        "industries": ["Manufacturing"],
        "personas": ["CFO"],
        "stages": ["evaluation"],
        "published_at": "2025-06-01T09:00:00Z",
    }
    record.update(changes)
    return {k: v for k, v in record.items() if v is not None}


def jsonl(records) -> str:
    """Records as JSON Lines text."""
    return "".join(json.dumps(r) + "\n" for r in records)
