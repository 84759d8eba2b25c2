"""Stage episodes: how long a deal stayed in a buying stage (or CRM stage), and how it left.

Definitions (product.md, binding): a buying-stage episode runs from entering a CRM stage
mapped to S until leaving S. It advances when the deal enters a stage mapped to a later
buying stage or a won closed stage. Entering a lost stage, moving backward, or still
being open at `as_of` ends it censored.

NOTE: entering an open CRM stage that maps to no buying stage also leaves S: the episode
ends censored with outcome `unmapped` (it is not an advance). A later entry into a mapped
stage starts a new episode. Entries after `as_of` are ignored, so reports are reproducible.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from enablement.domain.stages import BUYING_STAGES

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

# NOTE: numpy and pandas are imported inside the functions so that importing the domain (the CLI,
# the web app) stays fast; they load the first time a report runs (tests/test_startup.py).

DAY_NS = 86_400 * 10**9
# Zero-length episodes (two entries at the same instant) get this length so survival models accept them.
MIN_DAYS = 1e-3

EPISODE_COLUMNS = [
    "deal_id",
    "pipeline_id",
    "stage_id",
    "buying_stage",
    "start",
    "end",
    "duration_days",
    "advanced",
    "outcome",
]
CRM_EPISODE_COLUMNS = [
    "deal_id",
    "pipeline_id",
    "stage_id",
    "start",
    "end",
    "duration_days",
    "advanced",
    "outcome",
]


@dataclass(frozen=True)
class StageInfo:
    """What the report needs to know about one CRM stage."""

    buying_stage: str | None
    is_closed: bool
    is_won: bool
    display_order: int = 0


def to_days(values) -> np.ndarray:
    """Aware timestamps (Series, Index, list or one datetime) as float days since the epoch."""
    import numpy as np
    import pandas as pd

    if isinstance(values, datetime):
        return np.array([pd.Timestamp(values).value / DAY_NS])
    ts = pd.to_datetime(pd.Series(values), utc=True)
    return ts.astype("int64").to_numpy() / DAY_NS


def stage_lookup(stage_map: pd.DataFrame) -> dict[tuple[str, str], StageInfo]:
    """(pipeline_id, stage_id) -> StageInfo from a frame with those columns."""
    lookup = {}
    for row in stage_map.itertuples(index=False):
        bs = row.buying_stage if row.buying_stage in BUYING_STAGES else None
        order = int(getattr(row, "display_order", 0) or 0)
        lookup[(row.pipeline_id, row.stage_id)] = StageInfo(
            bs, bool(row.is_closed), bool(row.is_won), order
        )
    return lookup


def _sorted_history(history: pd.DataFrame, as_of: datetime) -> pd.DataFrame:
    """History entries up to as_of, ordered by deal and time (stable on input order)."""
    import numpy as np

    h = history[["deal_id", "pipeline_id", "stage_id", "entered_at"]].copy()
    h["t"] = to_days(h["entered_at"]) if len(h) else np.array([], dtype=float)
    h = h[h["t"] <= to_days(as_of)[0]]
    return h.sort_values(["deal_id", "t"], kind="stable")


def build_episodes(
    history: pd.DataFrame, stage_map: pd.DataFrame, as_of: datetime
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Buying-stage episodes and CRM-stage episodes from stage history, the stage map and as_of.

    `history` has deal_id, pipeline_id, stage_id, entered_at (aware); `stage_map` has
    pipeline_id, stage_id, buying_stage, is_closed, is_won, display_order. Returns two
    frames (EPISODE_COLUMNS, CRM_EPISODE_COLUMNS); start/end are float days since the
    epoch, `end` of an open episode is as_of. Stages missing from the map count as unmapped.
    """
    import numpy as np
    import pandas as pd

    lookup = stage_lookup(stage_map)
    unknown = StageInfo(None, False, False, 0)
    now = float(to_days(as_of)[0])
    h = _sorted_history(history, as_of)
    rank = {s: i for i, s in enumerate(BUYING_STAGES)}
    episodes: list[tuple] = []
    crm: list[tuple] = []

    deals = h["deal_id"].to_numpy()
    pipes = h["pipeline_id"].to_numpy()
    stages = h["stage_id"].to_numpy()
    times = h["t"].to_numpy()
    n = len(h)
    i = 0
    while i < n:
        deal = deals[i]
        open_ep = None  # [pipeline, stage_id, buying_stage, start]
        open_crm = None  # [pipeline, stage_id, start, order]
        while i < n and deals[i] == deal:
            pipe, stage, t = pipes[i], stages[i], times[i]
            info = lookup.get((pipe, stage), unknown)
            i += 1
            # CRM-stage episodes: leaving the current CRM stage.
            if open_crm is not None and (open_crm[0], open_crm[1]) != (pipe, stage):
                if info.is_closed:
                    outcome = "advanced" if info.is_won else "lost"
                elif pipe == open_crm[0] and info.display_order > open_crm[3]:
                    outcome = "advanced"
                else:
                    outcome = "backward"
                crm.append((deal, open_crm[0], open_crm[1], open_crm[2], t, outcome))
                open_crm = None
            if open_crm is None and not info.is_closed:
                open_crm = [pipe, stage, t, info.display_order]
            # Buying-stage episodes.
            if open_ep is not None:
                current = open_ep[2]
                if not info.is_closed and info.buying_stage == current:
                    continue  # a move within the same buying stage
                if info.is_closed:
                    outcome = "advanced" if info.is_won else "lost"
                elif info.buying_stage is None:
                    outcome = "unmapped"
                elif rank[info.buying_stage] > rank[current]:
                    outcome = "advanced"
                else:
                    outcome = "backward"
                episodes.append((deal, open_ep[0], open_ep[1], current, open_ep[3], t, outcome))
                open_ep = None
            if not info.is_closed and info.buying_stage is not None:
                open_ep = [pipe, stage, info.buying_stage, t]
        if open_ep is not None:
            episodes.append((deal, open_ep[0], open_ep[1], open_ep[2], open_ep[3], now, "open"))
        if open_crm is not None:
            crm.append((deal, open_crm[0], open_crm[1], open_crm[2], now, "open"))

    ep = pd.DataFrame(
        episodes,
        columns=["deal_id", "pipeline_id", "stage_id", "buying_stage", "start", "end", "outcome"],
    )
    cr = pd.DataFrame(
        crm, columns=["deal_id", "pipeline_id", "stage_id", "start", "end", "outcome"]
    )
    for frame in (ep, cr):
        frame["start"] = frame["start"].astype(float)
        frame["end"] = frame["end"].astype(float)
        frame["duration_days"] = np.maximum(frame["end"] - frame["start"], MIN_DAYS)
        frame["advanced"] = frame["outcome"] == "advanced"
    return ep[EPISODE_COLUMNS], cr[CRM_EPISODE_COLUMNS]


