"""Did sharing an asset shorten the stage? Time-varying Cox hazard ratios per (asset, buying stage).

See METHOD (returned in the report) for the estimator in plain words.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING

from enablement.domain.episodes import exposures
from enablement.domain.stages import BUYING_STAGES

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

# NOTE: numpy, pandas, SciPy, statsmodels and lifelines (over a second together) are imported
# inside the functions: they load when a report runs, not when the CLI or the web app starts
# (tests/test_startup.py).

MIN_EXPOSED = 20
MIN_ADVANCES = 10
Q_MAX = 0.05
# Categories (industry, owner, pipeline) with fewer episodes than this are pooled into "other".
MIN_LEVEL = 30
MAX_OWNERS = 40

METHOD = (
    "Unit: a stage episode (a deal's stay in one buying stage, from entering it until it leaves; "
    "advancing = entering a later buying stage or a won stage; lost, backward, unmapped and still-open "
    "episodes are censored at their end or at as_of). Exposure to an asset is time-varying: an episode "
    "counts as exposed only from the first time the asset was shared to the deal during the episode, "
    "so the time before the share is unexposed (no credit for surviving until the share, which removes "
    "the bias from long or stalled deals receiving more and later shares). Effect: the hazard ratio of "
    "advancing, exposed versus unexposed, from a Cox proportional-hazards model on (start, stop] "
    "counting-process rows. Adjustment: per buying stage, one Cox model (lifelines CoxPHFitter, small "
    "ridge penalty) of the hazard of advancing on log deal amount (missing amounts imputed with a "
    "missing-indicator), industry, pipeline and owner (owners and industries with fewer than 30 "
    "episodes pooled) gives each episode a risk score; the asset's hazard ratio is then estimated by "
    "maximising the exact Cox partial likelihood (Breslow ties) of the exposure term with that risk "
    "score as a fixed offset (fitted as the equivalent logistic regression over advances with statsmodels Logit; "
    "Wald 95% CI and two-sided p-value). q-value: Benjamini-Hochberg (statsmodels multipletests, fdr_bh) across every "
    "(asset, stage) pair estimated in this report. Medians: Kaplan-Meier (statsmodels SurvfuncRight), censoring "
    "respected: exposed = days from the share to advancing; comparable unexposed = episodes of the "
    "same stage never exposed to the asset, still in the stage at the exposed episodes' median "
    "share delay (landmark) and with a deal amount within the exposed deals' 10th-90th percentile, "
    "days from that landmark. Verdict: shortens when q <= 0.05 and CI low > 1; lengthens when "
    "q <= 0.05 and CI high < 1; insufficient_data when fewer than 20 exposed episodes or fewer than "
    "10 exposed advances (no model is fitted); otherwise no_evidence."
)


@dataclass(frozen=True)
class CoxResult:
    """log hazard ratio and its standard error, or the reason there is none."""

    beta: float | None
    se: float | None
    reason: str | None = None


def _design(stage_eps: pd.DataFrame) -> np.ndarray:
    """Covariate matrix per episode: standardized log amount, missing flag, pooled dummies."""
    import numpy as np
    import pandas as pd

    cols = []
    amount = pd.to_numeric(stage_eps["amount"], errors="coerce").to_numpy(dtype=float)
    log_amount = np.log1p(np.clip(amount, 0, None))
    missing = ~np.isfinite(log_amount)
    if (~missing).sum() >= 2:
        fill = np.nanmedian(log_amount[~missing])
        log_amount = np.where(missing, fill, log_amount)
        sd = log_amount.std()
        if sd > 0:
            cols.append((log_amount - log_amount.mean()) / sd)
    if 0 < missing.sum() < len(missing):
        cols.append(missing.astype(float))
    for name in ("industry", "pipeline_id", "owner_id"):
        values = stage_eps[name].fillna("(none)").astype(str)
        counts = values.value_counts()
        keep = counts[counts >= MIN_LEVEL].index
        if name == "owner_id" and len(keep) > MAX_OWNERS:
            keep = keep[:MAX_OWNERS]
        pooled = values.where(values.isin(keep), "(other)")
        levels = sorted(pooled.unique())
        for level in levels[1:]:  # first level is the reference
            cols.append((pooled == level).to_numpy(dtype=float))
    if not cols:
        return np.zeros((len(stage_eps), 0))
    X = np.column_stack(cols)
    return X[:, X.std(axis=0) > 0]


def adjustment_offsets(stage_eps: pd.DataFrame) -> tuple[np.ndarray, str | None]:
    """Per-episode log relative hazard of advancing from deal attributes (0 when not estimable)."""
    import numpy as np
    import pandas as pd
    from lifelines import CoxPHFitter
    from lifelines.exceptions import ConvergenceError, ConvergenceWarning

    X = _design(stage_eps)
    zero = np.zeros(len(stage_eps))
    if X.shape[1] == 0 or stage_eps["advanced"].sum() < 5:
        return zero, "no covariates or too few advances to adjust"
    frame = pd.DataFrame(X, columns=[f"x{i}" for i in range(X.shape[1])])
    frame["T"] = stage_eps["duration_days"].to_numpy()
    frame["E"] = stage_eps["advanced"].to_numpy().astype(int)
    fitter = CoxPHFitter(penalizer=0.01)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            fitter.fit(frame, duration_col="T", event_col="E")
        except (ConvergenceError, ConvergenceWarning, np.linalg.LinAlgError, ValueError) as e:
            return zero, f"adjustment model did not converge: {str(e)[:120]}"
    offset = X @ fitter.params_.to_numpy()
    if not np.all(np.isfinite(offset)):
        return zero, "adjustment model gave non-finite risk scores"
    return offset - offset.mean(), None


class StageRiskSets:
    """The risk sets of one buying stage's episodes at each advance time, weighted by risk score."""

    def __init__(self, durations: np.ndarray, advanced: np.ndarray, offsets: np.ndarray):
        """Risk sets from episode durations (days), advance flags and risk-score offsets."""
        import numpy as np

        self.risk = np.exp(offsets)
        event_times = durations[advanced]
        self.times, self.deaths = np.unique(event_times, return_counts=True)
        # Total risk at each event time: all episodes with duration >= t (everyone enters at 0).
        order = np.argsort(durations)
        sorted_d = durations[order]
        tail = np.cumsum(self.risk[order][::-1])[::-1]
        first = np.searchsorted(sorted_d, self.times, side="left")
        self.total = tail[first]

    def exposure_fit(
        self,
        exposed_from: np.ndarray,
        durations: np.ndarray,
        advanced: np.ndarray,
        risk: np.ndarray,
    ) -> CoxResult:
        """Cox partial likelihood (Breslow) of one exposure term, deal-attribute risk scores fixed.

        NOTE: with the offsets fixed, the partial likelihood of the exposure coefficient equals a
        binomial likelihood over the advance times: of the d_k advances at time t_k, how many were
        exposed, with logit P(exposed) = beta + log(exposed risk mass / unexposed risk mass). So the
        fit is statsmodels' logistic regression (Logit, Newton) with one row per advance and that
        log ratio as offset; its coefficient, standard error and Wald p-value are the Cox ones.
        """
        import numpy as np
        import statsmodels.api as sm

        K = len(self.times)
        if K == 0:
            return CoxResult(None, None, "no advances in this stage")
        # Exposed at risk at event time t when exposed_from < t <= duration.
        lo = np.searchsorted(self.times, exposed_from, side="right")
        hi = np.searchsorted(self.times, durations, side="right")
        diff = np.zeros(K + 1)
        np.add.at(diff, lo, risk)
        np.add.at(diff, hi, -risk)
        exposed_mass = np.clip(np.cumsum(diff)[:K], 0, None)
        unexposed_mass = np.clip(self.total - exposed_mass, 0, None)
        event_at = np.searchsorted(self.times, durations[advanced], side="left")
        exposed_deaths = np.bincount(event_at, minlength=K)[:K]
        # Times with nobody exposed, or nobody unexposed, carry no information about the exposure.
        use = (exposed_mass > 1e-300) & (unexposed_mass > 1e-300)
        d, de = self.deaths[use], exposed_deaths[use]
        if de.sum() == 0 or de.sum() == d.sum():
            return CoxResult(
                None, None, "estimate did not converge (exposed episodes all or never advanced)"
            )
        offset = np.log(exposed_mass[use]) - np.log(unexposed_mass[use])
        # One Bernoulli row per advance (tied advances at one time: de ones, then zeros).
        rows = np.repeat(np.arange(len(d)), d)
        first = np.repeat(np.cumsum(d) - d, d)
        exposed_row = (np.arange(len(rows)) - first) < np.repeat(de, d)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            try:
                fit = sm.Logit(
                    exposed_row.astype(float), np.ones((len(rows), 1)), offset=offset[rows]
                ).fit(method="newton", maxiter=50, disp=0)
                beta, se = float(fit.params[0]), float(fit.bse[0])
            except (Warning, ValueError, np.linalg.LinAlgError, FloatingPointError) as e:
                return CoxResult(None, None, f"estimate did not converge: {str(e)[:100]}")
        if not (math.isfinite(beta) and math.isfinite(se)) or abs(beta) > 15 or se <= 0:
            return CoxResult(None, None, "estimate did not converge (no stable maximum)")
        return CoxResult(beta, se)


