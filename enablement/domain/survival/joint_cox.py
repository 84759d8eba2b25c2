"""A stratified Cox model of many time-varying binary exposures together, on a counting-process design.

Each episode is split at every first-share time of the exposures it has, so every row
(start, stop] has a fixed set of active exposures. The linear predictor of a row is the
episode's covariates x gamma plus the sum of its active exposures' coefficients. Breslow
ties; the baseline hazard is stratified (risk sets never mix strata). Newton-Raphson on
the exact partial likelihood: exposures unpenalised (a 1e-6 stabiliser keeps an exact
duplicate solvable), covariates with the stage model's small ridge. The information's
dense part (risk-set sums at every advance time) is built in blocks of advance times, so
memory stays proportional to (advance times x covariates) plus (block x exposures).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from enablement.domain.survival.cox import RIDGE

if TYPE_CHECKING:
    import numpy as np

# NOTE: numpy is imported inside the functions: it loads when a report runs, not at start-up.

# Numerical stabiliser on the exposure coefficients (not a penalty: 1e-6 against information
# in the tens at least), so two pieces always sent together still give a solvable system.
EXPOSURE_RIDGE = 1e-6
# Advance times per block of the information's risk-set sums (memory: block x terms floats).
BLOCK = 1024
# The first Newton steps of a large stage use an information whose risk-set term sums every
# STRIDE-th advance time (weighted up): a quarter of the cost, and the steps converge to the same
# maximum; refreshed informations and the one at the maximum (standard errors) are exact.
STRIDE = 4
MAX_ITER = 60


@dataclass
class JointFit:
    """Coefficients, their covariance and the per-exposure proportional-hazards checks, or a reason."""

    beta: np.ndarray | None  # per exposure term, log hazard ratio
    cov: np.ndarray | None  # covariance of beta (terms x terms), from the full inverse information
    ph_p_value: (
        list | None
    )  # per term: score test of exposure x log(days in stage), None if undefined
    reason: str | None = None


class JointCox:
    """Counting-process design of one stage: covariates per episode, exposures per (episode, term)."""

    def __init__(
        self,
        X: np.ndarray,
        durations: np.ndarray,
        advanced: np.ndarray,
        strata: np.ndarray,
        exp_episode: np.ndarray,
        exp_term: np.ndarray,
        exp_from: np.ndarray,
        n_terms: int,
    ):
        """Split episodes at exposure times; exposures start at exp_from days (0 <= exp_from < duration)."""
        import numpy as np

        self.X = X
        self.q, self.P = X.shape[1], n_terms
        dur = np.asarray(durations, dtype=float)
        n = len(dur)
        adv = np.asarray(advanced, dtype=bool)
        span = float(dur.max()) + 2.0 if n else 2.0
        # Row boundaries: every episode starts a row at 0, every distinct exposure time > 0 another.
        cut = exp_from > 0
        b_ep = np.concatenate([np.arange(n), exp_episode[cut]])
        b_t = np.concatenate([np.zeros(n), exp_from[cut]])
        key = b_ep * span + b_t
        key, first = np.unique(key, return_index=True)
        row_ep = b_ep[first]
        start = b_t[first]
        last = np.ones(len(key), dtype=bool)
        last[:-1] = row_ep[1:] != row_ep[:-1]
        stop = np.empty(len(key))
        stop[:-1] = start[1:]
        stop[last] = dur[row_ep[last]]
        self.row_ep, self.start, self.stop = row_ep, start, stop
        self.event = last & adv[row_ep]
        # Active exposures: from the row that starts at the exposure's time to the episode's last row.
        r0 = np.searchsorted(key, exp_episode * span + exp_from)
        row_end = np.flatnonzero(last)  # index of each episode's last row
        r1 = row_end[exp_episode] + 1
        lengths = r1 - r0
        offsets = np.arange(lengths.sum()) - np.repeat(lengths.cumsum() - lengths, lengths)
        self.nz_row = np.repeat(r0, lengths) + offsets
        self.nz_term = np.repeat(np.asarray(exp_term, dtype=np.int64), lengths)
        order = np.argsort(self.nz_row, kind="stable")
        self.nz_row, self.nz_term = self.nz_row[order], self.nz_term[order]
        # Risk sets per stratum: event keys are (stratum, time); a row is at risk for [lo, hi).
        s = np.asarray(strata, dtype=np.int64)[row_ep] * span
        ev_key = (s + stop)[self.event]
        self.times, self.deaths = np.unique(ev_key, return_counts=True)
        self.event_days = self.times - np.floor(self.times / span) * span
        self.lo = np.searchsorted(self.times, s + start, side="right")
        self.hi = np.searchsorted(self.times, s + stop, side="right")
        self.K = len(self.times)
        # Pairs of exposures of the same episode (for the exposure block of the information): both
        # are active from the later one's first row to the episode's end, so each pair needs only
        # that row; u summed from it to the episode's end (a suffix sum) is the pair's weight.
        order = np.argsort(exp_episode, kind="stable")
        e_sorted = exp_episode[order]
        starts = np.flatnonzero(np.diff(e_sorted, prepend=-1))
        sizes = np.diff(np.append(starts, len(e_sorted)))
        m = np.repeat(sizes, sizes)
        i = np.repeat(np.arange(len(e_sorted), dtype=np.int64), m)
        j = np.repeat(np.repeat(starts, sizes), m) + (
            np.arange(len(i), dtype=np.int64) - np.repeat(np.cumsum(m) - m, m)
        )
        del m
        r_sorted, t_sorted = r0[order], np.asarray(exp_term, dtype=np.int64)[order]
        self.pair_row = np.maximum(r_sorted[i], r_sorted[j]).astype(np.int32)
        self.pair_index = (t_sorted[i] * n_terms + t_sorted[j]).astype(np.int32)
        del i, j
        # End row (exclusive) of each row's episode, for the suffix sums.
        self.row_stop = row_end[row_ep] + 1
        self.term_order = np.argsort(self.nz_term, kind="stable")
        self.lo_order = np.argsort(self.lo[self.nz_row], kind="stable")
        self.hi_order = np.argsort(self.hi[self.nz_row], kind="stable")
        ev = np.flatnonzero(self.event)
        self.x_events = X[row_ep[ev]].sum(axis=0) if self.q else np.zeros(0)
        self.z_events = np.bincount(self.nz_term[self.event[self.nz_row]], minlength=n_terms)

    def _eta(self, gamma: np.ndarray, beta: np.ndarray) -> np.ndarray:
        """Linear predictor per row."""
        import numpy as np

        xg = self.X @ gamma if self.q else np.zeros(self.X.shape[0])
        return xg[self.row_ep] + np.bincount(
            self.nz_row, beta[self.nz_term], minlength=len(self.row_ep)
        )

    def _risk_sum(self, values: np.ndarray) -> np.ndarray:
        """Sum of row values over the rows at risk at each advance time."""
        import numpy as np

        K = self.K
        return np.cumsum(np.bincount(self.lo, values, K + 1) - np.bincount(self.hi, values, K + 1))[
            :K
        ]

    def loglik(self, gamma: np.ndarray, beta: np.ndarray) -> tuple[float, np.ndarray]:
        """Penalised log partial likelihood and the row risk weights."""
        import numpy as np

        eta = self._eta(gamma, beta)
        shift = float(eta.max())
        w = np.exp(eta - shift)
        S0 = self._risk_sum(w)
        value = eta[self.event].sum() - (self.deaths * (np.log(S0) + shift)).sum()
        value -= 0.5 * (RIDGE * gamma @ gamma + EXPOSURE_RIDGE * beta @ beta)
        return float(value), w

    def _score(self, w: np.ndarray, gamma: np.ndarray, beta: np.ndarray):
        """Score [gamma, beta], S0, and u (w x sum of d/S0 over each row's risk interval)."""
        import numpy as np

        S0 = self._risk_sum(w)
        C = np.concatenate(([0.0], np.cumsum(self.deaths / S0)))
        u = w * (C[self.hi] - C[self.lo])
        U = np.empty(self.q + self.P)
        if self.q:
            v = np.bincount(self.row_ep, u, minlength=self.X.shape[0])
            U[: self.q] = self.x_events - v @ self.X - RIDGE * gamma
        U[self.q :] = (
            self.z_events
            - np.bincount(self.nz_term, u[self.nz_row], minlength=self.P)
            - EXPOSURE_RIDGE * beta
        )
        return U, S0, u

    def _information(
        self, w: np.ndarray, S0: np.ndarray, u: np.ndarray, ph: bool = False, stride: int = 1
    ):
        """Observed information (Breslow) of [gamma, beta]; with ph, also the per-term PH score tests.

        stride > 1: the risk-set term from every stride-th advance time, weighted up (for steps).
        """
        import numpy as np

        q, P, X, K = self.q, self.P, self.X, self.K
        info = np.zeros((q + P, q + P))
        if q:
            v = np.bincount(self.row_ep, u, minlength=X.shape[0])
            for lo in range(0, X.shape[0], 20_000):
                part = X[lo : lo + 20_000]
                info[:q, :q] += (part * v[lo : lo + 20_000, None]).T @ part
            # Covariates x exposures: sum over (row, term) of u_row x_episode, grouped by term.
            order = self.term_order
            for lo in range(0, len(order), 10_000):
                idx = order[lo : lo + 10_000]
                terms = self.nz_term[idx]
                Y = X[self.row_ep[self.nz_row[idx]]] * u[self.nz_row[idx], None]
                cuts = np.flatnonzero(np.diff(terms, prepend=-1))
                sums = np.add.reduceat(Y, cuts, axis=0)
                info[q + terms[cuts], :q] += sums
            info[:q, q:] = info[q:, :q].T
        rev = np.concatenate((np.cumsum(u[::-1])[::-1], [0.0]))
        suffix = rev[: len(u)] - rev[self.row_stop]  # u summed from each row to its episode's end
        pairs = np.bincount(self.pair_index, suffix[self.pair_row], minlength=P * P)
        info[q:, q:] += pairs.reshape(P, P)
        # Minus sum_k d_k / S0_k^2 S1_k S1_k', S1 built block by block of advance times.
        c2 = self.deaths / S0**2
        S1d = np.empty((K, q))
        for j in range(q):
            S1d[:, j] = self._risk_sum(w * X[self.row_ep, j])
        wz = w[self.nz_row]
        lo_sorted = self.lo[self.nz_row][self.lo_order]
        hi_sorted = self.hi[self.nz_row][self.hi_order]
        carry = np.zeros(P)
        g = np.log(self.event_days)
        acc = np.zeros((4, P))  # sums over k of d p (1-p), d g p (1-p), d g^2 p (1-p), d g p
        for k0 in range(0, K, BLOCK):
            k1 = min(K, k0 + BLOCK)
            kb = k1 - k0
            a, b = np.searchsorted(lo_sorted, [k0, k1])
            ia = self.lo_order[a:b]
            delta = np.bincount(
                (self.lo[self.nz_row[ia]] - k0) * P + self.nz_term[ia], wz[ia], kb * P
            )
            a, b = np.searchsorted(hi_sorted, [k0, k1])
            ih = self.hi_order[a:b]
            delta -= np.bincount(
                (self.hi[self.nz_row[ih]] - k0) * P + self.nz_term[ih], wz[ih], kb * P
            )
            S1a = np.cumsum(delta.reshape(kb, P), axis=0) + carry
            carry = S1a[-1].copy()
            pick = slice(None, None, stride)
            root = np.sqrt(c2[k0:k1][pick] * stride)[:, None]
            M = np.concatenate((S1d[k0:k1][pick] * root, S1a[pick] * root), axis=1)
            info -= M.T @ M
            if ph:
                d = self.deaths[k0:k1, None]
                p = np.clip(S1a / S0[k0:k1, None], 0, 1)
                gk = g[k0:k1, None]
                v = d * p * (1 - p)
                acc += np.stack(
                    ((v).sum(0), (v * gk).sum(0), (v * gk * gk).sum(0), (d * gk * p).sum(0))
                )
        info[:q, :q] += RIDGE * np.eye(q)
        info[q:, q:] += EXPOSURE_RIDGE * np.eye(P)
        if not ph:
            return info, None
        ev_nz = self.event[self.nz_row]
        gz = np.bincount(self.nz_term[ev_nz], g[self.hi[self.nz_row[ev_nz]] - 1], minlength=P)
        u_ph = gz - acc[3]
        with np.errstate(invalid="ignore", divide="ignore"):
            var = acc[2] - acc[1] ** 2 / acc[0]
        tests = []
        for a in range(P):
            ok = acc[0, a] > 1e-12 and var[a] > 1e-12
            tests.append(math.erfc(math.sqrt(u_ph[a] ** 2 / var[a] / 2)) if ok else None)
        return info, tests

    def fit(self, gamma0: np.ndarray | None = None) -> JointFit:
        """Newton-Raphson (information refreshed when a step stops shrinking), step halving."""
        import numpy as np

        if self.K == 0:
            return JointFit(None, None, None, "no advances in this stage")
        q, P = self.q, self.P
        gamma = np.zeros(q) if gamma0 is None else np.asarray(gamma0, dtype=float).copy()
        beta = np.zeros(P)
        value, w = self.loglik(gamma, beta)
        info = None
        last_norm = math.inf
        # Strided only where enough advance times remain per coefficient; refreshes are exact.
        stride = STRIDE if self.K >= 40 * STRIDE * (q + P) else 1
        try:
            for _ in range(MAX_ITER):
                U, S0, u = self._score(w, gamma, beta)
                if info is None:
                    info, _ = self._information(w, S0, u, stride=stride)
                step = np.linalg.solve(info, U)
                norm = float(np.abs(step).max())
                if norm < 1e-6:
                    break
                if norm > 0.7 * last_norm:
                    # A chord step that is not shrinking fast: refresh the information here.
                    info, _ = self._information(w, S0, u)
                    step = np.linalg.solve(info, U)
                    norm = float(np.abs(step).max())
                step = np.clip(step, -2, 2)
                for _ in range(30):
                    new_value, new_w = self.loglik(gamma + step[:q], beta + step[q:])
                    if np.isfinite(new_value) and new_value >= value - 1e-9:
                        break
                    step = step / 2
                else:
                    return JointFit(None, None, None, "joint fit did not converge (no ascent step)")
                gamma, beta, value, w = gamma + step[:q], beta + step[q:], new_value, new_w
                last_norm = norm
            else:
                return JointFit(None, None, None, "joint fit did not converge")
            U, S0, u = self._score(w, gamma, beta)
            info, ph = self._information(w, S0, u, ph=True)
            inv = np.linalg.inv(info)
        except np.linalg.LinAlgError as e:
            return JointFit(None, None, None, f"joint fit did not converge: {str(e)[:80]}")
        self.gamma = gamma
        return JointFit(beta, inv[q:, q:], ph)
