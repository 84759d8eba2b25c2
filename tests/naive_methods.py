"""Naive methods the tests compare the report against: the mistakes the product exists to avoid.

Not part of the service (and SciPy is a test dependency only): the report must beat these.
"""

import numpy as np
import pandas as pd
from scipy import stats

from enablement.domain.episodes import exposures


def naive_verdicts(episodes: pd.DataFrame, shares: pd.DataFrame) -> dict[tuple[str, str], str]:
    """The naive comparison: durations of episodes that ever got the asset vs not (what the report must beat).

    Mann-Whitney on raw episode length, advanced episodes only, ignoring censoring, timing and deal size.
    """
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
