"""A Cox fit as report numbers: hazard ratio, 95% interval and p-value, finite and rounded."""

from __future__ import annotations

import math

from enablement.domain.survival.cox import CoxResult

Z95 = 1.959964


def clean(x: float | None, digits: int = 4) -> float | None:
    """A finite rounded float, or None (never NaN)."""
    if x is None:
        return None
    x = float(x)
    return round(x, digits) if math.isfinite(x) else None


def estimate(result: CoxResult) -> dict:
    """hazard_ratio, ci_low, ci_high, p_value from a fit (all None when there is none)."""
    if result.beta is None:
        return {"hazard_ratio": None, "ci_low": None, "ci_high": None, "p_value": None}
    b, se = result.beta, result.se
    return {
        "hazard_ratio": clean(math.exp(b)),
        "ci_low": clean(math.exp(b - Z95 * se)),
        "ci_high": clean(math.exp(b + Z95 * se)),
        "p_value": clean(math.erfc(abs(b / se) / math.sqrt(2)), 6),  # two-sided normal
    }
