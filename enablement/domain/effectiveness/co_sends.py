"""Pieces sent together: per piece and stage, how often another piece was sent to the same episode at once.

Two pieces are *sent together* in an episode when their first shares in it are at most
CO_SEND_DAYS apart. A piece's co-send share is the fraction of its exposed episodes in which
some other piece was sent together with it; its partners are the pieces it was most often
sent together with, each with its own share.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

# NOTE: numpy is imported inside the functions: it loads when a report runs, not at start-up.

CO_SEND_DAYS = 1.0
# A piece sent together with another in at least this share of its sends is flagged: its effect
# is told apart from its partners' only by the sends that differ.
CO_SEND_FLAG = 0.5
# Two pieces each sent with the other in at least this share of their sends cannot be told apart:
# neither is credited alone, the pair gets a joint row.
INSEPARABLE_SHARE = 0.9
PARTNERS = 3


@dataclass(frozen=True)
class CoSends:
    """Per piece code: co-send share; per (piece, partner) code pair: episodes sent together."""

    exposed: np.ndarray  # exposed episodes per piece code
    together: np.ndarray  # exposed episodes with any other piece sent together
    pair_counts: dict  # a -> {b: episodes in which a was sent together with b}

    def share(self, a: int) -> float | None:
        """Share of a's exposed episodes with another piece sent together (None: never exposed)."""
        return float(self.together[a] / self.exposed[a]) if self.exposed[a] else None

    def pair_share(self, a: int, b: int) -> float:
        """Share of a's exposed episodes in which b was sent together with it."""
        n = self.pair_counts.get(a, {}).get(b, 0)
        return float(n / self.exposed[a]) if self.exposed[a] else 0.0

    def partners(self, a: int) -> list[tuple[int, float]]:
        """The pieces most often sent together with a, with a's share for each, largest first."""
        found = list(self.pair_counts.get(a, {}).items())
        found.sort(key=lambda bn: (-bn[1], bn[0]))
        return [(b, float(n / self.exposed[a])) for b, n in found[:PARTNERS]]


def co_sends(episode: np.ndarray, code: np.ndarray, at: np.ndarray, n_codes: int) -> CoSends:
    """Co-send counts of one stage's exposures (episode index, piece code, days into the episode)."""
    import numpy as np

    order = np.lexsort((at, episode))
    ep, cd, t = episode[order], code[order], at[order]
    exposed = np.bincount(cd, minlength=n_codes)
    # Every ordered pair of exposures within one episode: exposure i with each j of its episode.
    starts = np.flatnonzero(np.diff(ep, prepend=-1))
    sizes = np.diff(np.append(starts, len(ep)))
    m = np.repeat(sizes, sizes)
    first = np.repeat(starts, sizes)
    i = np.repeat(np.arange(len(ep)), m)
    j = np.repeat(first, m) + (np.arange(len(i)) - np.repeat(np.cumsum(m) - m, m))
    keep = (i != j) & (np.abs(t[i] - t[j]) <= CO_SEND_DAYS)
    i, j = i[keep], j[keep]
    together = np.bincount(cd[np.unique(i)], minlength=n_codes)
    keys, counts = np.unique(cd[i].astype(np.int64) * n_codes + cd[j], return_counts=True)
    pair_counts: dict = {}
    for k, c in zip(keys.tolist(), counts.tolist(), strict=True):
        pair_counts.setdefault(k // n_codes, {})[k % n_codes] = c
    return CoSends(exposed, together, pair_counts)
