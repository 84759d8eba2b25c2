"""A world of deals (enablement.simulation's walk) with known per-asset effects and the traps that fool naive analysis.

Deals move awareness -> interest -> evaluation -> closing -> won in continuous time, with a
competing hazard of being lost and an as-of cut that leaves some open. The hazard of
advancing depends on deal size (small deals are faster), industry, pipeline and owner,
and on the assets shared so far (each multiplies the hazard by its true hazard ratio from
the moment it is shared). Planted assets:

- `a-short` (evaluation, HR 2.5) -> shortens; `a-long` (evaluation, HR 0.4) -> lengthens;
- `a-null` (evaluation, HR 1, shared often) -> no_evidence; `a-rare` (HR 2, a handful) -> insufficient_data;
- `a-small` (interest, HR 1) shared mostly to small, fast deals: confounded by size;
- `a-rescue` (interest, HR 1) shared only to deals stalled for 30 days: late exposure;
- generic pieces shared at a constant rate while a deal sits in a stage, so long deals collect more.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import NamedTuple

import numpy as np
import pandas as pd

from enablement.domain.stages import BUYING_STAGES
from enablement.simulation import Exposure, Planned, SimPipeline, SimStage, Visit, walk_deal

AS_OF = datetime(2026, 6, 30, tzinfo=UTC)


class Stage(NamedTuple):
    """A stage of a simulated pipeline as the stage map holds it."""

    id: str
    label: str
    buying_stage: str | None
    is_closed: bool = False
    is_won: bool = False


PIPELINES = {
    "p1": [
        Stage("p1-lead", "Lead", "awareness"),
        Stage("p1-disc", "Discovery", "interest"),
        Stage("p1-demo", "Demo", "evaluation"),
        Stage("p1-prop", "Proposal", "closing"),
        Stage("p1-won", "Closed won", None, True, True),
        Stage("p1-lost", "Closed lost", None, True, False),
    ],
    "p2": [
        Stage("p2-lead", "New lead", "awareness"),
        Stage("p2-qual", "Qualified", "interest"),
        Stage("p2-poc", "Pilot", "evaluation"),
        Stage("p2-neg", "Negotiation", "closing"),
        Stage("p2-won", "Won", None, True, True),
        Stage("p2-lost", "Lost", None, True, False),
    ],
}
INDUSTRIES = {"software": 1.0, "manufacturing": 0.7, "finance": 1.3, "healthcare": 0.85}
OWNERS = {"o1": 1.0, "o2": 1.3, "o3": 0.8, "o4": 1.1, "o5": 0.9}
BASE_RATE = 1 / 20  # advances per day at average size
LOSS_RATE = 1 / 90
SIZE_EFFECT = -0.9  # log hazard per SD of log amount: small deals move faster

# Planted assets: stage, true hazard ratio, expected verdict, naive verdict we expect to be wrong.
PLANTED = {
    "a-short": ("evaluation", 2.5, "shortens"),
    "a-long": ("evaluation", 0.4, "lengthens"),
    "a-null": ("evaluation", 1.0, "no_evidence"),
    "a-rare": ("evaluation", 2.0, "insufficient_data"),
    "a-small": ("interest", 1.0, "no_evidence"),
    "a-rescue": ("interest", 1.0, "no_evidence"),
}
GENERIC = [f"g-{stage}-{i}" for stage in BUYING_STAGES for i in range(3)]
# Every open stage advances at BASE_RATE x the deal's factor and loses at LOSS_RATE; no backward moves.
SIM_PIPELINES = {
    pid: SimPipeline(
        stages=tuple(
            SimStage(s.id, s.buying_stage, BASE_RATE, LOSS_RATE) for s in stages if not s.is_closed
        ),
        won=next(s.id for s in stages if s.is_won),
        lost=next(s.id for s in stages if s.is_closed and not s.is_won),
    )
    for pid, stages in PIPELINES.items()
}


@dataclass
class SimData:
    """Plain frames as the report queries return them, plus the planted truth."""

    stage_map: pd.DataFrame
    deals: pd.DataFrame
    history: pd.DataFrame
    shares: pd.DataFrame
    assets: pd.DataFrame
    as_of: datetime
    truth: dict = field(default_factory=dict)


def simulate(n_deals: int = 3000, seed: int = 7, as_of: datetime = AS_OF) -> SimData:
    """Simulate deals, stage history and shares; return plain frames and the planted verdicts."""
    rng = np.random.default_rng(seed)
    stage_map = pd.DataFrame(
        [
            {
                "pipeline_id": pid,
                "stage_id": s.id,
                "label": s.label,
                "display_order": order,
                "buying_stage": s.buying_stage,
                "is_closed": s.is_closed,
                "is_won": s.is_won,
                "mapping_source": "confirmed",
                "mapping_confidence": 1.0,
            }
            for pid, stages in PIPELINES.items()
            for order, s in enumerate(stages)
        ]
    )
    deals, history, shares = [], [], []
    horizon = (as_of - timedelta(days=5)).timestamp() / 86400
    first_day = horizon - 420
    for k in range(n_deals):
        deal_id = f"d{k:06d}"
        pid = "p1" if rng.random() < 0.7 else "p2"
        industry = rng.choice(list(INDUSTRIES))
        owner = rng.choice(list(OWNERS))
        log_amount = rng.normal(10.0, 1.0)
        z = log_amount - 10.0
        amount = round(math.exp(log_amount), 2)
        created = rng.uniform(first_day, horizon)
        factor = (
            math.exp(SIZE_EFFECT * z)
            * INDUSTRIES[industry]
            * OWNERS[owner]
            * (1.25 if pid == "p2" else 1.0)
        )
        visits: list[tuple[float, Planned]] = []

        def plan(visit: Visit, z=z, visits=visits) -> Planned:
            planned = Planned(_planned_shares(rng, visit.stage.buying_stage, z))
            visits.append((visit.start, planned))
            return planned

        walk = walk_deal(
            rng,
            SIM_PIPELINES[pid],
            plan,
            open_for=(as_of.timestamp() / 86400) - created,
            speed=factor,
            start=1 if rng.random() < 0.25 else 0,
        )
        history += [(deal_id, pid, move.stage_id, created + move.at) for move in walk.moves]
        shares += [
            (deal_id, e.item, created + start + e.at, owner)
            for start, planned in visits
            for e in planned.taken
        ]
        closed_at = created + walk.moves[-1].at if walk.outcome != "open" else None
        deals.append(
            {
                "deal_id": deal_id,
                "name": f"Deal {k}",
                "pipeline_id": pid,
                "amount": amount,
                "industry": industry,
                "owner_id": owner,
                "personas": ["cfo"] if k % 2 else ["cto"],
                "topics": ["security"] if k % 3 else ["cost"],
                "created_at": _ts(created),
                "closed_at": _ts(closed_at) if closed_at is not None else None,
            }
        )
    assets = pd.DataFrame(
        [{"asset_id": a, "title": f"Piece {a}", "stages": [PLANTED[a][0]]} for a in PLANTED]
        + [{"asset_id": g, "title": f"Piece {g}", "stages": [g.split("-")[1]]} for g in GENERIC]
    )
    hist = pd.DataFrame(history, columns=["deal_id", "pipeline_id", "stage_id", "t"])
    hist["entered_at"] = pd.to_datetime(hist["t"] * 86400, unit="s", utc=True).dt.round("us")
    sh = pd.DataFrame(shares, columns=["deal_id", "asset_id", "t", "shared_by"])
    sh["shared_at"] = pd.to_datetime(sh["t"] * 86400, unit="s", utc=True).dt.round("us")
    truth = {(a, stage): expected for a, (stage, _, expected) in PLANTED.items()}
    return SimData(
        stage_map=stage_map,
        deals=pd.DataFrame(deals),
        history=hist.drop(columns="t"),
        shares=sh.drop(columns="t"),
        assets=assets,
        as_of=as_of,
        truth=truth,
    )


def _planned_shares(rng, buying_stage: str, z: float) -> list[Exposure]:
    """A visit's shares: generic pieces at a constant rate, planted ones as the module says."""
    planned = [
        Exposure(float(at), 1.0, g)
        for g in GENERIC
        if g.split("-")[1] == buying_stage
        for at in np.cumsum(rng.exponential(1 / 0.02, size=6))
    ]
    if buying_stage == "evaluation":
        for a in ("a-short", "a-long", "a-null"):
            if rng.random() < 0.22:
                planned.append(Exposure(float(rng.uniform(0, 8)), PLANTED[a][1], a))
        if rng.random() < 0.006:
            planned.append(Exposure(float(rng.uniform(0, 5)), PLANTED["a-rare"][1], "a-rare"))
    if buying_stage == "interest":
        if rng.random() < (0.6 if z < -0.7 else 0.01):
            planned.append(Exposure(float(rng.uniform(0, 1)), 1.0, "a-small"))
        if rng.random() < 0.7:
            planned.append(Exposure(30.0 + float(rng.uniform(0, 3)), 1.0, "a-rescue"))
    return planned


