"""Descriptive medians of the report: exposed episodes and comparable unexposed ones (Kaplan-Meier)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from enablement.domain.survival.kaplan_meier import weighted_km_median

if TYPE_CHECKING:
    import numpy as np

    from enablement.domain.effectiveness.stage_model import StageModel

# NOTE: numpy is imported inside the functions: it loads when a report runs, not when the CLI or
# the web app starts (tests/test_startup.py).

# Comparators are taken at up to this many landmarks (share-delay quantiles).
LANDMARKS = 4


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
