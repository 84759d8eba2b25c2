"""The one deal simulator (demo data and test worlds): stage visits with piecewise-constant hazards.

A deal walks a pipeline's open stages. In each visit three exponential clocks compete:
advancing (to the next stage, now and then skipping one; from the last open stage to won),
being lost, and moving back one stage; a deal none of them has rung for by the horizon is
open. From the moment of every share, the clock of advancing runs faster or slower by that
share's hazard ratio (the planted effect), and the product carries over while the deal stays
in the same buying stage: it is one stage episode, as the effectiveness report defines it.

Pure: takes the random generator (numpy's `Generator`: `exponential`, `random`) and plain
values, returns records; what is shared, and when, comes from the caller's `SharePlan`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol


class Randomness(Protocol):
    """The draws the walk needs (numpy.random.Generator has them)."""

    def exponential(self, scale: float) -> float:
        """A draw of an exponential with mean `scale`."""

    def random(self) -> float:
        """A uniform draw in [0, 1)."""


class SharePlan(Protocol):
    """The shares of one stage visit, revealed in time order as the walk reaches them."""

    def next_at(self) -> float:
        """Days into the visit of the next share (inf: no more shares)."""

    def take(self, at: float) -> float:
        """The share at `at` happened (the deal was still in the stage): its hazard ratio."""


class Exposure(NamedTuple):
    """A share known in advance: days into the visit, true hazard ratio, what was shared."""

    at: float
    hazard_ratio: float = 1.0
    item: object = None


@dataclass
class Planned:
    """A SharePlan of shares drawn up front; `taken` lists those that happened, in time order."""

    exposures: Iterable[Exposure]
    taken: list[Exposure] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._queue = sorted(self.exposures, key=lambda e: e.at, reverse=True)

    def next_at(self) -> float:
        """Days into the visit of the next share (inf: none left)."""
        return self._queue[-1].at if self._queue else math.inf

    def take(self, at: float) -> float:
        """Record the next share as taken; its hazard ratio."""
        exposure = self._queue.pop()
        self.taken.append(exposure)
        return exposure.hazard_ratio


@dataclass(frozen=True)
class VisitEnd:
    """How a stage visit ended: after `days`, advanced, lost, back or open (at the horizon).

    multiplier is the product of the hazard ratios of the shares taken (and the one carried in).
    """

    days: float
    outcome: str
    multiplier: float


def end_visit(
    target: float,
    rate: float,
    shares: SharePlan,
    *,
    lost_after: float = math.inf,
    back_after: float = math.inf,
    open_for: float = math.inf,
    multiplier: float = 1.0,
) -> VisitEnd:
    """The end of one visit: the advance clock rings when its cumulative hazard reaches `target`.

    target ~ Exp(1); rate is advances per day before shares; lost_after and back_after are
    the other clocks' draws (days), open_for the days left until the horizon. A share is
    taken only while the deal is still in the stage.
    """
    cap = min(lost_after, back_after, open_for)
    t, cum, mult = 0.0, 0.0, multiplier
    while True:
        at = shares.next_at()
        if at >= cap:
            break
        segment = (at - t) * rate * mult
        if cum + segment >= target:
            break
        cum += segment
        t, mult = at, mult * shares.take(at)
    advance = t + (target - cum) / (rate * mult)
    end = min(advance, cap)
    if end == open_for:
        outcome = "open"
    elif lost_after <= min(advance, back_after):
        outcome = "lost"
    elif back_after <= advance:
        outcome = "back"
    else:
        outcome = "advanced"
    return VisitEnd(end, outcome, mult)


def advance_time(target: float, rate: float, shares: Iterable[tuple[float, float]]) -> float:
    """Days until the cumulative hazard reaches `target` when each (day, HR) share multiplies the rate."""
    return end_visit(target, rate, Planned([Exposure(at, hr) for at, hr in shares])).days


@dataclass(frozen=True)
class SimStage:
    """An open stage of a simulated pipeline and its clocks (per day; advance_rate at speed 1)."""

    id: str
    buying_stage: str
    advance_rate: float
    loss_rate: float
    back_rate: float = 0.0


@dataclass(frozen=True)
class SimPipeline:
    """The open stages in order, and the won and lost stages a deal ends in."""

    stages: tuple[SimStage, ...]
    won: str
    lost: str


@dataclass(frozen=True)
class Visit:
    """A stage visit as a SharePlan sees it: the stage, its index, and the start (days since creation)."""

    stage: SimStage
    index: int
    start: float


class Move(NamedTuple):
    """A deal entered `stage_id` `at` days after its creation."""

    at: float
    stage_id: str


@dataclass(frozen=True)
class DealWalk:
    """A deal's simulated stage history (first entry at day 0) and how it stands: won, lost or open."""

    moves: tuple[Move, ...]
    outcome: str


def walk_deal(
    rng: Randomness,
    pipeline: SimPipeline,
    plan: Callable[[Visit], SharePlan],
    *,
    open_for: float,
    speed: float = 1.0,
    start: int = 0,
    skip: float = 0.1,
) -> DealWalk:
    """Walk one deal from open stage `start` until it is won, lost or reaches the horizon.

    open_for: days from creation to the horizon; speed multiplies every advance rate; skip is
    the chance that advancing jumps a stage (when one is left to jump to). Per visit the walk
    asks `plan` for the visit's shares, then draws the advance, loss and (if any) back clocks.
    """
    stages = pipeline.stages
    index, t, carried = start, 0.0, 1.0
    moves = [Move(0.0, stages[index].id)]
    while True:
        stage = stages[index]
        shares = plan(Visit(stage, index, t))
        target = rng.exponential(1.0)
        lost_after = rng.exponential(1 / stage.loss_rate)
        back_after = rng.exponential(1 / stage.back_rate) if stage.back_rate > 0 else math.inf
        end = end_visit(
            target,
            speed * stage.advance_rate,
            shares,
            lost_after=lost_after,
            back_after=back_after,
            open_for=open_for - t,
            multiplier=carried,
        )
        if end.outcome == "open":
            return DealWalk(tuple(moves), "open")
        t += end.days
        if end.outcome == "lost":
            moves.append(Move(t, pipeline.lost))
            return DealWalk(tuple(moves), "lost")
        if end.outcome == "back":
            index -= 1
        elif index == len(stages) - 1:
            moves.append(Move(t, pipeline.won))
            return DealWalk(tuple(moves), "won")
        else:
            index += 2 if index + 2 < len(stages) and rng.random() < skip else 1
        # A new buying stage is a new episode: earlier shares no longer count as exposure.
        carried = end.multiplier if stages[index].buying_stage == stage.buying_stage else 1.0
        moves.append(Move(t, stages[index].id))