def km_median(durations: np.ndarray, events: np.ndarray) -> float | None:
    """Kaplan-Meier median (days), None when fewer than half advanced (or no data).

    NOTE: statsmodels' SurvfuncRight, not lifelines' KaplanMeierFitter: same estimate, but
    ~30x less overhead per call, and this runs twice for every (asset, stage) pair.
    """
    from statsmodels.duration.survfunc import SurvfuncRight

    if len(durations) == 0 or not events.any():
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        value = SurvfuncRight(durations, events.astype(float)).quantile(0.5)
    value = float(value) if value is not None else math.nan
    return round(value, 2) if math.isfinite(value) else None


def _clean(x: float | None, digits: int = 4) -> float | None:
    """A finite rounded float, or None (never NaN)."""
    if x is None:
        return None
    x = float(x)
    return round(x, digits) if math.isfinite(x) else None


def compute_effectiveness(
    episodes: pd.DataFrame,
    deals: pd.DataFrame,
    shares: pd.DataFrame,
    titles: dict[str, str],
    as_of_iso: str,
    min_exposed: int = MIN_EXPOSED,
    min_advances: int = MIN_ADVANCES,
) -> dict:
    """The effectiveness report: one item per (asset, buying stage) with any exposed episode.

    `episodes` from build_episodes; `deals` has deal_id, amount, industry, pipeline_id, owner_id;
    `shares` has deal_id, asset_id, shared_at. Numbers that cannot be estimated are None with a reason.
    """
    import numpy as np
    import pandas as pd
    from scipy import stats
    from statsmodels.stats.multitest import multipletests

    eps = episodes.reset_index(drop=True)
    attrs = deals[["deal_id", "amount", "industry", "owner_id"]].drop_duplicates("deal_id")
    eps = eps.merge(attrs, on="deal_id", how="left")
    exp = exposures(eps, shares)
    items: list[dict] = []
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
        durations = sub["duration_days"].to_numpy(dtype=float)
        advanced = sub["advanced"].to_numpy(dtype=bool)
        amounts = pd.to_numeric(sub["amount"], errors="coerce").to_numpy(dtype=float)
        groups = [
            (assets_sorted[a], rows_sorted[a:b], after_sorted[a:b])
            for a, b in zip(starts, ends, strict=True)
        ]
        fit_any = any(
            len(rows) >= min_exposed and advanced[rows].sum() >= min_advances
            for _, rows, _ in groups
        )
        offsets, adjust_note = adjustment_offsets(sub) if fit_any else (np.zeros(len(sub)), None)
        risk_sets = StageRiskSets(durations, advanced, offsets) if fit_any else None
        risk = np.exp(offsets)
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
            }
            items.append(item)
            if n_exposed < min_exposed or n_adv < min_advances:
                item["reason"] = (
                    f"{n_exposed} exposed episodes and {n_adv} exposed advances; "
                    f"a model needs at least {min_exposed} and {min_advances}"
                )
                continue
            item["verdict"] = "no_evidence"
            result = risk_sets.exposure_fit(t_e, durations[rows], advanced[rows], risk[rows])
            if result.beta is None:
                item["reason"] = result.reason
            else:
                b, se = result.beta, result.se
                item["hazard_ratio"] = _clean(math.exp(b))
                item["ci_low"] = _clean(math.exp(b - 1.96 * se))
                item["ci_high"] = _clean(math.exp(b + 1.96 * se))
                item["p_value"] = _clean(2 * stats.norm.sf(abs(b / se)), 6)
                if adjust_note:
                    item["reason"] = f"unadjusted: {adjust_note}"
            # Kaplan-Meier medians: exposed from the share; unexposed from a matched landmark.
            item["median_days_exposed"] = km_median(durations[rows] - t_e, advanced[rows])
            landmark = float(np.median(t_e))
            comparable = durations > landmark
            comparable[rows] = False
            finite = np.isfinite(amounts[rows])
            if finite.sum() >= 5:
                low, high = np.percentile(amounts[rows][finite], [10, 90])
                comparable &= (amounts >= low) & (amounts <= high)
            item["median_days_unexposed"] = km_median(
                durations[comparable] - landmark, advanced[comparable]
            )
    tested = [it for it in items if it["p_value"] is not None]
    if tested:
        q = multipletests([it["p_value"] for it in tested], method="fdr_bh")[1]
        for it, qv in zip(tested, q, strict=True):
            it["q_value"] = _clean(qv, 6)
            it["verdict"] = verdict(it["q_value"], it["ci_low"], it["ci_high"])
    for it in items:
        if it["verdict"] != "insufficient_data" and it["hazard_ratio"] is not None:
            if it["median_days_exposed"] is None or it["median_days_unexposed"] is None:
                note = "a median is null: fewer than half of those episodes advanced"
                it["reason"] = f"{it['reason']}; {note}" if it["reason"] else note
    return {"as_of": as_of_iso, "method": METHOD, "items": items}


