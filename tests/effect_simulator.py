"""A harder world for the effectiveness report: strong, step-shaped confounding by deal size.

One buying stage (evaluation) is enough to test the estimator: every deal enters it once, and
leaves it by advancing (won), by being lost, or not at all before as_of (open). Its hazard of
advancing is a baseline x a size tier (small deals 4x, middle 1.5x, large 0.6x: steps, not a
log-linear slope) x industry x owner x an unobserved gamma frailty (mean 1, variance 0.3) x the
true hazard ratio of every piece already shared. Pieces (true HR, how they are sent):

- `null-small`: HR 1, sent early to 60% of small deals and 4% of the others (the trap: looks fast);
- `short-small`: HR 1.8, sent the same way (must be found, not inflated or shrunk away);
- `long`: HR 0.5, sent early to 25% of deals at random;
- `rescue`: HR 1, sent to 70% of the deals still in the stage after 20 days (looks slow naively);
- `null-0` ... `null-9`: HR 1, sent at a constant rate while the deal is open, more often to small
  deals for half of them: the pieces whose false verdicts the seed sweep counts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np
import pandas as pd

from enablement.domain.episodes import DAY_NS
from enablement.simulation import Exposure, Planned, end_visit

AS_OF = datetime(2026, 6, 30, tzinfo=UTC)
TIERS = (4.0, 1.5, 0.6)  # hazard multiplier of small, middle and large deals
TIER_CUTS = (-0.5, 0.7)  # standardised log amount at which the tiers change
INDUSTRIES = {"software": 1.0, "manufacturing": 0.75, "finance": 1.3, "healthcare": 0.9}
OWNERS = {f"o{i}": m for i, m in enumerate((1.0, 1.3, 0.8, 1.1, 0.9, 1.2))}
BASE_RATE = 1 / 40
LOSS_RATE = 1 / 80
FRAILTY_VARIANCE = 0.3
PLANTED = {
    "null-small": (1.0, "no_evidence"),
    "short-small": (1.8, "shortens"),
    "long": (0.5, "lengthens"),
    "rescue": (1.0, "no_evidence"),
}
NULLS = [f"null-{i}" for i in range(10)]
STAGE_MAP = pd.DataFrame(
    [
        ("p", "eval", "Evaluation", "evaluation", False, False, 0),
        ("p", "won", "Won", None, True, True, 1),
        ("p", "lost", "Lost", None, True, False, 2),
    ],
    columns=[
        "pipeline_id",
        "stage_id",
        "label",
        "buying_stage",
        "is_closed",
        "is_won",
        "display_order",
    ],
)


@dataclass
class World:
    """Frames as the report reads them, and the planted truth."""

    history: pd.DataFrame
    deals: pd.DataFrame
    shares: pd.DataFrame
    truth: dict
    published: dict = field(default_factory=dict)  # asset_id -> published_at


def simulate(n_deals: int = 4000, seed: int = 1) -> World:
    """Simulate one stage's deals, their exits and the shares they received."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0, 1, n_deals)
    tier = np.searchsorted(TIER_CUTS, z)
    small = tier == 0
    industry = rng.choice(list(INDUSTRIES), n_deals)
    owner = rng.choice(list(OWNERS), n_deals)
    frailty = rng.gamma(1 / FRAILTY_VARIANCE, FRAILTY_VARIANCE, n_deals)
    rate = (
        BASE_RATE
        * np.array(TIERS)[tier]
        * np.array([INDUSTRIES[i] for i in industry])
        * np.array([OWNERS[o] for o in owner])
        * frailty
    )
    as_of = AS_OF.timestamp() / 86400
    entered = as_of - rng.uniform(2, 400, n_deals)
    targets = rng.exponential(1.0, n_deals)
    lost_after = rng.exponential(1 / LOSS_RATE, n_deals)
    null_rate = np.where(small, 0.03, 0.01)
    hist, share_rows = [], []
    for k in range(n_deals):
        planned: list[Exposure] = []
        for piece in ("null-small", "short-small"):
            if rng.random() < (0.6 if small[k] else 0.04):
                planned.append(Exposure(float(rng.uniform(0, 2)), PLANTED[piece][0], piece))
        if rng.random() < 0.25:
            planned.append(Exposure(float(rng.uniform(0, 3)), PLANTED["long"][0], "long"))
        if rng.random() < 0.7:
            planned.append(Exposure(20.0 + float(rng.uniform(0, 3)), 1.0, "rescue"))
        for i, piece in enumerate(NULLS):
            per_day = null_rate[k] if i % 2 else 0.015
            for at in np.cumsum(rng.exponential(1 / per_day, size=2)):
                planned.append(Exposure(float(at), 1.0, piece))
        shares = Planned(planned)
        end = end_visit(
            targets[k], rate[k], shares, lost_after=lost_after[k], open_for=as_of - entered[k]
        )
        hist.append((k, "eval", entered[k]))
        if end.outcome != "open":
            hist.append((k, "won" if end.outcome == "advanced" else "lost", entered[k] + end.days))
        share_rows += [(k, e.item, entered[k] + e.at) for e in shares.taken]
    truth = {(piece, "evaluation"): expected for piece, (_, expected) in PLANTED.items()}
    truth |= {(piece, "evaluation"): "no_evidence" for piece in NULLS}
    return _world(hist, share_rows, z, industry, owner, truth)


