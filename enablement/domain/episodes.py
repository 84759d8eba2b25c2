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

from array import array
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
OUTCOMES = ("advanced", "lost", "backward", "unmapped", "open")
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
    code = {o: i for i, o in enumerate(OUTCOMES)}
    # NOTE: episodes are kept as row numbers of the history (where they start and end) in
    # typed arrays, not as tuples of values: at 1,000,000 stage changes that is a fifth of
    # the memory, and the frames are then built by indexing the history's columns.
    ep_open, ep_end, ep_outcome, ep_stage = array("q"), array("q"), array("b"), array("b")
    cr_open, cr_end, cr_outcome = array("q"), array("q"), array("b")

    deals = h["deal_id"].to_numpy()
    pipes = h["pipeline_id"].to_numpy()
    stages = h["stage_id"].to_numpy()
    times = h["t"].to_numpy()
    n = len(h)
    i = 0
    while i < n:
        deal = deals[i]
        open_ep = None  # [buying_stage, history row where it started]
        open_crm = None  # [pipeline, stage_id, order, history row where it started]
        while i < n and deals[i] == deal:
            pipe, stage = pipes[i], stages[i]
            info = lookup.get((pipe, stage), unknown)
            i += 1
            # CRM-stage episodes: leaving the current CRM stage.
            if open_crm is not None and (open_crm[0], open_crm[1]) != (pipe, stage):
                if info.is_closed:
                    outcome = "advanced" if info.is_won else "lost"
                elif pipe == open_crm[0] and info.display_order > open_crm[2]:
                    outcome = "advanced"
                else:
                    outcome = "backward"
                cr_open.append(open_crm[3])
                cr_end.append(i - 1)
                cr_outcome.append(code[outcome])
                open_crm = None
            if open_crm is None and not info.is_closed:
                open_crm = [pipe, stage, info.display_order, i - 1]
            # Buying-stage episodes.
            if open_ep is not None:
                current = open_ep[0]
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
                ep_open.append(open_ep[1])
                ep_end.append(i - 1)
                ep_outcome.append(code[outcome])
                ep_stage.append(rank[current])
                open_ep = None
            if not info.is_closed and info.buying_stage is not None:
                open_ep = [info.buying_stage, i - 1]
        if open_ep is not None:
            ep_open.append(open_ep[1])
            ep_end.append(-1)
            ep_outcome.append(code["open"])
            ep_stage.append(rank[open_ep[0]])
        if open_crm is not None:
            cr_open.append(open_crm[3])
            cr_end.append(-1)
            cr_outcome.append(code["open"])

    outcomes = np.array(OUTCOMES, dtype=object)

    def frame_of(opened: array, ended: array, outcome: array) -> pd.DataFrame:
        """Episode columns from start/end history rows (-1 = still open at as_of)."""
        first = np.asarray(opened, dtype=np.int64)
        last = np.asarray(ended, dtype=np.int64)
        return pd.DataFrame(
            {
                "deal_id": deals[first],
                "pipeline_id": pipes[first],
                "stage_id": stages[first],
                "start": times[first].astype(float),
                "end": np.where(last >= 0, times[np.maximum(last, 0)], now).astype(float),
                "outcome": outcomes[np.asarray(outcome, dtype=np.int64)],
            }
        )

    ep = frame_of(ep_open, ep_end, ep_outcome)
    ep.insert(
        3,
        "buying_stage",
        np.array(BUYING_STAGES, dtype=object)[np.asarray(ep_stage, dtype=np.int64)],
    )
    cr = frame_of(cr_open, cr_end, cr_outcome)
    for frame in (ep, cr):
        frame["duration_days"] = np.maximum(frame["end"] - frame["start"], MIN_DAYS)
        frame["advanced"] = frame["outcome"] == "advanced"
    return ep[EPISODE_COLUMNS], cr[CRM_EPISODE_COLUMNS]


def exposures(episodes: pd.DataFrame, shares: pd.DataFrame) -> pd.DataFrame:
    """First share of each asset during each episode: episode index, asset_id, days since episode start.

    `shares` has deal_id, asset_id, shared_at. A share counts when start <= shared_at < end
    (a share at the moment the deal leaves the stage exposed nothing in it).

    NOTE: a sort-merge on integer codes, not a join on deal_id: a deal's episodes do not
    overlap, so each share belongs at most to the latest episode of its deal that started at
    or before it. A join would hold every (share, episode of the deal) pair in memory at once.
    """
    import numpy as np
    import pandas as pd

    cols = ["episode", "asset_id", "exposed_after_days"]
    if episodes.empty or shares.empty:
        return pd.DataFrame(columns=cols)
    n_ep = len(episodes)
    # Integer codes first, while little else is in memory (hashing 1,000,000 ids is the peak).
    asset_codes, asset_ids = pd.factorize(shares["asset_id"].to_numpy(dtype=object))
    # Deal codes from the episodes' deals; a share of a deal with no episode gets -1 (no match).
    episode_deals, deal_ids = pd.factorize(episodes["deal_id"].to_numpy(dtype=object))
    share_deals = pd.Index(deal_ids).get_indexer(shares["deal_id"].to_numpy(dtype=object))
    deal = np.concatenate([episode_deals, share_deals])
    del episode_deals, share_deals, deal_ids
    start = episodes["start"].to_numpy(dtype=float)
    end = episodes["end"].to_numpy(dtype=float)
    t = to_days(shares["shared_at"])
    # At equal times an episode's start sorts before the share: start <= shared_at counts.
    is_share = np.concatenate([np.zeros(n_ep, dtype=np.int8), np.ones(len(t), dtype=np.int8)])
    order = np.lexsort((is_share, np.concatenate([start, t]), deal))
    # The latest episode start at or before each share, in deal-then-time order.
    latest = np.maximum.accumulate(np.where(is_share[order] == 0, np.arange(len(order)), -1))
    share_pos = np.flatnonzero(is_share[order] == 1)
    holder = latest[share_pos]
    share_index = order[share_pos] - n_ep
    del latest, is_share
    ok = holder >= 0
    share_index, episode = share_index[ok], order[holder[ok]]
    del order, holder, share_pos
    ok = (deal[episode] == deal[n_ep + share_index]) & (t[share_index] < end[episode])
    share_index, episode = share_index[ok], episode[ok]
    codes = asset_codes[share_index]
    delay = t[share_index] - start[episode]
    # First share per (episode, asset): sort by that pair, then by delay, keep each pair's first.
    key = episode.astype(np.int64) * max(len(asset_ids), 1) + codes
    order = np.lexsort((delay, key))
    first = order[np.flatnonzero(np.diff(key[order], prepend=-1) != 0)]
    return pd.DataFrame(
        {
            "episode": episode[first].astype(np.int64),
            "asset_id": np.asarray(asset_ids, dtype=object)[codes[first]],
            "exposed_after_days": delay[first],
        }
    )
