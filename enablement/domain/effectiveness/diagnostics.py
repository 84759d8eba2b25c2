"""Diagnostics of one fitted (asset, stage) pair: balance, proportional hazards, E-values."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from enablement.domain.effectiveness.estimates import clean
from enablement.domain.survival.cox import CoxResult

if TYPE_CHECKING:
    import numpy as np

    from enablement.domain.effectiveness.stage_model import StageModel

# NOTE: numpy is imported inside the functions: it loads when a report runs, not when the CLI or
# the web app starts (tests/test_startup.py).

# |standardised difference| above this is the usual sign of imbalance.
SMD_FLAG = 0.1


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
    return clean((np.mean(x1) - np.mean(x0)) / sd, 3) if sd > 0 else None


def balance(model: StageModel, rows: np.ndarray) -> dict:
    """Standardised differences, exposed vs unexposed episodes: log amount, entry date, industry, owner."""
    import numpy as np

    exposed = np.zeros(model.n, dtype=bool)
    exposed[rows] = True
    la = model.design.log_amount
    ok = np.isfinite(la)
    out = {"smd_log_amount": _smd(la[exposed & ok], la[~exposed & ok])}
    entered = model.design.entered
    # Balance on the stage-entry date: a piece sent mostly early or late in the history leans on
    # the calendar adjustment (a late-published piece always does).
    out["smd_entry_date"] = (
        _smd(entered[exposed], entered[~exposed]) if entered is not None else None
    )
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
            worst, worst_level = clean(d[i], 3), levels[i]
        out[f"smd_{key}_max"] = worst
        out[f"smd_{key}_level"] = worst_level
    values = [v for k, v in out.items() if k.startswith("smd_") and isinstance(v, float)]
    out["imbalanced"] = any(abs(v) > SMD_FLAG for v in values)
    return out


def diagnostics(model: StageModel, rows: np.ndarray, result: CoxResult, est: dict) -> dict:
    """Balance, proportional-hazards check and E-values of one fitted (asset, stage) pair."""
    ph = result.ph_p_value
    return {
        "balance": balance(model, rows),
        "proportional_hazards": {
            "test": "score test of exposure x log(days in stage)",
            "p_value": clean(ph, 6),
            "holds": None if ph is None else ph >= 0.05,
        },
        "e_value": clean(e_value(est["hazard_ratio"]), 3),
        "e_value_ci": clean(e_value_ci(est["hazard_ratio"], est["ci_low"], est["ci_high"]), 3),
        # The per-piece shortcut's estimate with the adjustment fixed (exposure_effect only).
        "offset_only_hazard_ratio": (
            clean(math.exp(result.offset_beta)) if result.offset_beta is not None else None
        ),
        "adjustment_note": model.note,
    }