# Pieces that travel together (simulate_together): `partner` (HR 1.7) is sent early to 35% of
# deals; `bundled` (HR 1) goes with it the same day to half of those, and alone to a few others,
# so about 80% of its sends come with `partner`; `twin-a` (HR 1.5) and `twin-b` (HR 1) are sent
# together to 25% of deals and alone almost never: inseparable, their joint row shortens.
TOGETHER = {
    "partner": (1.7, "shortens"),
    "bundled": (1.0, "no_evidence"),
    "twin-a": (1.5, "no_evidence"),
    "twin-b": (1.0, "no_evidence"),
    "twin-a+twin-b": (1.5, "shortens"),
}
FEW_NULLS = [f"null-{i}" for i in range(6)]
# Calendar drift (simulate_drift): every advance hazard rises 1.8x from the first to the last
# day of the history; `late-null` (HR 1) exists only in the last third, `steady` (HR 1.6) all year.
HISTORY_DAYS = 400
DRIFT = {"late-null": (1.0, "no_evidence"), "steady": (1.6, "shortens")}
DRIFT_RATIO = 1.8


def _attributes(rng, n_deals: int):
    """Size (standardised log amount), industry, owner and the hazard of advancing they give."""
    z = rng.normal(0, 1, n_deals)
    tier = np.searchsorted(TIER_CUTS, z)
    industry = rng.choice(list(INDUSTRIES), n_deals)
    owner = rng.choice(list(OWNERS), n_deals)
    frailty = rng.gamma(1 / FRAILTY_VARIANCE, FRAILTY_VARIANCE, n_deals)
    rate = (
        BASE_RATE
        * np.array(TIERS)[tier]
        * np.array([INDUSTRIES[i] for i in industry])
        * np.array([OWNERS[o] for o in owner])
        * frailty
    )
    return z, industry, owner, rate


def _walk(rng, k, entered, rate, planned, hist, share_rows, as_of, multiplier=1.0):
    """One deal's episode in the stage from its planned shares; records history and shares taken."""
    shares = Planned(planned)
    end = end_visit(
        rng.exponential(1.0),
        rate,
        shares,
        lost_after=rng.exponential(1 / LOSS_RATE),
        open_for=as_of - entered,
        multiplier=multiplier,
    )
    hist.append((k, "eval", entered))
    if end.outcome != "open":
        hist.append((k, "won" if end.outcome == "advanced" else "lost", entered + end.days))
    share_rows += [(k, e.item, entered + e.at) for e in shares.taken if e.item is not None]


def _null_shares(rng, planned: list) -> None:
    """The independent null pieces: sent at a constant rate while the deal is in the stage."""
    for piece in FEW_NULLS:
        for at in np.cumsum(rng.exponential(1 / 0.015, size=2)):
            planned.append(Exposure(float(at), 1.0, piece))


