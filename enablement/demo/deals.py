"""The demo's deals: stage histories walked by enablement.simulation, the reps' shares and the buyers' views.

A deal's clock of moving forward runs at its speed (smaller deals are faster) over the
stage's mean days; losing gets likelier further down the pipeline, and deals past the
first stage sometimes move back. Reps share at their own rate while a deal is open, mostly
pieces made for its buying stage; a share of a planted asset in its stage multiplies the
deal's hazard of moving on, and the confounded piece goes mostly to small (fast) deals.
"""

from __future__ import annotations

import bisect
import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import accumulate
from typing import TYPE_CHECKING, NamedTuple

from enablement.demo.library import DemoAsset, PlantedEffect
from enablement.demo.world import (
    COMPANY_ROOTS,
    COMPANY_SUFFIXES,
    INDUSTRIES,
    INITIATIVES,
    PERSONAS,
    PIPELINES,
    REPS,
    TOPICS_BY_INDUSTRY,
    DemoPipeline,
    Rep,
)
from enablement.domain.crm import DealRecord, StageEntry
from enablement.domain.stages import BUYING_STAGES
from enablement.simulation import SimPipeline, SimStage, Visit, walk_deal

if TYPE_CHECKING:
    from numpy.random import Generator

DAY = 86400.0
CHANNELS = ("email", "email", "email", "linkedin", "meeting follow-up")
REP_WEIGHTS = (3, 3, 3, 3, 3, 3, 2, 2)  # deals per rep, relative (REPS order)
MEDIAN_AMOUNT = {"default": 25000.0, "31468712": 90000.0}


@dataclass(frozen=True)
class DemoShare:
    """An asset shared to a deal by its owner, with the buyer's views of the link."""

    deal_id: str
    asset_id: str
    shared_at: datetime
    shared_by: str
    channel: str
    viewed_at: tuple[datetime, ...] = ()


class Company(NamedTuple):
    """A buying company and its industry (a company may have several deals)."""

    name: str
    industry: str


@dataclass
class _Pool:
    """Share-able assets with cumulative weights, for one buying stage or for any."""

    assets: list[DemoAsset]
    cumulative: list[float]

    def draw(self, rng: Generator) -> DemoAsset:
        """One asset, chosen with probability proportional to its weight."""
        at = bisect.bisect_right(self.cumulative, rng.random() * self.cumulative[-1])
        return self.assets[min(at, len(self.assets) - 1)]


@dataclass(frozen=True)
class _Cast:
    """What every deal draws on: companies, share pools, effects, open rates, series order."""

    companies: list[Company]
    pools: dict[str, _Pool]
    effects: dict[str, PlantedEffect]
    confounded: frozenset[str]
    open_rate: dict[str, float]
    series_next: dict[str, DemoAsset]


