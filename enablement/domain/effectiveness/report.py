"""Did sharing an asset shorten the stage? Time-varying Cox hazard ratios per (asset, buying stage).

See METHOD (returned in the report) for the estimator in plain words, and docs/effectiveness.md.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from enablement.domain.effectiveness.co_sends import (
    CO_SEND_DAYS,
    CO_SEND_FLAG,
    INSEPARABLE_SHARE,
    co_sends,
)
from enablement.domain.effectiveness.diagnostics import diagnostics
from enablement.domain.effectiveness.estimates import clean, estimate
from enablement.domain.effectiveness.medians import comparable_unexposed_median
from enablement.domain.effectiveness.stage_model import (
    MAX_AMOUNT_BINS,
    MAX_PERIODS,
    StageDesign,
    StageModel,
    entry_periods,
)
from enablement.domain.effectiveness.verdicts import (
    MIN_ADVANCES,
    MIN_EXPOSED,
    bh_q_values,
    verdict,
)
from enablement.domain.episodes import exposures, to_days
from enablement.domain.stages import BUYING_STAGES
from enablement.domain.survival.cox import CoxResult
from enablement.domain.survival.joint_cox import JointCox
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
    "counts as exposed only from the first time the asset was shared to the deal during the episode "
    "(and never before the asset's published_at), so the time before the share is unexposed (no credit "
    "for surviving until the share, which removes the bias from long or stalled deals receiving more and "
    "later shares). Effect: the hazard ratio of advancing, exposed versus unexposed, from one Cox "
    "proportional-hazards model per buying stage (Breslow ties) with every fitted piece's time-varying "
    "exposure as its own term (episodes split at each share: mutually adjusted, so a piece sent with an "
    "effective one is not credited with its effect) and the deal attributes together. Adjustment "
    "(flexible, chosen from the data): deal amount as quantile bins of the stage's own amounts (up to "
    "deciles, at least 40 advances a bin; missing amounts are their own bin) plus a linear log-amount "
    "term within them; industry, pipeline and owner as categories (levels with fewer than 30 episodes "
    "pooled, at most 40 owners); calendar time as a baseline stratified by stage-entry period (quantiles "
    "of the entry date, up to 8, at least 60 advances each; each fitted piece's publication date is an "
    "extra period boundary where that leaves 60 advances on each side), so episodes are compared only "
    "with episodes that entered the stage in the same period. Estimation: Newton-Raphson on the exact "
    "stratified partial likelihood (attributes with a ridge of 0.1, exposures unpenalised), started "
    "from a Cox model of the attributes alone. Standard errors from the full inverse information of the "
    "joint model, so the 95% Wald interval and two-sided p-value include the uncertainty of the other "
    "pieces' effects and of the adjustment. Pieces too rarely exposed to be fitted (below) are not "
    "terms. Sent together: two pieces whose first shares in an episode are at most 1 day apart; per "
    "piece the share of its exposed episodes with another piece sent together, and its top partners "
    "(flagged when one partner came with at least half of its sends). Two fitted pieces each sent "
    "with the other in at least 90% of their sends are inseparable: neither is credited alone "
    "(verdict no_evidence, reason 'inseparable from X') and a joint row X+Y gives their effect "
    "together (sum of log hazard ratios, variance from the joint covariance). q-value: "
    "Benjamini-Hochberg (fdr_bh) across every (asset, stage) pair and joint row estimated in this "
    "report. Verdict: shortens when q <= 0.05 and CI low > 1; lengthens when q <= 0.05 and CI high < 1; "
    "insufficient_data when fewer than 20 exposed episodes or fewer than 10 exposed advances (no model "
    "term); otherwise no_evidence. Medians (descriptive, Kaplan-Meier, censoring respected): exposed = "
    "days from the share to advancing; comparable unexposed = episodes still in the stage and not yet "
    "exposed at the exposed episodes' share delays (landmarks at up to 4 delay quantiles), followed "
    "from the landmark and censored when they receive the asset later, weighted to the exposed "
    "episodes' amount-bin mix at each landmark. Diagnostics per fitted pair: standardised differences "
    "between exposed and unexposed episodes (log amount; stage-entry date; largest over industries and "
    "over owners; |d| > 0.1 flagged), co-send share and partners, the entry periods used, a "
    "proportional-hazards check (score test of exposure x log(days in stage) in the joint model; a "
    "small p means the effect changes over time and the ratio is an average), and E-values "
    "(VanderWeele-Ding, hazard ratio converted for a common outcome): how strongly an unmeasured "
    "confounder would have to be tied to both the share and advancing to explain the hazard ratio, or "
    "its interval's bound nearest 1, away. Nothing here adjusts for what is never recorded."
)

# exposure_effect: one exposure on its own (the per-piece estimator of earlier reports).
EXPOSURE_METHOD = (
    "One time-varying binary exposure per buying stage, adjusted for the deal attributes (amount "
    "bins plus log amount, industry, pipeline, owner) by a Cox model (Breslow ties): the exposure "
    "is fitted with the attribute model's scores as an offset, then one joint Newton-Raphson step "
    "(finished exactly when it moves the estimate by more than 0.2 standard errors) gives the "
    "estimate and the joint standard error. Not adjusted for other exposures or calendar time: "
    "meant for a single exposure such as one that was randomised."
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
    published: dict | None = None,
    max_periods: int = MAX_PERIODS,
) -> dict:
    """The effectiveness report: one item per (asset, buying stage) with any exposed episode.

    `episodes` from build_episodes; `deals` has deal_id, amount, industry, pipeline_id, owner_id;
    `shares` has deal_id, asset_id, shared_at; `published` maps asset_id to its published_at
    (aware datetime or None). Numbers that cannot be estimated are None with a reason; pieces
    too often sent together for their effects to be told apart also get a joint row.
    `max_amount_bins` caps the deal-amount quantile bins of the adjustment (1: one linear term);
    `max_periods` the stage-entry periods of the stratified baseline (1: no calendar adjustment).
    """
    from threadpoolctl import threadpool_limits

    # NOTE: one BLAS thread: the joint models' products are thin (blocks of advance times), and
    # on a busy machine extra BLAS threads spin waiting for cores and cost more CPU than they save
    # (at 40,000 deals: 18 s of CPU with the default pool, 8 s with one thread).
    with threadpool_limits(limits=1, user_api="blas"):
        return _compute(
            episodes,
            deals,
            shares,
            titles,
            as_of_iso,
            published or {},
            (min_exposed, min_advances, max_amount_bins, max_periods),
        )


def _compute(episodes, deals, shares, titles, as_of_iso, published, limits) -> dict:
    """compute_effectiveness's work (see there)."""
    import numpy as np

    eps = episodes_with_attributes(episodes, deals)
    exp = exposures(eps, shares)
    items: list[dict] = []
    exp_episode = exp["episode"].to_numpy(dtype=np.int64)
    exp_asset = exp["asset_id"].to_numpy(dtype=object)
    exp_after = exp["exposed_after_days"].to_numpy(dtype=float)
    published_days = _published_days(published)
    if published_days and len(exp_asset):
        # A piece's exposure starts no earlier than its publication (a share dated before it
        # existed is a data error: counted from published_at, if the episode is still open then).
        pub = np.array([published_days.get(a, -np.inf) for a in exp_asset])
        starts = eps["start"].to_numpy(dtype=float)[exp_episode]
        exp_after = np.maximum(exp_after, pub - starts)
        ok = exp_after < eps["duration_days"].to_numpy(dtype=float)[exp_episode]
        exp_episode, exp_asset, exp_after = exp_episode[ok], exp_asset[ok], exp_after[ok]
    stage_of = eps["buying_stage"].to_numpy(dtype=object)
    for stage in BUYING_STAGES:
        in_stage = np.flatnonzero(stage_of == stage)
        keep = stage_of[exp_episode] == stage if len(exp_episode) else np.zeros(0, dtype=bool)
        if len(in_stage) == 0 or not keep.any():
            continue
        local = np.full(len(eps), -1, dtype=np.int64)
        local[in_stage] = np.arange(len(in_stage))
        items += stage_items(
            eps.iloc[in_stage].reset_index(drop=True),
            stage,
            exp_asset[keep],
            local[exp_episode[keep]],
            exp_after[keep],
            titles,
            published_days,
            limits,
        )
    tested = [it for it in items if it["p_value"] is not None]
    if tested:
        q = bh_q_values(np.array([it["p_value"] for it in tested]))
        for it, qv in zip(tested, q, strict=True):
            it["q_value"] = clean(qv, 6)
            it["verdict"] = verdict(it["q_value"], it["ci_low"], it["ci_high"])
    for item in items:
        if item.get("inseparable_from"):
            # Not credited alone: the pair's joint row carries the verdict.
            item["verdict"] = "no_evidence"
        if item["hazard_ratio"] is not None and not item.get("joint_of"):
            if item["median_days_exposed"] is None or item["median_days_unexposed"] is None:
                note = "a median is null: fewer than half of those episodes advanced"
                item["reason"] = f"{item['reason']}; {note}" if item["reason"] else note
    return {"as_of": as_of_iso, "method": METHOD, "items": items}


