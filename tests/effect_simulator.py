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

from dataclasses import dataclass
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
    ids = np.array([f"d{k:06d}" for k in range(n_deals)])
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
                "deal_id": ids[share_frame["deal"].to_numpy()],
                "asset_id": share_frame["asset_id"].to_numpy(),
                "shared_at": pd.to_datetime(share_frame["t"].to_numpy() * DAY_NS, utc=True),
            }
        ),
        truth={(piece, "evaluation"): expected for piece, (_, expected) in PLANTED.items()}
        | {(piece, "evaluation"): "no_evidence" for piece in NULLS},
    )
