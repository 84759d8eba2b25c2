"""Competing risks: Aalen-Johansen cumulative incidence of two outcomes that exclude each other."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

# NOTE: numpy is imported inside the functions: it loads when a report runs, not at start-up.


def cumulative_incidence(
    durations: np.ndarray, advanced: np.ndarray, lost: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Aalen-Johansen cumulative incidence of advancing and of losing at each distinct exit time.

    Returns (times, cif_advanced, cif_lost); episodes neither advanced nor lost are censored.
    """
    import numpy as np

    times, inv = np.unique(durations, return_inverse=True)
    n = len(times)
    d_adv = np.bincount(inv, advanced.astype(float), n)
    d_lost = np.bincount(inv, lost.astype(float), n)
    at_risk = np.cumsum(np.bincount(inv, minlength=n)[::-1])[::-1].astype(float)
    hazard_all = (d_adv + d_lost) / at_risk
    # Overall survival just before each time (everyone at risk at the start).
    surv_before = np.concatenate(([1.0], np.cumprod(1 - hazard_all)[:-1]))
    cif_adv = np.cumsum(surv_before * d_adv / at_risk)
    cif_lost = np.cumsum(surv_before * d_lost / at_risk)
    return times, cif_adv, cif_lost
