"""Property: export then import of every kind gives an identical database, on SQLite and PostgreSQL.

Generated owners, pipelines, deals, assets and shares (unicode, blanks, formula-like cells,
times in many zones, deals with no name, no amount or no known stage) are
imported, exported as JSON Lines and as CSV, the database is emptied, the export is imported
again: every table holds the same rows, and a second export is byte for byte the first.
"""

from __future__ import annotations

import io
import os
from datetime import UTC, datetime, timedelta, timezone

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, inspect, select

from enablement.db.models import (
    Asset,
    AssetTag,
    CrmStage,
    Deal,
    LinkView,
    Owner,
    Pipeline,
    Share,
    StageChange,
)
from enablement.services.transfers import EXPORTERS, IMPORTERS

EXAMPLES = int(os.environ.get("ROUND_TRIP_EXAMPLES", "15"))
PROPERTY = settings(
    max_examples=EXAMPLES,
    phases=[Phase.explicit, Phase.reuse, Phase.generate]
    if os.environ.get("ROUND_TRIP_NO_SHRINK")
    else list(Phase),
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)
KINDS = ("owners", "pipelines", "deals", "assets", "shares")
# Rows in the order they can be deleted (children first).
TABLES = (LinkView, Share, AssetTag, Asset, StageChange, Deal, CrmStage, Pipeline, Owner)
# Columns a re-import may set afresh: surrogate keys, write times, a share's new link.
VOLATILE = {"updated_at", "link_token_hash", "mapped_at"}
SURROGATE = {
    Share: {"id", "created_at"},
    StageChange: {"id"},
    AssetTag: {"id"},
    Asset: {"created_at"},  # when the row was written; the asset file does not carry it
}

# Text as people and CRMs write it: any printable unicode, leading formula characters,
# quotes, separators, newlines; no NUL or lone surrogates (refused at the edge by design).
TEXT = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="\x00")
    | st.sampled_from(
        ["=", "+", "-", "@", "'", ";", ",", '"', "\n", "\r", "\t", " ", "[", "é", "\u2028", "\x85"]
    ),
    max_size=12,
)
NAME = TEXT.filter(lambda t: len(t) <= 12)
# One line of text (asset titles, authors and series refuse control characters).
LINE = TEXT.filter(lambda t: not any(c in t for c in "\n\r\t"))
IDS = st.from_regex(r"\A[a-zA-Z0-9][a-zA-Z0-9._:-]{0,7}\Z")
ZONES = st.integers(-14 * 4, 14 * 4).map(lambda q: timezone(timedelta(minutes=15 * q)))
MOMENTS = st.builds(
    lambda seconds, micro, zone: (
        datetime.fromtimestamp(seconds, UTC).replace(microsecond=micro).astimezone(zone)
    ),
    st.integers(0, 4_102_000_000),
    st.integers(0, 999_999),
    ZONES,
)
TAG = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp"), blacklist_characters=";")
    | st.sampled_from(["=", "[", "'", "-"]),
    min_size=1,
    max_size=10,
).filter(lambda t: t.strip())


def iso(moment: datetime) -> str:
    """ISO 8601 in the moment's own zone (files may use any offset)."""
    return moment.isoformat()


