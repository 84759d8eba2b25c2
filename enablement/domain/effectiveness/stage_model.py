"""One buying stage's adjustment: the deal-attribute design matrix and its Cox model."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from enablement.domain.survival.cox import CoxModel

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

# NOTE: numpy and pandas are imported inside the functions: they load when a report runs,
# not when the CLI or the web app starts (tests/test_startup.py).

# Categories (industry, owner, pipeline) with fewer episodes than this are pooled into "other".
MIN_LEVEL = 30
MAX_OWNERS = 40
# Deal amount enters as up to this many quantile bins (deciles) of the stage's own amounts, plus
# a linear log-amount term inside them: a step-shaped size effect is described by the bins.
MAX_AMOUNT_BINS = 10
# Each amount bin should hold at least this many advances, so small stages get fewer, wider bins.
ADVANCES_PER_BIN = 40
# The baseline is stratified by stage-entry period: up to this many periods (quantiles of the
# entry date), each holding at least ADVANCES_PER_PERIOD advances; pieces' publication dates are
# extra period boundaries where they leave at least that many advances on each side.
MAX_PERIODS = 8
ADVANCES_PER_PERIOD = 60


@dataclass
class Design:
    """Adjustment covariates of one stage's episodes, and how they were built."""

    X: np.ndarray
    amount_bins: np.ndarray  # bin code per episode (-1 = amount missing)
    n_bins: int
    categories: dict  # name -> integer codes per episode (pooled levels)
    labels: dict  # name -> level names, indexed by code
    log_amount: np.ndarray  # NaN where missing
    entered: np.ndarray | None = None  # stage-entry date (days since the epoch), when known


def amount_bin_edges(
    log_amount: np.ndarray, advances: int, max_bins: int = MAX_AMOUNT_BINS
) -> np.ndarray:
    """Inner edges of the quantile bins of log amount (data-chosen count, at most deciles)."""
    import numpy as np

    finite = log_amount[np.isfinite(log_amount)]
    n_bins = int(min(max_bins, max(1, advances // ADVANCES_PER_BIN)))
    if n_bins < 2 or len(finite) < 2:
        return np.zeros(0)
    inner = np.quantile(finite, np.linspace(0, 1, n_bins + 1)[1:-1])
    return np.unique(inner)


def design(stage_eps: pd.DataFrame, max_amount_bins: int = MAX_AMOUNT_BINS) -> Design:
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
    edges = amount_bin_edges(log_amount, advances, max_amount_bins)
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
    entered = stage_eps["start"].to_numpy(dtype=float) if "start" in stage_eps else None
    return Design(X, bins, n_bins, categories, labels, log_amount, entered)


def entry_periods(
    entered: np.ndarray,
    advanced: np.ndarray,
    extra_edges=(),
    max_periods: int = MAX_PERIODS,
) -> tuple[np.ndarray, np.ndarray]:
    """Stage-entry period per episode (codes) and the period edges (days since the epoch).

    Quantile edges of the entry date, as many as the advances support (at most `max_periods`),
    plus `extra_edges` (publication dates); an edge is kept only when every period keeps at
    least ADVANCES_PER_PERIOD advances. max_periods=1: one period (no calendar adjustment).
    """
    import numpy as np

    n = len(entered)
    if max_periods <= 1 or n == 0:
        return np.zeros(n, dtype=np.int64), np.zeros(0)
    adv_dates = np.sort(entered[advanced])
    wanted = int(min(max_periods, max(1, len(adv_dates) // ADVANCES_PER_PERIOD)))
    candidates = (
        list(np.quantile(entered, np.linspace(0, 1, wanted + 1)[1:-1])) if wanted > 1 else []
    )
    low, high = float(entered.min()), float(entered.max())
    candidates += [float(e) for e in extra_edges if low < e < high]
    edges: list[float] = []
    for edge in sorted(set(candidates)):
        before = np.searchsorted(adv_dates, edge) - np.searchsorted(
            adv_dates, edges[-1] if edges else -np.inf
        )
        after = len(adv_dates) - np.searchsorted(adv_dates, edge)
        if before >= ADVANCES_PER_PERIOD and after >= ADVANCES_PER_PERIOD:
            edges.append(edge)
    out = np.asarray(edges, dtype=float)
    return np.searchsorted(out, entered, side="right").astype(np.int64), out


class StageModel(CoxModel):
    """One buying stage: its adjustment design and the Cox model of the deal attributes alone."""

    def __init__(self, stage_eps: pd.DataFrame, max_amount_bins: int = MAX_AMOUNT_BINS):
        """Fit the deal-attribute Cox model of the stage's episodes (durations, advances, attributes)."""
        self.design = design(stage_eps, max_amount_bins)
        super().__init__(self.design.X, stage_eps["duration_days"], stage_eps["advanced"])
        # An adjustment that could not be fitted leaves no covariates: the design says so too.
        self.design.X = self.X


class StageDesign:
    """One buying stage's episodes and adjustment design, without the attribute-only Cox fit.

    The report's joint model estimates the attributes itself; the attribute-only StageModel is
    fitted only if a piece needs the per-piece fallback (`fitted`).
    """

    def __init__(self, stage_eps: pd.DataFrame, max_amount_bins: int = MAX_AMOUNT_BINS):
        """Design, durations (days) and advances of the stage's episodes."""
        self.design = design(stage_eps, max_amount_bins)
        self.X = self.design.X
        self.durations = stage_eps["duration_days"].to_numpy(dtype=float)
        self.advanced = stage_eps["advanced"].to_numpy(dtype=bool)
        self.n = len(self.durations)
        self.note = None
        self._source = (stage_eps, max_amount_bins)
        self._model: StageModel | None = None

    def fitted(self) -> StageModel:
        """The attribute-only Cox model of the stage (fitted on first use)."""
        if self._model is None:
            self._model = StageModel(*self._source)
        return self._model
