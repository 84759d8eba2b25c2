"""Did sharing an asset shorten the stage? Time-varying Cox hazard ratios per (asset, buying stage).

See METHOD (returned in the report) for the estimator in plain words, and docs/effectiveness.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from enablement.domain.episodes import exposures
from enablement.domain.stages import BUYING_STAGES

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

# NOTE: numpy, pandas, SciPy and statsmodels are imported inside the functions: they load when a
# report runs, not when the CLI or the web app starts (tests/test_startup.py).

MIN_EXPOSED = 20
MIN_ADVANCES = 10
Q_MAX = 0.05
Z95 = 1.959964
# Categories (industry, owner, pipeline) with fewer episodes than this are pooled into "other".
MIN_LEVEL = 30
MAX_OWNERS = 40
# Deal amount enters as up to this many quantile bins (deciles) of the stage's own amounts, plus
# a linear log-amount term inside them: a step-shaped size effect is described by the bins.
MAX_AMOUNT_BINS = 10
# Each amount bin should hold at least this many advances, so small stages get fewer, wider bins.
ADVANCES_PER_BIN = 40
# Small ridge on the adjustment coefficients (log-hazard scale): keeps sparse levels finite.
RIDGE = 0.1
# |standardised difference| above this is the usual sign of imbalance.
SMD_FLAG = 0.1
# A pair's one-step joint correction larger than this many standard errors is finished by an
# exact joint fit (rare: only exposures strongly tied to the deal attributes get there).
REFINE_AT = 0.2
# Descriptive medians: comparators are taken at up to this many landmarks (share-delay quantiles).
LANDMARKS = 4

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


@dataclass(frozen=True)
class CoxResult:
    """log hazard ratio and its standard error, or the reason there is none (plus diagnostics)."""

    beta: float | None
    se: float | None
    reason: str | None = None
    offset_beta: float | None = None
    ph_p_value: float | None = None


@dataclass
class Design:
    """Adjustment covariates of one stage's episodes, and how they were built."""

    X: np.ndarray
    amount_bins: np.ndarray  # bin code per episode (-1 = amount missing)
    n_bins: int
    categories: dict  # name -> integer codes per episode (pooled levels)
    labels: dict  # name -> level names, indexed by code
    log_amount: np.ndarray  # NaN where missing