@st.composite
def datasets(draw) -> dict[str, list[dict]]:
    """Records of every kind that refer to each other."""
    owners = [
        {
            "id": oid,
            "email": draw(st.none() | st.just(f"{oid}@example.com")),
            "first_name": draw(st.none() | NAME.filter(bool)),
        }
        for oid in draw(st.lists(IDS, max_size=2, unique=True))
    ]
    owners = [{k: v for k, v in o.items() if v is not None} for o in owners]
    pipelines = []
    for index, pid in enumerate(draw(st.lists(IDS, min_size=1, max_size=2, unique=True))):
        stage_ids = draw(st.lists(IDS, min_size=1, max_size=4, unique=True))
        stages = []
        for order, sid in enumerate(stage_ids):
            closed = draw(st.booleans())
            stage = {
                "id": sid,
                "label": draw(TEXT.filter(lambda t: 1 <= len(t))),
                "display_order": order,
                "probability": draw(st.none() | st.sampled_from([0.0, 0.25, 1.0])),
                "is_closed": closed,
                "is_won": closed and draw(st.booleans()),
            }
            if draw(st.booleans()):
                stage["buying_stage"] = draw(
                    st.sampled_from([None, "awareness", "interest", "evaluation", "closing"])
                )
            stages.append(stage)
        pipelines.append(
            {"id": pid, "label": draw(TEXT.filter(bool)), "display_order": index, "stages": stages}
        )
    deals = []
    for did in draw(st.lists(IDS, max_size=4, unique=True)):
        pipeline = draw(st.sampled_from(pipelines))
        created = draw(MOMENTS)
        history = [
            {
                "stage": draw(st.sampled_from(pipeline["stages"]))["id"],
                "entered_at": iso(draw(MOMENTS)),
            }
            for _ in range(draw(st.integers(0, 3)))
        ]
        deal = {
            "id": did,
            "name": draw(TEXT),
            "pipeline": pipeline["id"],
            "created_at": iso(created),
            "stage_history": history,
            "personas": draw(st.lists(TAG, max_size=3)),
            "topics": draw(st.lists(TAG, max_size=2)),
        }
        optional = {
            "amount": st.none() | st.floats(0, 1e12, allow_nan=False) | st.integers(0, 10**9),
            "company": TEXT,
            "currency": st.sampled_from(["EUR", "USD"]),
            "industry": TEXT,
            "owner_id": IDS,
            "closed_at": st.just(iso(created + timedelta(days=3))),
            "deleted": st.booleans(),
        }
        for key, strategy in optional.items():
            if draw(st.booleans()):
                deal[key] = draw(strategy)
        if not history and draw(st.booleans()):
            deal["stage"] = draw(st.sampled_from(pipeline["stages"]))["id"]
        deals.append(deal)
    assets = []
    for aid in draw(st.lists(IDS, min_size=1, max_size=3, unique=True)):
        asset = {
            "id": aid,
            "title": draw(LINE.filter(lambda t: t.strip())),
            "url": f"https://content.example/{aid}",
            "kind": draw(st.sampled_from(["article", "webinar", "case_study"])),
            "author": draw(LINE.filter(lambda t: t.strip())),
            "topics": draw(st.lists(TAG, max_size=2)),
            "personas": draw(st.lists(TAG, max_size=2)),
            "stages": draw(st.lists(st.sampled_from(["awareness", "closing"]), unique=True)),
        }
        for key, strategy in {
            "summary": TEXT,
            "published_at": MOMENTS.map(iso),
            "review_by": st.dates(datetime(1971, 1, 1).date(), datetime(2099, 1, 1).date()).map(
                str
            ),
            "status": st.sampled_from(["draft", "approved", "retired"]),
            "series": LINE.filter(lambda t: t.strip()),
        }.items():
            if draw(st.booleans()):
                asset[key] = draw(strategy)
        assets.append(asset)
    shares = []
    if deals:
        for _ in range(draw(st.integers(0, 3))):
            share = {
                "deal_id": draw(st.sampled_from(deals))["id"],
                "asset_id": draw(st.sampled_from(assets))["id"],
                "shared_at": iso(draw(MOMENTS)),
            }
            if draw(st.booleans()):
                share["shared_by"] = draw(TEXT)
            if draw(st.booleans()):
                share["channel"] = draw(st.sampled_from(["email", "=cmd", "linkedin"]))
            shares.append(share)
    return {
        "owners": owners,
        "pipelines": pipelines,
        "deals": deals,
        "assets": assets,
        "shares": shares,
    }


def _jsonl(records: list[dict]) -> bytes:
    import json

    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode()


def _import(container, kind: str, data: bytes, fmt: str) -> None:
    if not data.strip():
        return  # nothing of this kind (an empty file is refused by design)
    result = IMPORTERS[kind](container.sessions, container.settings, io.BytesIO(data), fmt, False)
    messages = [m for e in result.errors for m in e.messages()]
    assert not messages, f"{kind} ({fmt}): {messages[:5]}"


def _export(container, kind: str, fmt: str) -> bytes:
    out = io.StringIO()
    EXPORTERS[kind](container.sessions, container.settings, out, fmt)
    return out.getvalue().encode()


def _wipe(container) -> None:
    with container.sessions.begin() as session:
        for model in TABLES:
            session.execute(delete(model))


def snapshot(container) -> dict:
    """Every row of every table an import writes, without the columns a re-import renews."""
    rows = {}
    with container.sessions() as session:
        for model in TABLES:
            columns = [
                c
                for c in inspect(model).columns
                if c.key not in VOLATILE and c.key not in SURROGATE.get(model, set())
            ]
            found = session.execute(select(*columns)).all()
            rows[model.__tablename__] = sorted(
                (dict(zip([c.key for c in columns], row, strict=True)) for row in found), key=repr
            )
    return rows


@PROPERTY
@given(data=datasets(), fmt=st.sampled_from(["jsonl", "csv"]))
def test_export_then_import_of_every_kind_gives_an_identical_database(container, data, fmt):
    _wipe(container)
    for kind in KINDS:
        if data[kind]:
            _import(container, kind, _jsonl(data[kind]), "jsonl")
    before = snapshot(container)
    exported = {
        kind: _export(container, kind, "jsonl" if kind == "pipelines" else fmt) for kind in KINDS
    }
    _wipe(container)
    for kind in KINDS:
        _import(container, kind, exported[kind], "jsonl" if kind == "pipelines" else fmt)
    after = snapshot(container)
    for table in before:
        differing = [
            {k: (b[k], a.get(k)) for k in b if b[k] != a.get(k)}
            for b, a in zip(before[table], after[table], strict=False)
        ]
        assert after[table] == before[table], (table, fmt, [d for d in differing if d][:3])
    again = {
        kind: _export(container, kind, "jsonl" if kind == "pipelines" else fmt) for kind in KINDS
    }
    assert again == exported
