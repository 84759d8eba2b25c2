"""Cox proportional-hazards engine: a ridge-penalised model of covariates, and time-varying exposures on it.

Breslow ties throughout. A CoxModel is fitted once (per buying stage) and every exposure fit
reuses its risk-set sums; see the effectiveness report's METHOD for the estimator in words.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

# NOTE: numpy is imported inside the functions: it loads when a report runs, not when the CLI or
# the web app starts (tests/test_startup.py).

# Small ridge on the covariate coefficients (log-hazard scale): keeps sparse levels finite.
RIDGE = 0.1
# A one-step joint correction larger than this many standard errors is finished by an exact
# joint fit (rare: only exposures strongly tied to the covariates get there).
REFINE_AT = 0.2


@dataclass(frozen=True)
class CoxResult:
    """log hazard ratio and its standard error, or the reason there is none (plus diagnostics)."""

    beta: float | None
    se: float | None
    reason: str | None = None
    offset_beta: float | None = None
    ph_p_value: float | None = None


class CoxModel:
    """Cox model of covariates X (n x p) and the risk-set sums every exposure fit reuses."""

    def __init__(self, X: np.ndarray, durations, advanced):
        """Fit the model (durations in days, advanced = the event); no covariates when it cannot be fitted.

        `note` says why the model has no covariates (too few advances, no convergence), else None.
        """
        import numpy as np

        self.durations = np.asarray(durations, dtype=float)
        self.advanced = np.asarray(advanced, dtype=bool)
        self.n = len(self.durations)
        self.times, self.deaths = np.unique(self.durations[self.advanced], return_counts=True)
        # Index of the last event time each episode is at risk for (exclusive end in event-time units).
        self.hi = np.searchsorted(self.times, self.durations, side="right")
        self.note = None
        self.gamma = np.zeros(X.shape[1])
        if X.shape[1] == 0 or len(self.times) < 5:
            self.note = "no covariates or too few advances to adjust"
            X = np.zeros((self.n, 0))
            self.gamma = np.zeros(0)
        else:
            try:
                self.gamma = self._fit(X)
            except (np.linalg.LinAlgError, FloatingPointError, ValueError) as e:
                self.note = f"adjustment model did not converge: {str(e)[:120]}"
                X = np.zeros((self.n, 0))
                self.gamma = np.zeros(0)
        self.X = X
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
        X = self.X
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

        X, d, K, p = self.X, self.deaths, len(self.times), self.X.shape[1]
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