def verdict(q: float | None, ci_low: float | None, ci_high: float | None) -> str:
    """shortens / lengthens / no_evidence from the q-value and CI (counts are checked before)."""
    if q is None or ci_low is None or ci_high is None:
        return "no_evidence"
    if q <= Q_MAX and ci_low > 1:
        return "shortens"
    if q <= Q_MAX and ci_high < 1:
        return "lengthens"
    return "no_evidence"


def naive_verdicts(episodes: pd.DataFrame, shares: pd.DataFrame) -> dict[tuple[str, str], str]:
    """The naive comparison (for tests and teaching): durations of episodes that ever got the asset vs not.

    Mann-Whitney on raw episode length, advanced episodes only, ignoring censoring, timing and deal size.
    """
    import numpy as np
    from scipy import stats

    eps = episodes.reset_index(drop=True)
    exp = exposures(eps, shares)
    out = {}
    for (asset_id, stage), group in exp.merge(
        eps[["buying_stage"]], left_on="episode", right_index=True
    ).groupby(["asset_id", "buying_stage"]):
        in_stage = eps["buying_stage"] == stage
        mask = np.zeros(len(eps), dtype=bool)
        mask[group["episode"].to_numpy()] = True
        adv = eps["advanced"].to_numpy()
        a = eps["duration_days"].to_numpy()[mask & adv]
        b = eps["duration_days"].to_numpy()[~mask & in_stage.to_numpy() & adv]
        if len(a) < 5 or len(b) < 5:
            out[(asset_id, stage)] = "insufficient_data"
            continue
        p = stats.mannwhitneyu(a, b).pvalue
        if p > 0.05:
            out[(asset_id, stage)] = "no_evidence"
        else:
            out[(asset_id, stage)] = "shortens" if np.median(a) < np.median(b) else "lengthens"
    return out
