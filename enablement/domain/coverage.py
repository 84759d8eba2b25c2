"""Where content is missing: buying stage x persona / industry / topic, with demand from open deals."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from enablement.domain.assets import is_live, is_stale
from enablement.domain.stages import BUYING_STAGES, review_problem
from enablement.domain.tags import tag_key
from enablement.domain.timestamps import format_timestamp

DIMENSIONS = {"persona": "personas", "industry": "industries", "topic": "topics"}
SHARE_WINDOW_DAYS = 90


@dataclass
class AssetFacts:
    """One asset as the coverage report sees it."""

    asset_id: str
    title: str
    author: str
    status: str
    review_by: date | None
    retired: bool
    stages: list[str]
    personas: list[str]
    industries: list[str]
    topics: list[str]
    pitch_score: float | None = None
    pitch_flag: bool = False


@dataclass
class OpenDeal:
    """A deal open at as_of, in a buying stage (or none), with its context."""

    deal_id: str
    buying_stage: str | None
    industry: str | None
    personas: list[str] = field(default_factory=list)
    topics: list[str] = field(default_factory=list)


@dataclass
class ShareFacts:
    """One share: which asset, when, how many recorded views."""

    asset_id: str
    shared_at: datetime
    views: int


@dataclass
class StageFacts:
    """One CRM stage and its mapping."""

    pipeline_id: str
    stage_id: str
    label: str
    buying_stage: str | None
    is_closed: bool
    mapping_source: str
    mapping_confidence: float | None
    open_deals: int = 0
    pipeline_label: str | None = None


def _norm(value) -> str:
    return tag_key(str(value))


def _values(items) -> set[str]:
    return {_norm(v) for v in (items or []) if str(v).strip()}


def asset_state(asset: AssetFacts, today: date) -> str:
    """live or stale by the one rule in domain.assets (retired counts as neither), or other."""
    status = "retired" if asset.retired else asset.status
    if is_live(status, asset.review_by, today):
        return "live"
    if is_stale(status, asset.review_by, today):
        return "stale"
    return "other"


def compute_coverage(
    assets: list[AssetFacts],
    open_deals: list[OpenDeal],
    shares: list[ShareFacts],
    stages: list[StageFacts],
    as_of: datetime,
    min_assets: int,
) -> dict:
    """The coverage report (interfaces.md shape plus never_shared_assets, authors, stage summaries)."""
    today = as_of.date()
    window_start = as_of - timedelta(days=SHARE_WINDOW_DAYS)
    state = {a.asset_id: asset_state(a, today) for a in assets}
    shares_90d: Counter[str] = Counter()
    share_count: Counter[str] = Counter()
    view_count: Counter[str] = Counter()
    for s in shares:
        share_count[s.asset_id] += 1
        view_count[s.asset_id] += s.views
        if window_start < s.shared_at <= as_of:
            shares_90d[s.asset_id] += 1

    live = defaultdict(int)
    stale = defaultdict(int)
    recent = defaultdict(int)
    demand = defaultdict(int)
    seen: dict[str, set[str]] = {dim: set() for dim in DIMENSIONS}
    stage_live, stage_stale, stage_recent, stage_demand = (Counter() for _ in range(4))
    authors: dict[str, Counter] = defaultdict(Counter)
    for a in assets:
        st = state[a.asset_id]
        a_stages = [s for s in a.stages if s in BUYING_STAGES]
        for stage in a_stages:
            if st == "live":
                stage_live[stage] += 1
                authors[a.author.strip() or "(no author)"][stage] += 1
            elif st == "stale":
                stage_stale[stage] += 1
            stage_recent[stage] += shares_90d[a.asset_id]
        if st == "other" and not shares_90d[a.asset_id]:
            continue
        for dim, attr in DIMENSIONS.items():
            values = _values(getattr(a, attr))
            if st != "other":
                seen[dim] |= values
            for stage in a_stages:
                for value in values:
                    key = (stage, dim, value)
                    if st == "live":
                        live[key] += 1
                    elif st == "stale":
                        stale[key] += 1
                    recent[key] += shares_90d[a.asset_id]
    for d in open_deals:
        if d.buying_stage not in BUYING_STAGES:
            continue
        stage_demand[d.buying_stage] += 1
        for dim, values in (
            ("persona", _values(d.personas)),
            ("industry", _values([d.industry] if d.industry else [])),
            ("topic", _values(d.topics)),
        ):
            seen[dim] |= values
            for value in values:
                demand[(d.buying_stage, dim, value)] += 1

    cells = []
    for dim in DIMENSIONS:
        for value in sorted(seen[dim]):
            for stage in BUYING_STAGES:
                key = (stage, dim, value)
                cells.append(
                    {
                        "stage": stage,
                        "dimension": dim,
                        "value": value,
                        "live_assets": live[key],
                        "stale_assets": stale[key],
                        "shares_90d": recent[key],
                        "open_deals": demand[key],
                        "status": _status(live[key], demand[key], min_assets),
                    }
                )
    gaps = sorted(
        (c for c in cells if c["status"] == "gap"),
        key=lambda c: (
            -c["open_deals"],
            c["dimension"],
            BUYING_STAGES.index(c["stage"]),
            c["value"],
        ),
    )
    stage_rows = [
        {
            "stage": stage,
            "live_assets": stage_live[stage],
            "stale_assets": stage_stale[stage],
            "shares_90d": stage_recent[stage],
            "open_deals": stage_demand[stage],
            "status": _status(stage_live[stage], stage_demand[stage], min_assets),
        }
        for stage in BUYING_STAGES
    ]
    current = [a for a in assets if not a.retired and a.status != "retired"]
    return {
        "as_of": format_timestamp(as_of),
        "min_assets": min_assets,
        "stages": stage_rows,
        "cells": cells,
        "gaps": gaps,
        "unmapped_stages": _unmapped(stages),
        "untagged_assets": [
            _brief(a)
            | {
                "missing": [
                    attr for attr in ("stages", *DIMENSIONS.values()) if not getattr(a, attr)
                ]
            }
            for a in current
            if not [s for s in a.stages if s in BUYING_STAGES]
        ],
        "product_pitch_assets": [
            _brief(a) | {"pitch_score": a.pitch_score, "stages": list(a.stages)}
            for a in sorted(current, key=lambda a: -(a.pitch_score or 0))
            if a.pitch_flag
        ],
        "never_opened_assets": [
            _brief(a) | {"shares": share_count[a.asset_id]}
            for a in assets
            if share_count[a.asset_id] and not view_count[a.asset_id]
        ],
        "never_shared_assets": [
            _brief(a) for a in assets if state[a.asset_id] == "live" and not share_count[a.asset_id]
        ],
        "authors": [
            {
                "author": name,
                "stages": {s: counts[s] for s in BUYING_STAGES},
                "live_assets": sum(counts.values()),
            }
            for name, counts in sorted(authors.items())
        ],
    }


def _status(live: int, demand: int, min_assets: int) -> str:
    """gap: demand and no live asset; thin: demand and fewer live assets than the minimum; else ok.

    NOTE: thin applies only where open deals sit: a cell nobody needs is not short of content.
    """
    if demand == 0:
        return "ok"
    if live == 0:
        return "gap"
    if live < min_assets:
        return "thin"
    return "ok"


def _brief(a: AssetFacts) -> dict:
    return {"asset_id": a.asset_id, "title": a.title, "author": a.author}


def _unmapped(stages: list[StageFacts]) -> list[dict]:
    """Open CRM stages with no buying stage (not deliberately confirmed as none) or a low-confidence guess."""
    rows = []
    for s in stages:
        problem = review_problem(
            s.mapping_source, s.buying_stage, s.mapping_confidence, s.is_closed
        )
        if problem:
            rows.append(
                {
                    "pipeline_id": s.pipeline_id,
                    "pipeline_label": s.pipeline_label,
                    "stage_id": s.stage_id,
                    "label": s.label,
                    "buying_stage": s.buying_stage,
                    "source": s.mapping_source,
                    "confidence": s.mapping_confidence,
                    "problem": problem,
                    "open_deals": s.open_deals,
                }
            )
    return rows