def simulate_deals(
    cast_rng: random.Random,
    rng: Generator,
    now: datetime,
    n: int,
    library: tuple[DemoAsset, ...],
    planted: tuple[PlantedEffect, ...],
) -> tuple[tuple[DealRecord, ...], tuple[DemoShare, ...]]:
    """n deals created over the year before `now`, and the shares they received.

    cast_rng draws the companies, how popular each asset is and how often it is opened;
    rng walks the deals.
    """
    by_position = {(a.series, a.series_order): a for a in library if a.series}
    cast = _Cast(
        companies=_companies(cast_rng, max(40, n // 3)),
        pools=_share_pools(cast_rng, library),
        effects={p.asset_id: p for p in planted},
        confounded=frozenset(p.asset_id for p in planted if p.hazard_ratio == 1.0),
        open_rate={
            a.id: (0.0 if a.role == "unopened" else cast_rng.uniform(0.45, 0.95)) for a in library
        },
        series_next={
            a.id: by_position[(a.series, a.series_order + 1)]
            for a in library
            if a.series and (a.series, a.series_order + 1) in by_position
        },
    )
    records, shares = [], []
    for i in range(n):
        record, deal_shares = _deal(rng, now, i, cast)
        records.append(record)
        shares.extend(deal_shares)
    return tuple(records), tuple(shares)


def sim_pipeline(pipeline: DemoPipeline) -> SimPipeline:
    """The demo pipeline as the simulation walks it (rates per day at speed 1)."""
    open_stages = [s for s in pipeline.stages if not s.is_closed]
    return SimPipeline(
        stages=tuple(
            SimStage(
                s.id,
                s.buying_stage,
                advance_rate=1 / (s.mean_days * 1.35),
                loss_rate=0.005 + 0.0015 * i,
                back_rate=0.012 if i > 0 else 0.0,
            )
            for i, s in enumerate(open_stages)
        ),
        won=next(s.id for s in pipeline.stages if s.is_won),
        lost=next(s.id for s in pipeline.stages if s.is_closed and not s.is_won),
    )


_SIM_PIPELINES = {p.id: sim_pipeline(p) for p in PIPELINES}


def _share_pools(rng: random.Random, library: tuple[DemoAsset, ...]) -> dict[str, _Pool]:
    """Per buying stage (and "any"): the assets reps share, planted ones often, shelfware never."""
    base: dict[str, float] = {}
    for asset in library:
        if asset.status == "draft" or asset.role == "shelfware" or not asset.stages:
            continue
        weight = rng.lognormvariate(0, 0.7)
        if asset.role in ("planted", "confounded"):
            weight = 9.0
        elif asset.role == "series":
            weight *= 1.5
        base[asset.id] = weight

    def pool(members: list[DemoAsset]) -> _Pool:
        return _Pool(members, list(accumulate(base[a.id] for a in members)))

    pools = {
        stage: pool([a for a in library if a.id in base and stage in a.stages])
        for stage in BUYING_STAGES
    }
    pools["any"] = pool([a for a in library if a.id in base])
    return pools


def _companies(rng: random.Random, n: int) -> list[Company]:
    """Distinct company names with their industry."""
    found: dict[str, str] = {}
    for _ in range(n * 5):
        if len(found) >= n:
            break
        industry = rng.choice(INDUSTRIES)
        found.setdefault(
            f"{rng.choice(COMPANY_ROOTS)} {rng.choice(COMPANY_SUFFIXES[industry])}", industry
        )
    return [Company(name, industry) for name, industry in found.items()]


def _when(start: datetime, days: float) -> datetime:
    return start + timedelta(seconds=round(days * DAY))


def _pick(rng: Generator, options: tuple, weights: tuple[float, ...] | None = None):
    """One of options (uniform, or proportional to weights): a plain Python value."""
    if weights is None:
        return options[int(rng.integers(len(options)))]
    cumulative = list(accumulate(weights))
    at = bisect.bisect_right(cumulative, rng.random() * cumulative[-1])
    return options[min(at, len(options) - 1)]


def _sample(rng: Generator, options, k: int) -> tuple[str, ...]:
    """k distinct options, sorted."""
    chosen = rng.choice(len(options), size=k, replace=False)
    return tuple(sorted(options[int(i)] for i in chosen))


@dataclass
class _DealState:
    """One deal as its rep works it: what was sent, what the buyer will want next, the shares."""

    deal_id: str
    created: datetime
    rep: Rep
    small: bool
    share_rate: float
    sent: set[str] = field(default_factory=set)
    engaged_next: list[DemoAsset] = field(default_factory=list)
    shares: list[DemoShare] = field(default_factory=list)


@dataclass
class _RepShares:
    """The simulation's SharePlan for one stage visit: the rep shares at a constant rate."""

    rng: Generator
    now: datetime
    cast: _Cast
    deal: _DealState
    visit: Visit
    t: float = 0.0

    def next_at(self) -> float:
        """Days into the visit of the rep's next share."""
        self.t += self.rng.exponential(1 / self.deal.share_rate)
        return self.t

    def take(self, at: float) -> float:
        """Send a piece now (if there is one to send); its hazard ratio in this buying stage."""
        deal, stage = self.deal, self.visit.stage.buying_stage
        when = _when(deal.created, self.visit.start + at)
        asset = self._choose(stage, when)
        if asset is None:
            return 1.0
        deal.sent.add(asset.id)
        views = _views(self.rng, when, self.now, self.cast.open_rate[asset.id])
        if views and asset.id in self.cast.series_next:
            deal.engaged_next.append(self.cast.series_next[asset.id])
        channel = _pick(self.rng, CHANNELS)
        deal.shares.append(DemoShare(deal.deal_id, asset.id, when, deal.rep.id, channel, views))
        effect = self.cast.effects.get(asset.id)
        return effect.hazard_ratio if effect and effect.buying_stage == stage else 1.0

    def _choose(self, buying_stage: str, when: datetime) -> DemoAsset | None:
        """Usually a piece made for the stage, sometimes the next piece of a series the buyer opened."""
        rng, deal = self.rng, self.deal
        if deal.engaged_next and rng.random() < 0.5:
            candidate = deal.engaged_next.pop(0)
            if _available(candidate, when) and candidate.id not in deal.sent:
                return candidate
        pools = self.cast.pools
        pool = pools[buying_stage] if rng.random() < 0.85 and pools[buying_stage].assets else None
        pool = pool or pools["any"]
        if not pool.assets:
            return None
        for _ in range(4):
            asset = pool.draw(rng)
            if asset.id in self.cast.confounded and not deal.small and rng.random() < 0.85:
                continue  # reps send this one mostly to small deals
            if asset.id not in deal.sent and _available(asset, when):
                return asset
        return None


def _deal(rng: Generator, now: datetime, i: int, cast: _Cast) -> tuple[DealRecord, list[DemoShare]]:
    """One deal: its attributes, its walk through the pipeline and the shares on the way."""
    pipeline = PIPELINES[0] if rng.random() < 0.7 else PIPELINES[1]
    company = _pick(rng, cast.companies)
    rep = _pick(rng, REPS, REP_WEIGHTS)
    median = MEDIAN_AMOUNT[pipeline.id]
    amount = round(median * float(rng.lognormal(0, 0.9)), -2) or 100.0
    created = now - timedelta(days=float(rng.uniform(1, 365)), seconds=int(rng.integers(86400)))
    created = created.replace(microsecond=0)
    personas = _sample(rng, PERSONAS, _pick(rng, (1, 2, 2, 3)))
    topics = _sample(
        rng,
        sorted({*TOPICS_BY_INDUSTRY[company.industry], "buying committees"}),
        _pick(rng, (1, 2)),
    )
    deal = _DealState(
        deal_id=str(18_000_000_001 + i),
        created=created,
        rep=rep,
        small=amount < median,
        share_rate=0.09 * rep.share_propensity * float(rng.lognormal(0, 0.4)),
    )
    speed = (amount / median) ** -0.3 * float(rng.lognormal(0, 0.3))
    start = 0 if pipeline.id == "default" or rng.random() < 0.6 else 1
    walk = walk_deal(
        rng,
        _SIM_PIPELINES[pipeline.id],
        lambda visit: _RepShares(rng, now, cast, deal, visit),
        open_for=(now - created).total_seconds() / DAY,
        speed=speed,
        start=start,
    )
    entries, last = [], None
    for move in walk.moves:
        at = _when(created, move.at)
        if last is not None and at <= last:
            at = last + timedelta(minutes=1)
        entries.append(StageEntry(at, move.stage_id))
        last = at
    record = DealRecord(
        id=deal.deal_id,
        name=f"{company.name} – {_pick(rng, INITIATIVES)}",
        company=company.name,
        pipeline_id=pipeline.id,
        created_at=created,
        stage_history=tuple(entries),
        amount=amount,
        currency="USD",
        industry=company.industry,
        owner_id=rep.id,
        closed_at=entries[-1].entered_at if walk.outcome != "open" else None,
        personas=personas,
        topics=topics,
        source_modified_at=entries[-1].entered_at,
    )
    return record, deal.shares


def _available(asset: DemoAsset, when: datetime) -> bool:
    if asset.published_at is None or asset.published_at > when:
        return False
    return asset.retired_at is None or when < asset.retired_at


def _views(rng: Generator, shared_at: datetime, now: datetime, open_rate: float) -> tuple:
    """When the buyer opened the link (none when they did not), never after `now`."""
    if rng.random() >= open_rate:
        return ()
    times, at = [], shared_at
    for _ in range(_pick(rng, (1, 1, 1, 2, 2, 3))):
        at = at + timedelta(seconds=round(3600 * float(rng.lognormal(1.5, 1.2))) + 30)
        if at > now:
            break
        times.append(at)
    return tuple(times)
