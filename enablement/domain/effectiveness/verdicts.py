"""The verdict per (asset, buying stage) and the q-values it reads (product.md, "verdict")."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

# NOTE: numpy is imported inside the functions: it loads when a report runs, not when the CLI or
# the web app starts (tests/test_startup.py).

# The verdicts, in the order reports list them.
VERDICTS = ("shortens", "lengthens", "no_evidence", "insufficient_data")
MIN_EXPOSED = 20
MIN_ADVANCES = 10
Q_MAX = 0.05


def verdict(q: float | None, ci_low: float | None, ci_high: float | None) -> str:
    """shortens / lengthens / no_evidence from the q-value and CI (counts are checked before)."""
    if q is None or ci_low is None or ci_high is None:
        return "no_evidence"
    if q <= Q_MAX and ci_low > 1:
        return "shortens"
    if q <= Q_MAX and ci_high < 1:
        return "lengthens"
    return "no_evidence"


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
