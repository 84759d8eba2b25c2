"""Did sharing an asset shorten the stage? Time-varying Cox hazard ratios per (asset, buying stage).

See METHOD (returned in the report) for the estimator in plain words, and docs/effectiveness.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from enablement.domain.effectiveness.diagnostics import diagnostics
from enablement.domain.effectiveness.estimates import clean, estimate
from enablement.domain.effectiveness.medians import comparable_unexposed_median
from enablement.domain.effectiveness.stage_model import MAX_AMOUNT_BINS, StageModel
from enablement.domain.effectiveness.verdicts import (
    MIN_ADVANCES,
    MIN_EXPOSED,
    bh_q_values,
    verdict,
)
from enablement.domain.episodes import exposures
from enablement.domain.stages import BUYING_STAGES
from enablement.domain.survival.kaplan_meier import km_median

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

# NOTE: numpy and pandas are imported inside the functions: they load when a report runs,
# not when the CLI or the web app starts (tests/test_startup.py).

METHOD = (
    "Unit: a stage episode (a deal's stay in one buying stage, from entering it until it leaves; "
    "advancing = entering a later buying stage or a won stage; lost, backward, unmapped and still-open "
    "episodes are censored at their end or at as_of). Exposure to an asset is time-varying: an episode "
    "counts as exposed only from the first time the asset was shared to the deal during the episode, "
    "so the time before the share is unexposed (no credit for surviving until the share, which removes "
    "the bias from long or stalled deals receiving more and later shares). Effect: the hazard ratio of "
    "advancing, exposed versus unexposed, from a Cox proportional-hazards model (Breslow ties) with the "
    "exposure and the deal attributes together. Adjustment (flexible, chosen from the data): deal amount "
    "as quantile bins of the stage's own amounts (up to deciles, at least 40 advances a bin; missing "
    "amounts are their own bin) plus a linear log-amount term within them, so a size effect of any "
    "shape, steps included, is described; industry, pipeline and owner as categories (levels with fewer "
    "than 30 episodes pooled, at most 40 owners). Estimation: per buying stage one Cox model of the "
    "deal attributes alone (Newton-Raphson, ridge 0.1) gives risk scores; per (asset, stage) the "
    "exposure coefficient is first fitted with those scores as a fixed offset, then one joint "
    "Newton-Raphson step of the full partial likelihood in [exposure, all adjustment coefficients] from "
    "that point (its exposure rows and cross-information computed exactly, the attribute block taken "
    "from the stage model) moves the estimate to the joint fit's; when that step moves it by more "
    "than 0.2 standard errors (an exposure strongly tied to the attributes) the pair's joint fit is "
    "finished exactly (Newton-Raphson with the full joint information, to convergence). The standard "
    "error is the joint one (the exposure entry of the inverse joint information; for the one-step "
    "estimate the larger of its values at both ends of the step), so the 95% Wald interval and "
    "two-sided p-value include the uncertainty of the estimated adjustment and are never narrower "
    "than the offset fit's. q-value: Benjamini-Hochberg (fdr_bh) across every (asset, stage) pair estimated in "
    "this report. Verdict: shortens when q <= 0.05 and CI low > 1; lengthens when q <= 0.05 and CI "
    "high < 1; insufficient_data when fewer than 20 exposed episodes or fewer than 10 exposed advances "
    "(no model is fitted); otherwise no_evidence. Medians (descriptive, Kaplan-Meier, censoring "
    "respected): exposed = days from the share to advancing; comparable unexposed = episodes still in "
    "the stage and not yet exposed at the exposed episodes' share delays (landmarks at up to 4 delay "
    "quantiles), followed from the landmark and censored when they receive the asset later, weighted "
    "to the exposed episodes' amount-bin mix at each landmark, so a piece with no effect compares as "
    "equal. Diagnostics per fitted pair: standardised differences between exposed and unexposed "
    "episodes (log amount; largest over industries and over owners; |d| > 0.1 flagged), a "
    "proportional-hazards check (score test of exposure x log(days in stage); a small p means the "
    "effect changes over time and the ratio is an average), and E-values (VanderWeele-Ding, hazard "
    "ratio converted for a common outcome): how strongly an unmeasured confounder would have to be "
    "tied to both the share and advancing to explain the hazard ratio, or its interval's bound "
    "nearest 1, away."
)


def episodes_with_attributes(episodes: pd.DataFrame, deals: pd.DataFrame) -> pd.DataFrame:
    """Episodes with the deal attributes the adjustment uses (amount, industry, owner)."""
    attrs = deals[["deal_id", "amount", "industry", "owner_id"]].drop_duplicates("deal_id")
    # NOTE: only the columns the report reads: a copy of every episode column costs memory.
    columns = [
        "deal_id",
        "pipeline_id",
        "buying_stage",
        "start",
        "end",
        "duration_days",
        "advanced",
    ]
    return episodes[columns].reset_index(drop=True).merge(attrs, on="deal_id", how="left")


def compute_effectiveness(
    episodes: pd.DataFrame,
    deals: pd.DataFrame,
    shares: pd.DataFrame,
    titles: dict[str, str],
    as_of_iso: str,
    min_exposed: int = MIN_EXPOSED,
    min_advances: int = MIN_ADVANCES,
    max_amount_bins: int = MAX_AMOUNT_BINS,
) -> dict:
    """The effectiveness report: one item per (asset, buying stage) with any exposed episode.

    `episodes` from build_episodes; `deals` has deal_id, amount, industry, pipeline_id, owner_id;
    `shares` has deal_id, asset_id, shared_at. Numbers that cannot be estimated are None with a reason.
    `max_amount_bins` caps the deal-amount quantile bins of the adjustment (1: one linear term).
    """
    import numpy as np

    eps = episodes_with_attributes(episodes, deals)
    exp = exposures(eps, shares)
    items: list[dict] = []
    fitted: list[dict] = []
    exp_episode = exp["episode"].to_numpy(dtype=np.int64)
    exp_asset = exp["asset_id"].to_numpy(dtype=object)
    exp_after = exp["exposed_after_days"].to_numpy(dtype=float)
    stage_of = eps["buying_stage"].to_numpy(dtype=object)
    for stage in BUYING_STAGES:
        in_stage = np.flatnonzero(stage_of == stage)
        keep = stage_of[exp_episode] == stage if len(exp_episode) else np.zeros(0, dtype=bool)
        if len(in_stage) == 0 or not keep.any():
            continue
        sub = eps.iloc[in_stage].reset_index(drop=True)
        local = np.full(len(eps), -1, dtype=np.int64)
        local[in_stage] = np.arange(len(in_stage))
        # Exposures of this stage grouped by asset: rows (local episode index) and share delays.
        order = np.argsort(exp_asset[keep].astype(str), kind="stable")
        assets_sorted = exp_asset[keep][order]
        rows_sorted = local[exp_episode[keep]][order]
        after_sorted = exp_after[keep][order]
        bounds = np.flatnonzero(assets_sorted[1:] != assets_sorted[:-1]) + 1
        starts = np.concatenate(([0], bounds))
        ends = np.concatenate((bounds, [len(assets_sorted)]))
        advanced = sub["advanced"].to_numpy(dtype=bool)
        groups = [
            (assets_sorted[a], rows_sorted[a:b], after_sorted[a:b])
            for a, b in zip(starts, ends, strict=True)
        ]
        fit_any = any(
            len(rows) >= min_exposed and advanced[rows].sum() >= min_advances
            for _, rows, _ in groups
        )
        model = StageModel(sub, max_amount_bins) if fit_any else None
        for asset_id, rows, t_e in groups:
            n_exposed = len(rows)
            n_adv = int(advanced[rows].sum())
            item = {
                "asset_id": asset_id,
                "title": titles.get(asset_id, ""),
                "buying_stage": stage,
                "exposed_episodes": n_exposed,
                "exposed_advances": n_adv,
                "hazard_ratio": None,
                "ci_low": None,
                "ci_high": None,
                "p_value": None,
                "q_value": None,
                "median_days_exposed": None,
                "median_days_unexposed": None,
                "verdict": "insufficient_data",
                "reason": None,
                "diagnostics": None,
            }
            items.append(item)
            if n_exposed < min_exposed or n_adv < min_advances:
                item["reason"] = (
                    f"{n_exposed} exposed episodes and {n_adv} exposed advances; "
                    f"a model needs at least {min_exposed} and {min_advances}"
                )
                continue
            item["verdict"] = "no_evidence"
            result = model.exposure_fit(rows, t_e)
            item.update(estimate(result))
            if result.beta is None:
                item["reason"] = result.reason
            elif model.note:
                item["reason"] = f"unadjusted: {model.note}"
            item["median_days_exposed"] = km_median(
                model.durations[rows] - t_e, model.advanced[rows]
            )
            item["median_days_unexposed"] = comparable_unexposed_median(model, rows, t_e)
            item["diagnostics"] = diagnostics(model, rows, result, item)
            fitted.append(item)
        del model  # NOTE: one stage's design matrix in memory at a time
    tested = [it for it in items if it["p_value"] is not None]
    if tested:
        q = bh_q_values(np.array([it["p_value"] for it in tested]))
        for it, qv in zip(tested, q, strict=True):
            it["q_value"] = clean(qv, 6)
            it["verdict"] = verdict(it["q_value"], it["ci_low"], it["ci_high"])
    for item in fitted:
        if item["hazard_ratio"] is not None:
            if item["median_days_exposed"] is None or item["median_days_unexposed"] is None:
                note = "a median is null: fewer than half of those episodes advanced"
                item["reason"] = f"{item['reason']}; {note}" if item["reason"] else note
    return {"as_of": as_of_iso, "method": METHOD, "items": items}


def exposure_effect(
    stage_episodes: pd.DataFrame,
    exposed_from: np.ndarray,
    min_exposed: int = MIN_EXPOSED,
    min_advances: int = MIN_ADVANCES,
) -> dict:
    """Adjusted hazard ratio of advancing for any time-varying binary exposure in one buying stage.

    `stage_episodes`: one stage's episodes (duration_days, advanced, amount, industry,
    pipeline_id, owner_id; e.g. build_episodes joined to the deals). `exposed_from`: per episode,
    days from the episode's start until the exposure begins (NaN = never; negative = exposed from
    the start; at or after the episode's end = never). Same adjustment, estimator and thresholds
    as the per-asset effects; a single test, so the verdict reads the p-value as its q-value.
    Returns exposed_episodes, exposed_advances, hazard_ratio, ci_low, ci_high, p_value, verdict,
    reason, diagnostics, method.
    """
    import numpy as np

    eps = stage_episodes.reset_index(drop=True)
    start = np.asarray(exposed_from, dtype=float)
    if len(start) != len(eps):
        raise ValueError("exposed_from needs one value per episode")
    durations = eps["duration_days"].to_numpy(dtype=float)
    rows = np.flatnonzero(np.isfinite(start) & (start < durations))
    t_e = np.clip(start[rows], 0, None)
    advanced = eps["advanced"].to_numpy(dtype=bool)
    out = {
        "exposed_episodes": int(len(rows)),
        "exposed_advances": int(advanced[rows].sum()),
        "hazard_ratio": None,
        "ci_low": None,
        "ci_high": None,
        "p_value": None,
        "verdict": "insufficient_data",
        "reason": None,
        "diagnostics": None,
        "method": METHOD,
    }
    if out["exposed_episodes"] < min_exposed or out["exposed_advances"] < min_advances:
        out["reason"] = (
            f"{out['exposed_episodes']} exposed episodes and {out['exposed_advances']} exposed "
            f"advances; a model needs at least {min_exposed} and {min_advances}"
        )
        return out
    model = StageModel(eps)
    result = model.exposure_fit(rows, t_e)
    out.update(estimate(result))
    out["reason"] = result.reason or (f"unadjusted: {model.note}" if model.note else None)
    out["verdict"] = verdict(out["p_value"], out["ci_low"], out["ci_high"])
    if result.beta is not None:
        out["diagnostics"] = diagnostics(model, rows, result, out)
    return out