def _published_days(published: dict) -> dict[str, float]:
    """asset_id -> published_at as days since the epoch (assets with none left out)."""
    known = {a: t for a, t in published.items() if t is not None}
    if not known:
        return {}
    days = to_days(list(known.values()))
    return dict(zip(known, days.tolist(), strict=True))


def _empty_item(asset_id: str, title: str, stage: str, n_exposed: int, n_adv: int) -> dict:
    """An item before estimation: counts only, verdict insufficient_data."""
    return {
        "asset_id": asset_id,
        "title": title,
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
        "inseparable_from": [],
        "joint_of": None,
        "diagnostics": None,
    }


def stage_items(
    sub: pd.DataFrame,
    stage: str,
    assets: np.ndarray,
    rows: np.ndarray,
    after: np.ndarray,
    titles: dict[str, str],
    published_days: dict[str, float],
    limits: tuple[int, int, int, int],
) -> list[dict]:
    """Items of one buying stage: every fitted piece estimated in one joint model of the stage.

    `assets`, `rows`, `after`: the stage's exposures (asset id, episode index in `sub`, days
    from the episode's start). q-values and verdicts are set by the caller, across stages.
    """
    import numpy as np
    import pandas as pd

    min_exposed, min_advances, max_amount_bins, max_periods = limits
    codes, asset_ids = pd.factorize(assets, sort=True)
    asset_ids = np.asarray(asset_ids, dtype=object)
    n_codes = len(asset_ids)
    advanced = sub["advanced"].to_numpy(dtype=bool)
    n_exposed = np.bincount(codes, minlength=n_codes)
    n_adv = np.bincount(codes, advanced[rows].astype(float), minlength=n_codes).astype(int)
    fit_codes = np.flatnonzero((n_exposed >= min_exposed) & (n_adv >= min_advances))
    sends = co_sends(rows, codes, after, n_codes)
    items = []
    for c in range(n_codes):
        item = _empty_item(
            asset_ids[c], titles.get(asset_ids[c], ""), stage, int(n_exposed[c]), int(n_adv[c])
        )
        if n_exposed[c] < min_exposed or n_adv[c] < min_advances:
            item["reason"] = (
                f"{n_exposed[c]} exposed episodes and {n_adv[c]} exposed advances; "
                f"a model needs at least {min_exposed} and {min_advances}"
            )
        items.append(item)
    if len(fit_codes) == 0:
        return items
    model = StageDesign(sub, max_amount_bins)
    term_of = np.full(n_codes, -1, dtype=np.int64)
    term_of[fit_codes] = np.arange(len(fit_codes))
    in_model = term_of[codes] >= 0
    edges = [published_days[a] for a in asset_ids[fit_codes] if a in published_days]
    periods, period_edges = entry_periods(model.design.entered, advanced, edges, max_periods)
    joint = JointCox(
        model.X,
        model.durations,
        model.advanced,
        periods,
        rows[in_model],
        term_of[codes[in_model]],
        after[in_model],
        len(fit_codes),
    ).fit()
    calendar = {
        "entry_periods": len(period_edges) + 1,
        "period_edges": [_iso_day(e) for e in period_edges],
    }
    for c in fit_codes:
        item, t = items[c], int(term_of[c])
        mine = codes == c
        r, t_e = rows[mine], after[mine]
        item["verdict"] = "no_evidence"
        if joint.beta is not None and abs(joint.beta[t]) <= 15 and joint.cov[t, t] > 0:
            result = CoxResult(
                float(joint.beta[t]), math.sqrt(joint.cov[t, t]), None, None, joint.ph_p_value[t]
            )
        else:
            # The per-piece shortcut, said to be one: the joint model had no estimate.
            result = model.fitted().exposure_fit(r, t_e)
            why = joint.reason or "no stable joint estimate for this piece"
            item["reason"] = result.reason or f"not adjusted for other pieces ({why})"
        item.update(estimate(result))
        item["median_days_exposed"] = km_median(model.durations[r] - t_e, model.advanced[r])
        item["median_days_unexposed"] = comparable_unexposed_median(model, r, t_e)
        item["diagnostics"] = diagnostics(model, r, result, item)
        item["diagnostics"]["co_send"] = co_send_diagnostics(sends, c, asset_ids)
        item["diagnostics"]["calendar"] = calendar
    if joint.beta is not None:
        exposed_to = lambda code: rows[codes == code]  # noqa: E731
        items += joint_rows(
            sends, fit_codes, term_of, joint, asset_ids, items, stage, titles, exposed_to, advanced
        )
    return items


