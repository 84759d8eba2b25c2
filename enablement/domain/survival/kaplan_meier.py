"""Kaplan-Meier: time until a share of episodes has had the event, censoring respected."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

# NOTE: numpy is imported inside the functions: it loads when a report runs, not at start-up.


def survival_curve(
    times: np.ndarray, events: np.ndarray, weights: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Distinct times and the (case-weighted) Kaplan-Meier survival just after each of them."""
    import numpy as np

    uniq, inv = np.unique(times, return_inverse=True)
    dead = np.bincount(inv, weights * events, len(uniq))
    at_risk = np.cumsum(np.bincount(inv, weights, len(uniq))[::-1])[::-1]
    with np.errstate(invalid="ignore", divide="ignore"):
        surv = np.cumprod(1 - np.where(at_risk > 0, dead / at_risk, 0))
    return uniq, surv


def weighted_km_quantiles(
    times: np.ndarray, events: np.ndarray, weights: np.ndarray, survival: tuple[float, ...]
) -> list[float | None]:
    """Days until the curve first reaches each survival level (rounded to 0.01); None where never."""
    import numpy as np

    keep = weights > 0
    times, events, weights = times[keep], events[keep], weights[keep]
    if len(times) == 0 or not events.any():
        return [None] * len(survival)
    uniq, surv = survival_curve(times, events, weights)
    out = []
    for level in survival:
        # NOTE: the tolerance keeps a curve that is exactly at the level (e.g. 5 of 10 advanced)
        # from missing it by a rounding error of the running product.
        hit = np.flatnonzero(surv <= level + 1e-12)
        out.append(round(float(uniq[hit[0]]), 2) if len(hit) else None)
    return out


def weighted_km_median(times: np.ndarray, events: np.ndarray, weights: np.ndarray) -> float | None:
    """Kaplan-Meier median (days) with case weights; None when the curve never reaches 1/2."""
    return weighted_km_quantiles(times, events, weights, (0.5,))[0]


def km_median(durations: np.ndarray, events: np.ndarray) -> float | None:
    """Kaplan-Meier median (days), None when fewer than half advanced (or no data)."""
    import numpy as np

    return weighted_km_median(
        np.asarray(durations, dtype=float), np.asarray(events, dtype=bool), np.ones(len(durations))
    )


def km_quantiles(durations: np.ndarray, events: np.ndarray) -> dict:
    """median_days, p25_days, p75_days (Kaplan-Meier, days to the event); None where not reached."""
    import numpy as np

    p25, median, p75 = weighted_km_quantiles(
        np.asarray(durations, dtype=float),
        np.asarray(events, dtype=bool),
        np.ones(len(durations)),
        (0.75, 0.5, 0.25),
    )
    return {"median_days": median, "p25_days": p25, "p75_days": p75}