def amount_bin_edges(log_amount: np.ndarray, advances: int) -> np.ndarray:
    """Inner edges of the quantile bins of log amount (data-chosen count, at most deciles)."""
    import numpy as np

    finite = log_amount[np.isfinite(log_amount)]
    n_bins = int(min(MAX_AMOUNT_BINS, max(1, advances // ADVANCES_PER_BIN)))
    if n_bins < 2 or len(finite) < 2:
        return np.zeros(0)
    inner = np.quantile(finite, np.linspace(0, 1, n_bins + 1)[1:-1])
    return np.unique(inner)


def design(stage_eps: pd.DataFrame) -> Design:
    """Covariates per episode: amount bins + log amount, missing-amount bin, pooled category dummies."""
    import numpy as np
    import pandas as pd

    n = len(stage_eps)
    cols = []
    amount = pd.to_numeric(stage_eps["amount"], errors="coerce").to_numpy(dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        log_amount = np.where(amount >= 0, np.log1p(np.clip(amount, 0, None)), np.nan)
    log_amount[~np.isfinite(log_amount)] = np.nan
    missing = np.isnan(log_amount)
    advances = int(stage_eps["advanced"].sum())
    edges = amount_bin_edges(log_amount, advances)
    bins = np.where(missing, -1, np.searchsorted(edges, np.nan_to_num(log_amount), side="right"))
    n_bins = len(edges) + 1
    for b in range(1, n_bins):  # bin 0 is the reference
        cols.append(bins == b)
    if (~missing).sum() >= 2:
        # The slope term is winsorised at the 1st/99th percentiles: one absurd amount must not
        # give its episode an extreme risk score (the bins already place it).
        low, high = np.nanpercentile(log_amount, [1, 99])
        filled = np.clip(np.where(missing, np.nanmedian(log_amount), log_amount), low, high)
        sd = filled.std()
        if sd > 0:
            cols.append((filled - filled.mean()) / sd)
    if 0 < missing.sum() < n:
        cols.append(missing)
    categories, labels = {}, {}
    for name in ("industry", "pipeline_id", "owner_id"):
        values = stage_eps[name].fillna("(none)").astype(str)
        counts = values.value_counts()
        keep = counts[counts >= MIN_LEVEL].index
        if name == "owner_id" and len(keep) > MAX_OWNERS:
            keep = keep[:MAX_OWNERS]
        pooled = values.where(values.isin(keep), "(other)")
        codes, levels = pd.factorize(pooled, sort=True)
        categories[name], labels[name] = codes, list(levels)
        for code in range(1, len(levels)):  # first level is the reference
            cols.append(codes == code)
    # NOTE: filled column by column (dummies kept as booleans until then): no n x p temporaries.
    cols = [c for c in cols if n and c.min() != c.max()]
    X = np.empty((n, len(cols)))
    for j, c in enumerate(cols):
        X[:, j] = c
    return Design(X, bins, n_bins, categories, labels, log_amount)


class StageModel:
    """One buying stage: the adjustment Cox model and the risk-set sums every exposure fit reuses."""

    def __init__(self, stage_eps: pd.DataFrame):
        """Fit the deal-attribute Cox model of the stage's episodes (durations, advances, attributes)."""
        import numpy as np

        self.design = design(stage_eps)
        self.durations = stage_eps["duration_days"].to_numpy(dtype=float)
        self.advanced = stage_eps["advanced"].to_numpy(dtype=bool)
        self.n = len(self.durations)
        self.times, self.deaths = np.unique(self.durations[self.advanced], return_counts=True)
        # Index of the last event time each episode is at risk for (exclusive end in event-time units).
        self.hi = np.searchsorted(self.times, self.durations, side="right")
        self.note = None
        X = self.design.X
        self.gamma = np.zeros(X.shape[1])
        if X.shape[1] == 0 or len(self.times) < 5:
            self.note = "no covariates or too few advances to adjust"
            X = self.design.X = np.zeros((self.n, 0))
            self.gamma = np.zeros(0)
        else:
            try:
                self.gamma = self._fit(X)
            except (np.linalg.LinAlgError, FloatingPointError, ValueError) as e:
                self.note = f"adjustment model did not converge: {str(e)[:120]}"
                X = self.design.X = np.zeros((self.n, 0))
                self.gamma = np.zeros(0)
        eta = X @ self.gamma if X.shape[1] else np.zeros(self.n)
        self.offsets = eta - eta.mean()
        self.risk = np.exp(self.offsets)
        self.S0, self.S1 = self._sums(X, self.risk)
        self.info_inv = np.linalg.inv(self._information(X, self.risk, self.S0, self.S1))
        self.X_events = self.advanced.astype(float) @ X

    def _sums(self, X: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Risk mass S0 (K) and risk-weighted covariate sums S1 (K x p) at each advance time."""
        import numpy as np

        # NOTE: one column at a time, so no n x p temporary.
        S0 = self._at_risk_sum(w)
        S1 = np.empty((len(self.times), X.shape[1]))
        for c in range(X.shape[1]):
            S1[:, c] = self._at_risk_sum(w * X[:, c])
        return S0, S1

    def _at_risk_sum(self, values: np.ndarray) -> np.ndarray:
        """Sum of per-episode values over the episodes at risk, at each advance time."""
        import numpy as np

        # Episode i is at risk at the event times before self.hi[i]: sum per block of equal hi,
        # then a reverse cumulative sum.
        block = np.bincount(self.hi, values, len(self.times) + 1)
        return np.cumsum(block[::-1])[::-1][1:]

    def _information(self, X, w, S0, S1) -> np.ndarray:
        """Observed information (Breslow) of the attribute coefficients, ridge included."""
        import numpy as np

        c = self.deaths / S0
        # sum_k c_k S2(t_k) = sum_i w_i x_i x_i' * (sum of c_k over the event times i is at risk for)
        wH = w * np.concatenate(([0.0], np.cumsum(c)))[self.hi]
        c2 = self.deaths / S0**2
        info = np.zeros((X.shape[1], X.shape[1]))
        # NOTE: in slices of 20,000 rows, to bound the temporaries at 100,000 episodes.
        for lo in range(0, len(wH), 20_000):
            part = X[lo : lo + 20_000]
            info += (part * wH[lo : lo + 20_000, None]).T @ part
        for lo in range(0, len(c2), 20_000):
            part = S1[lo : lo + 20_000]
            info -= (part * c2[lo : lo + 20_000, None]).T @ part
        return info + RIDGE * np.eye(X.shape[1])

    def _fit(self, X: np.ndarray) -> np.ndarray:
        """Ridge-penalised Cox partial likelihood maximised by Newton-Raphson with step halving."""
        import numpy as np

        gamma = np.zeros(X.shape[1])
        x_events = self.advanced.astype(float) @ X

        def loglik(g):
            """Penalised log partial likelihood at g, with the risk weights (only S0 needed)."""
            eta = X @ g
            shift = eta.max()
            w = np.exp(eta - shift)
            S0 = self._at_risk_sum(w)
            value = eta[self.advanced].sum() - (self.deaths * (np.log(S0) + shift)).sum()
            return value - 0.5 * RIDGE * g @ g, w

        value, w = loglik(gamma)
        for _ in range(30):
            S0, S1 = self._sums(X, w)
            score = x_events - np.einsum("k,kp->p", self.deaths / S0, S1) - RIDGE * gamma
            step = np.linalg.solve(self._information(X, w, S0, S1), score)
            del S1  # NOTE: one K x p array alive at a time
            for _ in range(20):
                new_value, new_w = loglik(gamma + step)
                if np.isfinite(new_value) and new_value >= value - 1e-9:
                    break
                step = step / 2
            else:
                raise ValueError("no ascent step")
            gamma, value, w = gamma + step, new_value, new_w
            if np.abs(step).max() < 1e-7:
                break
        if not np.all(np.isfinite(gamma)):
            raise ValueError("non-finite coefficients")
        return gamma

    def exposure_fit(self, rows: np.ndarray, exposed_from: np.ndarray) -> CoxResult:
        """Adjusted log HR of a time-varying exposure: offset fit, then one joint Newton step.

        `rows` are the exposed episodes (indices into the stage), `exposed_from` their days from
        episode start to the first exposure. See METHOD for the estimator.
        """
        import numpy as np

        K = len(self.times)
        if K == 0:
            return CoxResult(None, None, "no advances in this stage")
        w = self.risk[rows]
        # Exposed at risk at event time t_k when exposed_from < t_k <= duration: k in [lo, hi).
        lo = np.searchsorted(self.times, exposed_from, side="right")
        hi = self.hi[rows]
        lo = np.minimum(lo, hi)
        E0 = np.clip(np.cumsum(np.bincount(lo, w, K + 1) - np.bincount(hi, w, K + 1))[:K], 0, None)
        U = np.clip(self.S0 - E0, 0, None)
        adv = self.advanced[rows] & (hi > lo)
        de = np.bincount(hi[adv] - 1, minlength=K)[:K]
        d = self.deaths
        use = (E0 > 1e-12 * self.S0) & (U > 1e-12 * self.S0)
        if de[use].sum() == 0 or de[use].sum() == d[use].sum():
            return CoxResult(
                None, None, "estimate did not converge (exposed episodes all or never advanced)"
            )
        # 1. Offset fit: with the attribute scores fixed the partial likelihood of the exposure
        # term is binomial over advance times: of d_k advances, de_k exposed, logit = b + log(E0/U).
        log_ratio = np.log(E0[use]) - np.log(U[use])
        du, deu = d[use], de[use]
        b = 0.0
        for _ in range(60):
            p = 1 / (1 + np.exp(-(b + log_ratio)))
            score, info = deu.sum() - (du * p).sum(), (du * p * (1 - p)).sum()
            if not (info > 0):
                break
            step = float(np.clip(score / info, -2, 2))
            b += step
            if abs(step) < 1e-10:
                break
        else:
            return CoxResult(None, None, "estimate did not converge (no stable maximum)")
        if not math.isfinite(b) or abs(b) > 15 or not (info > 0):
            return CoxResult(None, None, "estimate did not converge (no stable maximum)")
        # Proportional hazards: score test for exposure x log(t) at the offset fit.
        p = 1 / (1 + np.exp(-(b + log_ratio)))
        v = du * p * (1 - p)
        g = np.log(self.times[use])
        u_ph = ((deu - du * p) * g).sum()
        var_ph = (v * g * g).sum() - (v * g).sum() ** 2 / v.sum()
        # chi-square(1) tail: P(chi2 > x) = erfc(sqrt(x / 2)) (math, not SciPy: this runs per pair)
        ph_p = math.erfc(math.sqrt(u_ph**2 / var_ph / 2)) if var_ph > 1e-12 else None
        b_off, se_off = b, 1 / math.sqrt(info)
        X = self.design.X
        if X.shape[1] == 0:
            return CoxResult(b, se_off, None, b_off, ph_p)
        # 2. One joint Newton step in [exposure, gamma] from (b_off, gamma_hat). Exposure rows and
        # cross-information are exact; the gamma block is the stage model's information.
        Xw = X[rows] * w[:, None]

        def joint_terms(beta: float) -> tuple[np.ndarray, float, np.ndarray]:
            """Score of gamma, information of beta and cross-information at (beta, gamma_hat)."""
            eb = math.exp(beta)
            S0b = self.S0 + (eb - 1) * E0
            q = d / S0b
            pk = eb * E0 / S0b
            a = d * E0 / S0b**2
            Qc = np.concatenate(([0.0], np.cumsum(q)))
            Ac = np.concatenate(([0.0], np.cumsum(a)))
            # NOTE: einsum, not @: these thin products are faster in one thread than in a BLAS
            # call, which on a busy machine can wait for its thread pool longer than it computes.
            G, Ga = np.einsum("jn,np->jp", np.stack((Qc[hi] - Qc[lo], Ac[hi] - Ac[lo])), Xw)
            qS1, aS1 = np.einsum("jk,kp->jp", np.stack((q, a)), self.S1)
            U_g = self.X_events - qS1 - (eb - 1) * G - RIDGE * self.gamma
            I_bb = float((d * pk * (1 - pk)).sum())
            I_bg = eb * G - eb * (aS1 + (eb - 1) * Ga)
            return U_g, I_bb, I_bg

        U_g, I_bb, I_bg = joint_terms(b_off)
        h = self.info_inv @ I_bg
        schur = I_bb - I_bg @ h
        if not (schur > 1e-6 * I_bb):
            return CoxResult(
                None, None, "exposure is almost entirely explained by the deal attributes"
            )
        b_joint = b_off + float(-(h @ U_g)) / schur
        if not math.isfinite(b_joint) or abs(b_joint) > 15:
            return CoxResult(None, None, "estimate did not converge (no stable maximum)")
        # The joint standard error at both ends of the step, keeping the larger: the attribute
        # block is the stage model's (beta = 0), and evaluated at one point alone the exposure
        # terms can understate the SE of a large effect by a percent or two.
        se = 1 / math.sqrt(schur)
        _, I_bb, I_bg = joint_terms(b_joint)
        schur = I_bb - I_bg @ (self.info_inv @ I_bg)
        if not (schur > 1e-6 * I_bb):
            return CoxResult(
                None, None, "exposure is almost entirely explained by the deal attributes"
            )
        se = max(se, 1 / math.sqrt(schur))
        if abs(b_joint - b_off) > REFINE_AT * se:
            # A confounded exposure: the one step moved the estimate materially, so finish the
            # joint fit exactly (full information, a few Newton steps) for it alone.
            refined = self.joint_newton(rows, lo, hi, b_joint)
            if refined is None:
                return CoxResult(None, None, "joint fit did not converge")
            b_joint, se = refined
        return CoxResult(b_joint, max(se, se_off), None, b_off, ph_p)

    def joint_newton(
        self, rows: np.ndarray, lo: np.ndarray, hi: np.ndarray, beta: float
    ) -> tuple[float, float] | None:
        """Exact joint Cox fit of [exposure, attributes] by Newton-Raphson from (beta, gamma_hat).

        Returns (log HR, its standard error from the full inverse information), None if it fails.
        """
        import numpy as np

        X, d, K, p = self.design.X, self.deaths, len(self.times), self.design.X.shape[1]
        gamma = self.gamma.copy()
        adv = self.advanced[rows] & (hi > lo)
        de_total = int(adv.sum())
        for _ in range(8):
            eta = X @ gamma
            w = np.exp(eta - eta.mean())
            eb = math.exp(beta)
            wr = w[rows]
            S0, S1 = self._sums(X, w)
            # Risk-weighted sums over the episodes exposed at each event time.
            E0 = np.cumsum(np.bincount(lo, wr, K + 1) - np.bincount(hi, wr, K + 1))[:K]
            E1 = np.empty((K, p))
            for c in range(p):
                v = wr * X[rows, c]
                E1[:, c] = np.cumsum(np.bincount(lo, v, K + 1) - np.bincount(hi, v, K + 1))[:K]
            S0b, S1b = S0 + (eb - 1) * E0, S1 + (eb - 1) * E1
            q = d / S0b
            pk = eb * E0 / S0b
            Qc = np.concatenate(([0.0], np.cumsum(q)))
            C = w * Qc[self.hi]
            C[rows] += w[rows] * (eb - 1) * (Qc[hi] - Qc[lo])
            U = np.empty(p + 1)
            U[0] = de_total - (d * pk).sum()
            U[1:] = self.advanced.astype(float) @ X - q @ S1b - RIDGE * gamma
            info = np.empty((p + 1, p + 1))
            info[0, 0] = (d * pk * (1 - pk)).sum()
            info[0, 1:] = info[1:, 0] = eb * (q @ E1) - (d * pk / S0b) @ S1b
            info[1:, 1:] = (X * C[:, None]).T @ X - (S1b * (d / S0b**2)[:, None]).T @ S1b
            info[1:, 1:] += RIDGE * np.eye(p)
            try:
                step = np.linalg.solve(info, U)
                inv00 = np.linalg.inv(info)[0, 0]
            except np.linalg.LinAlgError:
                return None
            step = np.clip(step, -1, 1)
            beta, gamma = beta + float(step[0]), gamma + step[1:]
            if np.abs(step).max() < 1e-6:
                break
        if not (math.isfinite(beta) and inv00 > 0) or abs(beta) > 15:
            return None
        return beta, math.sqrt(inv00)


def e_value(hr: float | None) -> float | None:
    """E-value of a hazard ratio of a common outcome (VanderWeele-Ding, HR converted to a risk ratio)."""
    if hr is None or not (hr > 0) or not math.isfinite(hr):
        return None
    if hr == 1:
        return 1.0
    rr = (1 - 0.5 ** math.sqrt(hr)) / (1 - 0.5 ** math.sqrt(1 / hr))
    rr = rr if rr >= 1 else 1 / rr
    return rr + math.sqrt(rr * (rr - 1))


def e_value_ci(hr: float | None, low: float | None, high: float | None) -> float | None:
    """E-value of the confidence bound nearest 1 (1.0 when the interval holds 1)."""
    if hr is None or low is None or high is None:
        return None
    if low <= 1 <= high:
        return 1.0
    return e_value(low if hr > 1 else high)


def _smd(x1: np.ndarray, x0: np.ndarray) -> float | None:
    """Standardised difference of means (pooled SD), None when undefined."""
    import numpy as np

    if len(x1) < 2 or len(x0) < 2:
        return None
    sd = math.sqrt((np.var(x1) + np.var(x0)) / 2)
    return _clean((np.mean(x1) - np.mean(x0)) / sd, 3) if sd > 0 else None


def balance(model: StageModel, rows: np.ndarray) -> dict:
    """Standardised differences between exposed and unexposed episodes: log amount, industry, owner."""
    import numpy as np

    exposed = np.zeros(model.n, dtype=bool)
    exposed[rows] = True
    la = model.design.log_amount
    ok = np.isfinite(la)
    out = {"smd_log_amount": _smd(la[exposed & ok], la[~exposed & ok])}
    for name, key in (("industry", "industry"), ("owner_id", "owner")):
        codes = model.design.categories[name]
        levels = model.design.labels[name]
        n1, n0 = exposed.sum(), (~exposed).sum()
        worst, worst_level = None, None
        if n1 >= 2 and n0 >= 2 and len(levels) > 1:
            c1 = np.bincount(codes[exposed], minlength=len(levels)) / n1
            c0 = np.bincount(codes[~exposed], minlength=len(levels)) / n0
            sd = np.sqrt((c1 * (1 - c1) + c0 * (1 - c0)) / 2)
            with np.errstate(invalid="ignore", divide="ignore"):
                d = np.where(sd > 0, (c1 - c0) / sd, 0.0)
            i = int(np.argmax(np.abs(d)))
            worst, worst_level = _clean(d[i], 3), levels[i]
        out[f"smd_{key}_max"] = worst
        out[f"smd_{key}_level"] = worst_level
    values = [v for k, v in out.items() if k.startswith("smd_") and isinstance(v, float)]
    out["imbalanced"] = any(abs(v) > SMD_FLAG for v in values)
    return out


def weighted_km_median(times: np.ndarray, events: np.ndarray, weights: np.ndarray) -> float | None:
    """Kaplan-Meier median (days) with case weights; None when the curve never reaches 1/2."""
    import numpy as np

    keep = weights > 0
    times, events, weights = times[keep], events[keep], weights[keep]
    if len(times) == 0 or not events.any():
        return None
    uniq, inv = np.unique(times, return_inverse=True)
    dead = np.bincount(inv, weights * events, len(uniq))
    at_risk = np.cumsum(np.bincount(inv, weights, len(uniq))[::-1])[::-1]
    with np.errstate(invalid="ignore", divide="ignore"):
        surv = np.cumprod(1 - np.where(at_risk > 0, dead / at_risk, 0))
    hit = np.flatnonzero(surv <= 0.5 + 1e-12)
    return round(float(uniq[hit[0]]), 2) if len(hit) else None


def km_median(durations: np.ndarray, events: np.ndarray) -> float | None:
    """Kaplan-Meier median (days), None when fewer than half advanced (or no data)."""
    import numpy as np

    return weighted_km_median(
        np.asarray(durations, dtype=float), np.asarray(events, dtype=bool), np.ones(len(durations))
    )


def comparable_unexposed_median(
    model: StageModel, rows: np.ndarray, exposed_from: np.ndarray, cap: int = 4000
) -> float | None:
    """KM median of not-yet-exposed episodes from landmarks at the share delays, amount-bin weighted.

    NOTE: an episode exposed later is a comparator until its exposure (then censored): leaving it
    out would keep only the episodes that stayed unexposed, i.e. the ones that left early, and make
    any shared piece look slow. At most `cap` comparators per landmark (evenly spaced, weights
    scaled up): a descriptive median does not need all 100,000.
    """
    import numpy as np

    n = model.n
    first = np.full(n, np.inf)
    first[rows] = exposed_from
    dur, adv = model.durations, model.advanced
    strata = np.where(model.design.amount_bins < 0, model.design.n_bins, model.design.amount_bins)
    n_strata = model.design.n_bins + 1
    cuts = np.quantile(exposed_from, np.linspace(0, 1, LANDMARKS + 1)[1:-1])
    group = np.searchsorted(cuts, exposed_from, side="right")
    parts_t, parts_e, parts_w = [], [], []
    for j in np.unique(group):
        in_group = group == j
        landmark = float(np.median(exposed_from[in_group]))
        target = np.bincount(strata[rows[in_group]], minlength=n_strata).astype(float)
        pool = np.flatnonzero((dur > landmark) & (first > landmark))
        if len(pool) > cap:
            pool = pool[np.linspace(0, len(pool) - 1, cap).astype(np.int64)]
        have = np.bincount(strata[pool], minlength=n_strata).astype(float)
        scale = np.divide(target, have, out=np.zeros(n_strata), where=have > 0)
        stop = np.minimum(dur[pool], first[pool])
        parts_t.append(stop - landmark)
        parts_e.append(adv[pool] & (dur[pool] <= first[pool]))
        parts_w.append(scale[strata[pool]])
    if not parts_t:
        return None
    return weighted_km_median(
        np.concatenate(parts_t), np.concatenate(parts_e), np.concatenate(parts_w)
    )


def _clean(x: float | None, digits: int = 4) -> float | None:
    """A finite rounded float, or None (never NaN)."""
    if x is None:
        return None
    x = float(x)
    return round(x, digits) if math.isfinite(x) else None


def _estimate(result: CoxResult) -> dict:
    """hazard_ratio, ci_low, ci_high, p_value from a fit (all None when there is none)."""
    if result.beta is None:
        return {"hazard_ratio": None, "ci_low": None, "ci_high": None, "p_value": None}
    b, se = result.beta, result.se
    return {
        "hazard_ratio": _clean(math.exp(b)),
        "ci_low": _clean(math.exp(b - Z95 * se)),
        "ci_high": _clean(math.exp(b + Z95 * se)),
        "p_value": _clean(math.erfc(abs(b / se) / math.sqrt(2)), 6),  # two-sided normal
    }


def diagnostics(model: StageModel, rows: np.ndarray, result: CoxResult, est: dict) -> dict:
    """Balance, proportional-hazards check and E-values of one fitted (asset, stage) pair."""
    ph = result.ph_p_value
    return {
        "balance": balance(model, rows),
        "proportional_hazards": {
            "test": "score test of exposure x log(days in stage)",
            "p_value": _clean(ph, 6),
            "holds": None if ph is None else ph >= 0.05,
        },
        "e_value": _clean(e_value(est["hazard_ratio"]), 3),
        "e_value_ci": _clean(e_value_ci(est["hazard_ratio"], est["ci_low"], est["ci_high"]), 3),
        "offset_only_hazard_ratio": (
            _clean(math.exp(result.offset_beta)) if result.offset_beta is not None else None
        ),
        "adjustment_note": model.note,
    }


def bh_q_values(p: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg q-values (adjusted p-values), in the order given.

    NOTE: a few lines of numpy rather than statsmodels' multipletests: importing statsmodels
    only for this would add ~60 MB to the report's peak memory.
    """
    import numpy as np

    m = len(p)
    order = np.argsort(p)
    scaled = p[order] * m / np.arange(1, m + 1)
    q = np.minimum.accumulate(scaled[::-1])[::-1]
    out = np.empty(m)
    out[order] = np.minimum(q, 1.0)
    return out


def _episodes_with_attributes(episodes: pd.DataFrame, deals: pd.DataFrame) -> pd.DataFrame:
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
) -> dict:
    """The effectiveness report: one item per (asset, buying stage) with any exposed episode.

    `episodes` from build_episodes; `deals` has deal_id, amount, industry, pipeline_id, owner_id;
    `shares` has deal_id, asset_id, shared_at. Numbers that cannot be estimated are None with a reason.
    """
    import numpy as np

    eps = _episodes_with_attributes(episodes, deals)
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
        model = StageModel(sub) if fit_any else None
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
            item.update(_estimate(result))
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
            it["q_value"] = _clean(qv, 6)
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
    out.update(_estimate(result))
    out["reason"] = result.reason or (f"unadjusted: {model.note}" if model.note else None)
    out["verdict"] = verdict(out["p_value"], out["ci_low"], out["ci_high"])
    if result.beta is not None:
        out["diagnostics"] = diagnostics(model, rows, result, out)
    return out


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


IMPACT_METHOD = (
    "Recommender impact: deals whose recommendation list was asked for, compared by group. A deal's "
    "group comes from a stable hash of its id (RECOMMENDATION_HOLDOUT of deals are held out and shown "
    "nothing), so the two groups differ by chance alone. Each stage episode in which a list was asked "
    "for is followed from the first request in it (earlier time is left out on both sides: a deal must "
    "still be in the stage to be asked about, and counting that time would credit whichever side had "
    "more of it); the group of that first request is the episode's group. Effect: the hazard ratio of "
    "advancing, recommended versus holdout (intention to treat: whether or not anything was then "
    "shared), with the same adjustment, estimator, interval and verdict rule as the per-asset effects."
)


def recommender_impact(
    episodes: pd.DataFrame,
    deals: pd.DataFrame,
    impressions: pd.DataFrame,
    min_exposed: int = MIN_EXPOSED,
    min_advances: int = MIN_ADVANCES,
) -> list[dict]:
    """Per buying stage: the adjusted hazard ratio of advancing, recommended group versus holdout.

    `impressions` has deal_id, shown_at, holdout (one row per recommendation answer). Both
    groups need min_exposed episodes and min_advances advances, else the row is
    insufficient_data with its reason.
    """
    import numpy as np
    import pandas as pd

    eps = _episodes_with_attributes(episodes, deals)
    requests = pd.DataFrame(
        {
            "deal_id": impressions["deal_id"],
            "asset_id": np.where(impressions["holdout"].astype(bool), "holdout", "recommended"),
            "shared_at": impressions["shown_at"],
        }
    )
    first = exposures(eps, requests)
    # An episode belongs to the group of its first request (a raised holdout fraction can move a deal).
    first = first.sort_values(["episode", "exposed_after_days"], kind="stable")
    first = first.drop_duplicates("episode")
    followed = eps.iloc[first["episode"].to_numpy(dtype=np.int64)].reset_index(drop=True)
    delay = first["exposed_after_days"].to_numpy(dtype=float)
    followed["duration_days"] = followed["duration_days"].to_numpy(dtype=float) - delay
    recommended = first["asset_id"].to_numpy(dtype=object) == "recommended"
    stage_of = followed["buying_stage"].to_numpy(dtype=object)
    advanced = followed["advanced"].to_numpy(dtype=bool)
    rows = []
    for stage in BUYING_STAGES:
        here = stage_of == stage
        in_group = {"recommended": here & recommended, "holdout": here & ~recommended}
        row = {
            "buying_stage": stage,
            "recommended_episodes": int(in_group["recommended"].sum()),
            "recommended_advances": int(advanced[in_group["recommended"]].sum()),
            "holdout_episodes": int(in_group["holdout"].sum()),
            "holdout_advances": int(advanced[in_group["holdout"]].sum()),
        }
        thin = [
            name
            for name, mask in in_group.items()
            if mask.sum() < min_exposed or advanced[mask].sum() < min_advances
        ]
        if thin:
            rows.append(
                {
                    **row,
                    "hazard_ratio": None,
                    "ci_low": None,
                    "ci_high": None,
                    "p_value": None,
                    "verdict": "insufficient_data",
                    "reason": (
                        f"the {' and '.join(thin)} group{'s' if len(thin) > 1 else ''} "
                        f"{'have' if len(thin) > 1 else 'has'} fewer than {min_exposed} episodes "
                        f"or {min_advances} advances followed from a recommendation request"
                    ),
                    "diagnostics": None,
                    "method": IMPACT_METHOD,
                }
            )
            continue
        exposed_from = np.where(recommended[here], 0.0, np.nan)
        effect = exposure_effect(
            followed[here].reset_index(drop=True), exposed_from, min_exposed, min_advances
        )
        # The recommended group is the exposed one: its counts are already in the row.
        estimate = {k: v for k, v in effect.items() if not k.startswith("exposed_")}
        rows.append({**row, **estimate, "method": IMPACT_METHOD})
    return rows