def _ts(days: float) -> datetime:
    return datetime.fromtimestamp(days * 86400, tz=UTC)


def _plain(value):
    """numpy/pandas scalars as plain Python values (NaT/NaN as None)."""
    if value is None or (not isinstance(value, list | str) and pd.isna(value)):
        return None
    if isinstance(value, pd.Timestamp):
        return value.to_pydatetime()
    if isinstance(value, np.generic):
        return value.item()
    return value


def insert(sessions, data: SimData) -> None:
    """Write simulated data with Core bulk inserts (caches notice the new rows by themselves)."""
    from sqlalchemy import insert as sa_insert

    from enablement.db.models import Asset, CrmStage, Deal, Pipeline, Share, StageChange

    with sessions.begin() as session:
        session.execute(
            sa_insert(Pipeline),
            [{"id": pid, "label": pid.upper()} for pid in data.stage_map["pipeline_id"].unique()],
        )
        session.execute(
            sa_insert(CrmStage),
            [
                {
                    "pipeline_id": r.pipeline_id,
                    "id": r.stage_id,
                    "label": r.label,
                    "display_order": int(r.display_order),
                    "buying_stage": r.buying_stage,
                    "is_closed": bool(r.is_closed),
                    "is_won": bool(r.is_won),
                    "mapping_source": r.mapping_source,
                    "mapping_confidence": r.mapping_confidence,
                }
                for r in data.stage_map.itertuples()
            ],
        )
        last = data.history.groupby("deal_id")["stage_id"].last()
        session.execute(
            sa_insert(Deal),
            [
                {
                    k: _plain(v)
                    for k, v in {
                        "id": d["deal_id"],
                        "name": d["name"],
                        "pipeline_id": d["pipeline_id"],
                        "current_stage_id": last.get(d["deal_id"]),
                        "amount": d["amount"],
                        "industry": d["industry"],
                        "owner_id": d["owner_id"],
                        "personas": d["personas"],
                        "topics": d["topics"],
                        "created_at": d["created_at"],
                        "closed_at": d["closed_at"],
                    }.items()
                }
                for d in data.deals.to_dict("records")
            ],
        )
        session.execute(
            sa_insert(StageChange),
            [
                {
                    "deal_id": r.deal_id,
                    "pipeline_id": r.pipeline_id,
                    "stage_id": r.stage_id,
                    "entered_at": r.entered_at.to_pydatetime(),
                }
                for r in data.history.itertuples()
            ],
        )
        session.execute(
            sa_insert(Asset),
            [
                {
                    "id": a["asset_id"],
                    "title": a["title"],
                    "url": f"https://example.com/{a['asset_id']}",
                    "kind": "article",
                    "author": "Ada Author",
                    "stages": a["stages"],
                    "status": "approved",
                }
                for a in data.assets.to_dict("records")
            ],
        )
        if len(data.shares):
            session.execute(
                sa_insert(Share),
                [
                    {
                        "deal_id": r.deal_id,
                        "asset_id": r.asset_id,
                        "shared_at": r.shared_at.to_pydatetime(),
                        "shared_by": _plain(r.shared_by),
                    }
                    for r in data.shares.itertuples()
                ],
            )