def exposures(episodes: pd.DataFrame, shares: pd.DataFrame) -> pd.DataFrame:
    """First share of each asset during each episode: episode index, asset_id, days since episode start.

    `shares` has deal_id, asset_id, shared_at. A share counts when start <= shared_at < end
    (a share at the moment the deal leaves the stage exposed nothing in it).
    """
    import numpy as np
    import pandas as pd

    cols = ["episode", "asset_id", "exposed_after_days"]
    if episodes.empty or shares.empty:
        return pd.DataFrame(columns=cols)
    s = pd.DataFrame(
        {
            "deal_id": shares["deal_id"].to_numpy(),
            "asset_id": shares["asset_id"].to_numpy(),
            "t": to_days(shares["shared_at"]),
        }
    )
    e = pd.DataFrame(
        {
            "episode": np.arange(len(episodes)),
            "deal_id": episodes["deal_id"].to_numpy(),
            "start": episodes["start"].to_numpy(),
            "end": episodes["end"].to_numpy(),
        }
    )
    m = s.merge(e, on="deal_id", how="inner")
    m = m[(m["t"] >= m["start"]) & (m["t"] < m["end"])]
    m = m.assign(exposed_after_days=m["t"] - m["start"])
    first = m.groupby(["episode", "asset_id"], as_index=False, sort=False)[
        "exposed_after_days"
    ].min()
    return first[cols]
