"""Does the recommender itself shorten stages? Recommended group versus the holdout, per buying stage."""

from __future__ import annotations

from typing import TYPE_CHECKING

from enablement.domain.effectiveness.report import episodes_with_attributes, exposure_effect
from enablement.domain.effectiveness.verdicts import MIN_ADVANCES, MIN_EXPOSED
from enablement.domain.episodes import exposures
from enablement.domain.stages import BUYING_STAGES

if TYPE_CHECKING:
    import pandas as pd

# NOTE: numpy and pandas are imported inside the functions: they load when a report runs,
# not when the CLI or the web app starts (tests/test_startup.py).

IMPACT_METHOD = (
    "Recommender impact: deals whose recommendation list was asked for, compared by group. A deal's "
    "group comes from a stable hash of its id (RECOMMENDATION_HOLDOUT of deals are held out and shown "
    "nothing), so the two groups differ by chance alone. Each stage episode in which a list was asked "
    "for is followed from the first request in it (earlier time is left out on both sides: a deal must "
    "still be in the stage to be asked about, and counting that time would credit whichever side had "
    "more of it); the group of that first request is the episode's group. Effect: the hazard ratio of "
    "advancing, recommended versus holdout (intention to treat: whether or not anything was then "
    "shared), with the same adjustment, estimator, interval and verdict rule as the per-asset effects. "
    "Rows with trigger 'any' count every request; once nudges or HubSpot workflows have asked, rows "
    "with trigger 'nudged' compare only the lists pushed on entering a stage (holdout deals: the nudges "
    "withheld) and rows with trigger 'asked' only the lists a person asked for."
)
# Impression sources pushed to the rep or the buyer on entering a stage, not asked for by a person.
PUSHED_SOURCES = ("nudge", "hubspot_workflow")
TRIGGERS = ("any", "asked", "nudged")


def recommender_impact(
    episodes: pd.DataFrame,
    deals: pd.DataFrame,
    impressions: pd.DataFrame,
    min_exposed: int = MIN_EXPOSED,
    min_advances: int = MIN_ADVANCES,
) -> list[dict]:
    """Per buying stage and trigger: the adjusted hazard ratio of advancing, recommended group versus holdout.

    `impressions` has deal_id, shown_at, holdout and optionally source (one row per
    recommendation answer). Rows with trigger `any` use every impression; when some came
    from PUSHED_SOURCES, rows with trigger `nudged` (those only) and `asked` (the others)
    follow. Both groups need min_exposed episodes and min_advances advances, else the row
    is insufficient_data with its reason.
    """
    eps = episodes_with_attributes(episodes, deals)
    rows = [
        {**row, "trigger": "any"}
        for row in _impact_rows(eps, impressions, min_exposed, min_advances)
    ]
    if "source" in impressions.columns:
        pushed = impressions["source"].isin(PUSHED_SOURCES).to_numpy(dtype=bool)
        if pushed.any():
            for trigger, mask in (("asked", ~pushed), ("nudged", pushed)):
                part = impressions[mask].reset_index(drop=True)
                rows += [
                    {**row, "trigger": trigger}
                    for row in _impact_rows(eps, part, min_exposed, min_advances)
                ]
    return rows


def _impact_rows(
    eps: pd.DataFrame, impressions: pd.DataFrame, min_exposed: int, min_advances: int
) -> list[dict]:
    """One row per buying stage from these impressions (see recommender_impact)."""
    import numpy as np
    import pandas as pd

    requests = pd.DataFrame(
        {
            "deal_id": impressions["deal_id"],
            "asset_id": np.where(impressions["holdout"].astype(bool), "holdout", "recommended"),
            "shared_at": impressions["shown_at"],
        }
    )
    first = exposures(eps, requests)
    # An episode belongs to the group of its first request (a raised holdout fraction can move a deal).
    first = first.sort_values(["episode", "exposed_after_days"], kind="stable")
    first = first.drop_duplicates("episode")
    followed = eps.iloc[first["episode"].to_numpy(dtype=np.int64)].reset_index(drop=True)
    delay = first["exposed_after_days"].to_numpy(dtype=float)
    followed["duration_days"] = followed["duration_days"].to_numpy(dtype=float) - delay
    recommended = first["asset_id"].to_numpy(dtype=object) == "recommended"
    stage_of = followed["buying_stage"].to_numpy(dtype=object)
    advanced = followed["advanced"].to_numpy(dtype=bool)
    rows = []
    for stage in BUYING_STAGES:
        here = stage_of == stage
        in_group = {"recommended": here & recommended, "holdout": here & ~recommended}
        row = {
            "buying_stage": stage,
            "recommended_episodes": int(in_group["recommended"].sum()),
            "recommended_advances": int(advanced[in_group["recommended"]].sum()),
            "holdout_episodes": int(in_group["holdout"].sum()),
            "holdout_advances": int(advanced[in_group["holdout"]].sum()),
        }
        thin = [
            name
            for name, mask in in_group.items()
            if mask.sum() < min_exposed or advanced[mask].sum() < min_advances
        ]
        if thin:
            rows.append(
                {
                    **row,
                    "hazard_ratio": None,
                    "ci_low": None,
                    "ci_high": None,
                    "p_value": None,
                    "verdict": "insufficient_data",
                    "reason": (
                        f"the {' and '.join(thin)} group{'s' if len(thin) > 1 else ''} "
                        f"{'have' if len(thin) > 1 else 'has'} fewer than {min_exposed} episodes "
                        f"or {min_advances} advances followed from a recommendation request"
                    ),
                    "diagnostics": None,
                    "method": IMPACT_METHOD,
                }
            )
            continue
        exposed_from = np.where(recommended[here], 0.0, np.nan)
        effect = exposure_effect(
            followed[here].reset_index(drop=True), exposed_from, min_exposed, min_advances
        )
        # The recommended group is the exposed one: its counts are already in the row.
        estimate = {k: v for k, v in effect.items() if not k.startswith("exposed_")}
        rows.append({**row, **estimate, "method": IMPACT_METHOD})
    return rows