def simulate_together(n_deals: int = 4000, seed: int = 1) -> World:
    """A bundled null beside an effective partner, an inseparable pair, independent nulls."""
    rng = np.random.default_rng(seed)
    z, industry, owner, rate = _attributes(rng, n_deals)
    as_of = AS_OF.timestamp() / 86400
    entered = as_of - rng.uniform(2, HISTORY_DAYS, n_deals)
    hist, share_rows = [], []
    for k in range(n_deals):
        planned: list[Exposure] = []
        if rng.random() < 0.35:
            at = float(rng.uniform(0, 3))
            planned.append(Exposure(at, TOGETHER["partner"][0], "partner"))
            if rng.random() < 0.5:
                planned.append(Exposure(at + float(rng.uniform(0, 0.5)), 1.0, "bundled"))
        elif rng.random() < 0.07:
            planned.append(Exposure(float(rng.uniform(0, 3)), 1.0, "bundled"))
        u = rng.random()
        if u < 0.27:
            at = float(rng.uniform(0, 3))
            if u < 0.25 or u < 0.26:
                planned.append(Exposure(at, TOGETHER["twin-a"][0], "twin-a"))
            if u < 0.25 or u >= 0.26:
                planned.append(Exposure(at + float(rng.uniform(0, 0.2)), 1.0, "twin-b"))
        _null_shares(rng, planned)
        _walk(rng, k, entered[k], rate[k], planned, hist, share_rows, as_of)
    truth = {(piece, "evaluation"): expected for piece, (_, expected) in TOGETHER.items()}
    truth |= {(piece, "evaluation"): "no_evidence" for piece in FEW_NULLS}
    return _world(hist, share_rows, z, industry, owner, truth)


def simulate_drift(n_deals: int = 4000, seed: int = 1) -> World:
    """Every hazard rising DRIFT_RATIO-fold over the history; a null piece published in its last third."""
    rng = np.random.default_rng(seed)
    z, industry, owner, rate = _attributes(rng, n_deals)
    as_of = AS_OF.timestamp() / 86400
    first = as_of - HISTORY_DAYS
    published = first + 2 * HISTORY_DAYS / 3
    entered = as_of - rng.uniform(2, HISTORY_DAYS, n_deals)
    # NOTE: the drift is in calendar time, as a tick every 5 days that multiplies the hazard
    # (shares of no piece): an episode speeds up while it lasts, not only by its entry date.
    tick = DRIFT_RATIO ** (5 / HISTORY_DAYS)
    hist, share_rows = [], []
    for k in range(n_deals):
        since = entered[k] - first
        planned = [
            Exposure(float(at), tick, None)
            for at in np.arange(5 - since % 5, as_of - entered[k], 5)
        ]
        if rng.random() < 0.3:
            planned.append(Exposure(float(rng.uniform(0, 3)), DRIFT["steady"][0], "steady"))
        if rng.random() < 0.5:
            at = max(0.0, published - entered[k]) + float(rng.uniform(0, 3))
            planned.append(Exposure(at, 1.0, "late-null"))
        _null_shares(rng, planned)
        start = tick ** (since // 5)
        _walk(rng, k, entered[k], rate[k], planned, hist, share_rows, as_of, multiplier=start)
    truth = {(piece, "evaluation"): expected for piece, (_, expected) in DRIFT.items()}
    truth |= {(piece, "evaluation"): "no_evidence" for piece in FEW_NULLS}
    day = pd.Timestamp(published * DAY_NS, tz="UTC").to_pydatetime()
    return _world(hist, share_rows, z, industry, owner, truth, {"late-null": day})


def _world(hist, share_rows, z, industry, owner, truth, published=None) -> World:
    """Frames as the report reads them from (deal, stage, day) history rows and (deal, asset, day) shares."""
    ids = np.array([f"d{k:06d}" for k in range(len(z))])
    hist_frame = pd.DataFrame(hist, columns=["deal", "stage_id", "t"])
    share_frame = pd.DataFrame(share_rows, columns=["deal", "asset_id", "t"])
    return World(
        history=pd.DataFrame(
            {
                "deal_id": ids[hist_frame["deal"].to_numpy()],
                "pipeline_id": "p",
                "stage_id": hist_frame["stage_id"].to_numpy(),
                "entered_at": pd.to_datetime(hist_frame["t"].to_numpy() * DAY_NS, utc=True),
            }
        ),
        deals=pd.DataFrame(
            {
                "deal_id": ids,
                "pipeline_id": "p",
                "amount": np.round(np.exp(10 + z), 2),
                "industry": industry,
                "owner_id": owner,
            }
        ),
        shares=pd.DataFrame(
            {
                "deal_id": ids[share_frame["deal"].to_numpy()].astype(object),
                "asset_id": share_frame["asset_id"].to_numpy(dtype=object),
                "shared_at": pd.to_datetime(
                    share_frame["t"].to_numpy(dtype=float) * DAY_NS, utc=True
                ),
            }
        ),
        truth=truth,
        published=published or {},
    )
