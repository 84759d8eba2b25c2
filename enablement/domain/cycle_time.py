"""How long deals sit in each stage: counts, Kaplan-Meier quantiles and competing-risk incidence."""

from __future__ import annotations

from typing import TYPE_CHECKING

from enablement.domain.episodes import DAY_NS, to_days
from enablement.domain.stages import BUYING_STAGES
from enablement.domain.survival.competing_risks import cumulative_incidence
from enablement.domain.survival.kaplan_meier import km_quantiles

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

# NOTE: numpy and pandas are imported inside the functions: they load when a report
# runs, not when the CLI or the web app starts (tests/test_startup.py).

METHOD = (
    "Episodes: a deal's stay in a CRM stage (from entering it until entering another stage) and in a "
    "buying stage (product.md definitions). advanced = left to a later stage or a won stage; lost = "
    "left to a lost stage; open = still there at as_of; other exits (backward, unmapped) are counted "
    "in 'other'. median/p25/p75 days: Kaplan-Meier time until 50%/25%/75% of episodes "
    "have advanced, every non-advance treated as censored at its end (open ones at as_of); null when "
    "too few advanced to reach that share. Because lost episodes are censored too, these are the days "
    "to advance had no deal been lost, not the days by which half have actually advanced. Competing "
    "risks beside them: Aalen-Johansen cumulative incidence of advancing and of being lost (lost is a "
    "competing outcome; open, backward and unmapped exits are censored): advanced_at_median = share of "
    "episodes that had actually advanced by the Kaplan-Meier median; advanced_30d/lost_30d and "
    "advanced_90d/lost_90d = shares advanced / lost within 30 and 90 days; cif_median_days = days "
    "until half of the episodes have actually advanced (null when lost deals keep it below half). "
    "Won-deal cycle: days from creation to the first won stage, "
    "by month of creation, with the cohort's still-open deals shown (recent cohorts only contain the "
    "deals that won fast)."
)


def competing_risks(durations: np.ndarray, outcome: np.ndarray, km_median: float | None) -> dict:
    """Shares advanced and lost by 30 and 90 days, advanced by the KM median, and the AJ median."""
    import numpy as np

    out = {
        "advanced_at_median": None,
        "advanced_30d": None,
        "lost_30d": None,
        "advanced_90d": None,
        "lost_90d": None,
        "cif_median_days": None,
    }
    if len(durations) == 0:
        return out
    times, adv, lost = cumulative_incidence(durations, outcome == "advanced", outcome == "lost")

    def at(t: float, curve: np.ndarray) -> float:
        """The step curve's value at day t."""
        i = np.searchsorted(times, t, side="right") - 1
        return round(float(curve[i]), 4) if i >= 0 else 0.0

    for days in (30, 90):
        out[f"advanced_{days}d"] = at(days, adv)
        out[f"lost_{days}d"] = at(days, lost)
    if km_median is not None:
        out["advanced_at_median"] = at(km_median, adv)
    hit = np.flatnonzero(adv >= 0.5 - 1e-12)
    out["cif_median_days"] = round(float(times[hit[0]]), 2) if len(hit) else None
    return out


def _summarise(group: pd.DataFrame) -> dict:
    """Counts by outcome, Kaplan-Meier quantiles and competing-risk incidence of one stage."""
    outcome = group["outcome"]
    row = {
        "entered": int(len(group)),
        "advanced": int((outcome == "advanced").sum()),
        "lost": int((outcome == "lost").sum()),
        "open": int((outcome == "open").sum()),
        "other": int((~outcome.isin(["advanced", "lost", "open"])).sum()),
    }
    durations = group["duration_days"].to_numpy(dtype=float)
    row.update(km_quantiles(durations, group["advanced"].to_numpy(dtype=bool)))
    row.update(competing_risks(durations, outcome.to_numpy(dtype=object), row["median_days"]))
    return row