def _iso_day(days: float) -> str:
    """Days since the epoch as an ISO date."""
    import datetime as dt

    return (dt.datetime(1970, 1, 1) + dt.timedelta(days=float(days))).date().isoformat()


def co_send_diagnostics(sends, c: int, asset_ids) -> dict:
    """A piece's co-send share and partners; flagged when one partner came with CO_SEND_FLAG of its sends."""
    partners = sends.partners(c)
    return {
        "share": clean(sends.share(c), 3),
        "partners": [{"asset_id": asset_ids[b], "share": clean(s, 3)} for b, s in partners],
        "flag": bool(partners) and partners[0][1] >= CO_SEND_FLAG,
        "window_days": CO_SEND_DAYS,
    }


def joint_rows(
    sends, fit_codes, term_of, joint, asset_ids, items, stage, titles, exposed_to, advanced
) -> list[dict]:
    """A joint row per pair of fitted pieces each sent with the other in INSEPARABLE_SHARE of sends.

    Its effect is both pieces' together (sum of the log hazard ratios, variance from the joint
    model's covariance); its counts are the episodes exposed to both.
    """
    import numpy as np

    rows = []
    fitted = set(fit_codes.tolist())
    for a in fit_codes.tolist():
        for b, share_ab in sends.partners(a):
            share_ba = sends.pair_share(b, a)
            if b not in fitted or b <= a or min(share_ab, share_ba) < INSEPARABLE_SHARE:
                continue
            ta, tb = int(term_of[a]), int(term_of[b])
            var = joint.cov[ta, ta] + joint.cov[tb, tb] + 2 * joint.cov[ta, tb]
            A, B = asset_ids[a], asset_ids[b]
            items[a]["inseparable_from"].append(B)
            items[b]["inseparable_from"].append(A)
            for x, y, s in ((a, B, share_ab), (b, A, share_ba)):
                note = (
                    f"inseparable from {y}: sent together in {s:.0%} of its sends; "
                    f"see the joint row {A}+{B}"
                )
                items[x]["reason"] = f"{items[x]['reason']}; {note}" if items[x]["reason"] else note
            both = np.intersect1d(exposed_to(a), exposed_to(b))
            row = _empty_item(
                f"{A}+{B}",
                f"{titles.get(A, '') or A} + {titles.get(B, '') or B} (sent together)",
                stage,
                len(both),
                int(advanced[both].sum()),
            )
            row["joint_of"] = [A, B]
            row["verdict"] = "no_evidence"
            if var > 0:
                beta = float(joint.beta[ta] + joint.beta[tb])
                row.update(estimate(CoxResult(beta, math.sqrt(var))))
            row["reason"] = (
                f"joint effect of {A} and {B} (both sent versus neither): sent together in "
                f"{share_ab:.0%} and {share_ba:.0%} of their sends, their separate effects "
                "cannot be told apart"
            )
            rows.append(row)
    return rows


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
        "method": EXPOSURE_METHOD,
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
