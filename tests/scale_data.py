"""Bulk data at any size for the statement-count tests and the benchmarks: assets, deals, shares.

`load_scale(engine, assets, deals, shares, secret_key=...)` stores a pipeline with four mapped
open stages and two closed ones, 50 owners, `assets` assets (about 90% approved, a few
series and product pitches), `deals` deals (about half open) each with the stage change into
its current stage, `shares` shares with trackable-link hashes (their ids are 1..shares) and
a buyer view on about 30% of them. Rows go in with executemany on SQLite and COPY on
PostgreSQL (1,000,000 shares in well under a minute). Deterministic for a seed; `offset`
adds a second batch with other ids to data already loaded (the same pipeline and owners).
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, func, insert, select, text

from enablement.db.assets import insert_assets
from enablement.db.models import (
    CrmStage,
    Deal,
    LinkView,
    Owner,
    Pipeline,
    Share,
    StageChange,
)
from enablement.domain.links import link_token, token_hash

STAGES = [
    ("s_aw", "Prospecting", "awareness", False, False),
    ("s_in", "Discovery call", "interest", False, False),
    ("s_ev", "Demo", "evaluation", False, False),
    ("s_cl", "Negotiation", "closing", False, False),
    ("won", "Closed won", None, True, True),
    ("lost", "Closed lost", None, True, False),
]
INDUSTRIES = [f"Industry {n}" for n in range(12)]
PERSONAS = ["CFO", "CIO", "CISO", "COO", "VP Sales", "Head of Procurement", "CTO", "CMO", "CHRO"]
TOPICS = [f"topic {n}" for n in range(20)]
KINDS = ["article", "whitepaper", "webinar", "case_study", "podcast", "video", "report"]
AUTHORS = [f"Author{n} Surname{n}" for n in range(40)] + ["Editorial Team"]
CHUNK = 20_000


@dataclass
class Loaded:
    """What was stored: open deal ids, asset ids, and the link tokens of some shares."""

    open_deals: list[str] = field(default_factory=list)
    assets: list[str] = field(default_factory=list)
    link_tokens: list[str] = field(default_factory=list)
    seconds: float = 0.0


def _naive(value: datetime) -> datetime:
    return value.astimezone(UTC).replace(tzinfo=None)


def _copy(engine: Engine, table, columns: list[str], rows) -> None:
    """COPY rows (tuples in `columns` order; timestamps aware, JSON as Python) into a table."""
    json_columns = {c.name for c in table.columns if c.type.__class__.__name__ == "JSON"}
    time_columns = {c.name for c in table.columns if c.type.__class__.__name__ == "UTCDateTime"}
    raw = engine.raw_connection()
    try:
        with raw.cursor() as cursor:
            names = ", ".join(columns)
            with cursor.copy(f"COPY {table.name} ({names}) FROM STDIN") as copy:  # noqa: S608
                for row in rows:
                    copy.write_row(
                        [
                            json.dumps(v)
                            if c in json_columns and v is not None
                            else (_naive(v) if c in time_columns and v is not None else v)
                            for c, v in zip(columns, row, strict=True)
                        ]
                    )
        raw.commit()
    finally:
        raw.close()


def _bulk(engine: Engine, table, rows: list[dict]) -> None:
    """Insert dict rows: COPY on PostgreSQL, executemany in chunks elsewhere."""
    if not rows:
        return
    if engine.dialect.name == "postgresql":
        columns = list(rows[0])
        _copy(engine, table, columns, ([r[c] for c in columns] for r in rows))
        return
    with engine.begin() as conn:
        for start in range(0, len(rows), CHUNK):
            conn.execute(insert(table), rows[start : start + CHUNK])


def load_scale(
    engine: Engine,
    assets: int,
    deals: int,
    shares: int,
    *,
    secret_key: str = "bench",
    seed: int = 11,
    offset: int = 0,
    tokens_kept: int = 2000,
    views: float = 0.3,
) -> Loaded:
    """Store the data set (see the module doc); returns what requests need to address it."""
    import time

    started = time.perf_counter()
    rng = random.Random(seed + offset)
    now = datetime.now(UTC)
    t0 = now - timedelta(days=400)
    loaded = Loaded()
    with engine.begin() as conn:
        first = conn.scalar(select(func.count()).select_from(Pipeline)) == 0
    if first:
        with engine.begin() as conn:
            conn.execute(insert(Pipeline), [{"id": "p1", "label": "Sales", "updated_at": now}])
            conn.execute(
                insert(CrmStage),
                [
                    {
                        "pipeline_id": "p1",
                        "id": sid,
                        "label": label,
                        "display_order": i,
                        "buying_stage": stage,
                        "mapping_source": "confirmed",
                        "is_closed": closed,
                        "is_won": won,
                    }
                    for i, (sid, label, stage, closed, won) in enumerate(STAGES)
                ],
            )
            conn.execute(
                insert(Owner),
                [
                    {"id": f"o{n}", "email": f"rep{n}@example.com", "updated_at": now}
                    for n in range(50)
                ],
            )
    asset_rows = []
    for n in range(offset, offset + assets):
        series = f"Series {n // 6}" if n % 10 < 6 and n < 600 else None
        asset_rows.append(
            {
                "id": f"a{n:06d}",
                "title": f"{rng.choice(('Why', 'How', 'When', 'What'))} {rng.choice(TOPICS)} "
                f"matters to {rng.choice(PERSONAS)}s in {rng.choice(INDUSTRIES)}, part {n}",
                "url": f"https://insights.example.com/{n}",
                "kind": rng.choice(KINDS),
                "author": rng.choice(AUTHORS),
                "summary": f"A field guide on {rng.choice(TOPICS)} and {rng.choice(TOPICS)} for "
                f"{rng.choice(PERSONAS)} teams; lessons from {rng.randrange(5, 80)} buyers.",
                "topics": rng.sample(TOPICS, 2),
                "industries": rng.sample(INDUSTRIES, rng.choice((0, 1, 2))),
                "personas": rng.sample(PERSONAS, rng.choice((1, 2))),
                "stages": rng.sample(
                    ["awareness", "interest", "evaluation", "closing"], rng.choice((1, 1, 2))
                ),
                "published_at": now - timedelta(days=rng.randrange(0, 1500)),
                "status": "approved" if rng.random() < 0.9 else "draft",
                "series": series,
                "series_order": (n % 6) + 1 if series else None,
                "pitch_score": 0.5 if n % 25 == 0 else 0.05,
                "pitch_flag": n % 25 == 0,
            }
        )
    from sqlalchemy.orm import Session

    with Session(engine) as session, session.begin():
        insert_assets(session, asset_rows)
    loaded.assets = [a["id"] for a in asset_rows if a["status"] == "approved"]
    deal_rows, changes = [], []
    for n in range(offset, offset + deals):
        stage = rng.choices([s[0] for s in STAGES], weights=(10, 15, 15, 10, 25, 25))[0]
        closed = stage in ("won", "lost")
        created = t0 + timedelta(hours=rng.randrange(0, 9000))
        deal_id = str(10_000_000 + n)  # numeric, as HubSpot's (webhook events name them)
        if not closed:
            loaded.open_deals.append(deal_id)
        deal_rows.append(
            {
                "id": deal_id,
                "name": f"Company {n % 7919} {rng.choice(('renewal', 'pilot', 'expansion'))}",
                "pipeline_id": "p1",
                "current_stage_id": stage,
                "amount": float(rng.randrange(1000, 500000)),
                "industry": rng.choice(INDUSTRIES),
                "owner_id": f"o{rng.randrange(50)}",
                "personas": rng.sample(PERSONAS, rng.choice((1, 2))),
                "topics": rng.sample(TOPICS, rng.choice((1, 2))),
                "created_at": created,
                "closed_at": created + timedelta(days=40) if closed else None,
                "updated_at": now,
            }
        )
        changes.append(
            {
                "deal_id": deal_id,
                "pipeline_id": "p1",
                "stage_id": stage,
                "entered_at": created + timedelta(days=3),
                "source": "import",
            }
        )
    _bulk(engine, Deal.__table__, deal_rows)
    _bulk(engine, StageChange.__table__, changes)
    with engine.begin() as conn:
        first_share = (conn.scalar(select(func.max(Share.id))) or 0) + 1
    all_assets = [a["id"] for a in asset_rows] or ["a000000"]
    deal_ids = [d["id"] for d in deal_rows]
    share_rows, view_rows = [], []
    for n in range(shares):
        share_id = first_share + n
        token = link_token(secret_key, share_id)
        if len(loaded.link_tokens) < tokens_kept:
            loaded.link_tokens.append(token)
        share_rows.append(
            {
                "id": share_id,
                "deal_id": rng.choice(deal_ids),
                "asset_id": rng.choice(all_assets),
                "shared_at": t0 + timedelta(seconds=n + offset * 10),
                "source": "import",
                "link_token_hash": token_hash(token),
                "writeback_attempts": 0,
                "created_at": now,
            }
        )
        if rng.random() < views:
            view_rows.append({"share_id": share_id, "viewed_at": now, "user_agent": "bench"})
        if len(share_rows) >= 100_000:
            _bulk(engine, Share.__table__, share_rows)
            _bulk(engine, LinkView.__table__, view_rows)
            share_rows, view_rows = [], []
    _bulk(engine, Share.__table__, share_rows)
    _bulk(engine, LinkView.__table__, view_rows)
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:
            # Explicit ids were stored: move the sequences past them.
            for table in ("shares", "link_views", "stage_changes"):
                conn.execute(
                    text(
                        f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "  # noqa: S608
                        f"(SELECT coalesce(max(id), 0) + 1 FROM {table}), false)"
                    )
                )
    loaded.seconds = time.perf_counter() - started
    return loaded


def analyze(engine: Engine) -> None:
    """Planner statistics after a bulk load, as autovacuum (or ANALYZE) leaves them in use."""
    with engine.begin() as conn:
        conn.execute(text("ANALYZE"))