def compute_cycle_time(
    episodes: pd.DataFrame,
    crm_episodes: pd.DataFrame,
    stage_map: pd.DataFrame,
    deals: pd.DataFrame,
    history: pd.DataFrame,
    as_of_iso: str,
    as_of_days: float,
) -> dict:
    """The cycle-time report: per CRM stage, per buying stage, and won-deal cycle by creation month."""
    crm_rows = []
    labels = {
        (r.pipeline_id, r.stage_id): (r.label, r.buying_stage, int(r.display_order or 0))
        for r in stage_map.itertuples(index=False)
    }
    for (pipe, stage), group in crm_episodes.groupby(["pipeline_id", "stage_id"], sort=False):
        label, bs, order = labels.get((pipe, stage), (stage, None, 0))
        crm_rows.append(
            {
                "pipeline_id": pipe,
                "stage_id": stage,
                "label": label,
                "buying_stage": bs if bs in BUYING_STAGES else None,
                "_order": order,
                **_summarise(group),
            }
        )
    crm_rows.sort(key=lambda r: (r["pipeline_id"], r.pop("_order"), r["stage_id"]))
    buying_rows = []
    for stage in BUYING_STAGES:
        group = episodes[episodes["buying_stage"] == stage]
        buying_rows.append({"buying_stage": stage, **_summarise(group)})
    return {
        "as_of": as_of_iso,
        "method": METHOD,
        "crm_stages": crm_rows,
        "buying_stages": buying_rows,
        "won_cycle_by_month": won_cycle_by_month(stage_map, deals, history, as_of_days),
    }


def won_cycle_by_month(
    stage_map: pd.DataFrame, deals: pd.DataFrame, history: pd.DataFrame, as_of_days: float
) -> list[dict]:
    """Per creation month: deals created, won, still open, and won cycle days (median, p25, p75)."""
    import numpy as np
    import pandas as pd

    if deals.empty:
        return []
    won_stages = {
        (r.pipeline_id, r.stage_id)
        for r in stage_map.itertuples(index=False)
        if bool(r.is_closed) and bool(r.is_won)
    }
    closed_stages = {
        (r.pipeline_id, r.stage_id) for r in stage_map.itertuples(index=False) if bool(r.is_closed)
    }
    h = history.assign(t=to_days(history["entered_at"]) if len(history) else [])
    h = h[h["t"] <= as_of_days]
    keys = list(zip(h["pipeline_id"], h["stage_id"], strict=True))
    is_won = np.array([k in won_stages for k in keys], dtype=bool)
    won_at = h[is_won].groupby("deal_id")["t"].min()
    last = h.sort_values(["deal_id", "t"], kind="stable").groupby("deal_id").tail(1)
    last_closed = {
        d
        for d, p, s in zip(last["deal_id"], last["pipeline_id"], last["stage_id"], strict=True)
        if (p, s) in closed_stages
    }
    created = to_days(deals["created_at"])
    frame = pd.DataFrame(
        {
            "deal_id": deals["deal_id"].to_numpy(),
            "created": created,
            "month": pd.to_datetime(created * DAY_NS, utc=True).strftime("%Y-%m"),
        }
    )
    frame = frame[frame["created"] <= as_of_days]
    frame["won_at"] = frame["deal_id"].map(won_at)
    frame["open"] = ~frame["deal_id"].isin(last_closed)
    rows = []
    for month, group in frame.groupby("month", sort=True):
        won = group.dropna(subset=["won_at"])
        days = (won["won_at"] - won["created"]).clip(lower=0).to_numpy()
        quant = np.percentile(days, [25, 50, 75]) if len(days) else [None] * 3
        rows.append(
            {
                "month": month,
                "created": int(len(group)),
                "won": int(len(won)),
                "open": int(group["open"].sum()),
                "median_days": None if quant[1] is None else round(float(quant[1]), 2),
                "p25_days": None if quant[0] is None else round(float(quant[0]), 2),
                "p75_days": None if quant[2] is None else round(float(quant[2]), 2),
            }
        )
    return rows
