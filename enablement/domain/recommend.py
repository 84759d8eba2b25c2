"""Recommendations: which live assets to send a deal's buyer now, with scores and reasons.

Pure: assets, the deal, what it already got, measured effects and `now` come in; ranked
items come out. The service caches `prepare_index` (everything that does not depend on the
deal) and calls `rank_for_deal` per request; `recommend_assets` does both in one call.
"""

from __future__ import annotations

import functools
import hashlib
import heapq
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from rapidfuzz import fuzz, utils

from enablement.domain.stages import BUYING_STAGES
from enablement.domain.tags import tag_key

# Weights of the components in the score (they sum to 1, so the score stays in 0..1).
WEIGHTS: Mapping[str, float] = {
    "stage": 0.25,
    "context": 0.20,
    "evidence": 0.15,
    "engagement": 0.10,
    "freshness": 0.05,
    "novelty": 0.15,
    "voice": 0.10,
}
# Point of view, not product (domain/pov.py flags pitches): never offered in these stages.
NO_PITCH_STAGES: frozenset[str] = frozenset({"awareness", "interest"})
# Prior spread of an asset's log hazard ratio: a measured effect is shrunk toward 1 by
# TAU^2 / (TAU^2 + se^2), so a wide interval counts for little (empirical-Bayes style).
EFFECT_PRIOR_SD = 0.35
FRESHNESS_HALF_LIFE_DAYS = 365.0
FUZZY_FLOOR = 70.0  # rapidfuzz scores (0..100) below this count as no match
EXPLORATION_EVERY = 5  # at most one slot in this many is exploration
MAX_LIMIT = 50
MAX_TERM_COLUMNS = 20_000
NAME_WEIGHT = 0.5  # the deal's name counts half as much as an industry, persona or topic
# Words that mark an author as an organisation, not a person (personal, not corporate).
_ORGANISATION_WORDS = frozenset(
    "team staff editorial editors editor marketing admin company inc llc ltd gmbh corp "
    "content newsroom department group the desk office".split()
)


@dataclass(frozen=True)
class AssetFacts:
    """A live asset as the recommender sees it, with how often buyers opened it."""

    id: str
    title: str
    url: str
    kind: str
    author: str
    summary: str | None = None
    stages: tuple[str, ...] = ()
    topics: tuple[str, ...] = ()
    industries: tuple[str, ...] = ()
    personas: tuple[str, ...] = ()
    published_at: datetime | None = None
    series: str | None = None
    series_order: int | None = None
    pitch_flag: bool = False
    shares: int = 0
    opened_shares: int = 0


@dataclass(frozen=True)
class DealFacts:
    """The deal asked about: its buying stage and context."""

    id: str
    name: str
    buying_stage: str | None
    closed: bool = False
    industry: str | None = None
    personas: tuple[str, ...] = ()
    topics: tuple[str, ...] = ()


@dataclass(frozen=True)
class SentFacts:
    """An asset already shared to this deal, and whether the buyer opened it."""

    asset_id: str
    series: str | None = None
    series_order: int | None = None
    opened: bool = False


@dataclass(frozen=True)
class _Prepared:
    """An asset with the parts of its score that do not depend on the deal."""

    asset: AssetFacts
    components: dict
    reasons: tuple[str, ...]
    little_evidence: bool
    fixed: float  # weighted evidence + engagement + freshness + voice
    tags: dict  # dimension -> tuple of tag keys
    text: str  # processed title + summary, for fuzzy matching


@dataclass
class StageIndex:
    """Everything about the live assets that does not depend on the deal, per buying stage."""

    by_stage: dict[str, list[_Prepared]] = field(default_factory=dict)
    by_id: dict[str, _Prepared] = field(default_factory=dict)
    series: dict[str, list[tuple[int, str]]] = field(default_factory=dict)
    # Memo: (stage, dimension, term) -> how well that deal term fits each asset of the stage.
    # Deal industries, personas and topics come from small vocabularies, so this stays small.
    term_columns: dict = field(default_factory=dict)

    def fixed_column(self, stage: str):
        """The deal-independent score part of each asset of the stage, as an array."""
        key = ("fixed", stage)
        if key not in self.term_columns:
            import numpy as np  # NOTE: loaded on first ranking, so starting the CLI does not pay for it

            self.term_columns[key] = np.array(
                [p.fixed for p in self.by_stage.get(stage, ())], dtype=float
            )
        return self.term_columns[key]

    def name_reach(self, stage: str, name: str):
        """Which assets of the stage the deal's (processed) name can match at all, as a mask.

        token_set_ratio reaches FUZZY_FLOOR (70) only when the two texts share a word, or when
        the shorter is at least 0.54 of the longer (its ratio is at most 2*short/(short+long));
        so only those assets get the name's share in their bound.
        """
        import numpy as np

        key = ("words", stage)
        if key not in self.term_columns:
            words: dict[str, list[int]] = {}
            for i, p in enumerate(self.by_stage.get(stage, ())):
                for word in set(p.text.split()):
                    words.setdefault(word, []).append(i)
            lengths = np.array([len(p.text) for p in self.by_stage.get(stage, ())], dtype=float)
            self.term_columns[key] = ({w: np.array(ix) for w, ix in words.items()}, lengths)
        words, lengths = self.term_columns[key]
        reach = lengths <= 2 * len(name) + 2
        for word in set(name.split()):
            hits = words.get(word)
            if hits is not None:
                reach[hits] = True
        return reach

    def term_column(self, stage: str, dimension: str, term: str):
        """How well one deal term fits each asset of the stage (0..1), computed once per term."""
        key = (stage, dimension, term)
        column = self.term_columns.get(key)
        if column is None:
            import numpy as np

            if len(self.term_columns) > MAX_TERM_COLUMNS:
                self.term_columns.clear()  # NOTE: a crude bound; terms are few in practice
            prepared = self.by_stage.get(stage, ())
            column = np.fromiter(
                (_best(term, p.tags[dimension], p.text) for p in prepared),
                dtype=float,
                count=len(prepared),
            )
            self.term_columns[key] = column
        return column


def in_holdout(deal_id: str, fraction: float) -> bool:
    """True when the deal belongs to the holdout: a stable hash of its id falls below fraction."""
    if fraction <= 0:
        return False
    digest = hashlib.sha256(f"holdout:{deal_id}".encode()).digest()
    # 53 bits: uniform in [0, 1) and exactly representable as a float.
    return int.from_bytes(digest[:8], "big") >> 11 < fraction * (1 << 53)


def is_named_author(author: str | None) -> bool:
    """True when the author reads as a person's name (two or more words, not an organisation)."""
    words = [w.strip(".,").lower() for w in (author or "").split()]
    words = [w for w in words if w]
    return (
        len(words) >= 2
        and not any(w in _ORGANISATION_WORDS for w in words)
        and all(any(c.isalpha() for c in w) for w in words)
    )


def adjacent_stages(stage: str) -> tuple[str, ...]:
    """The buying stages next to this one (earlier first)."""
    i = BUYING_STAGES.index(stage)
    return tuple(BUYING_STAGES[j] for j in (i - 1, i + 1) if 0 <= j < len(BUYING_STAGES))


def _evidence(effect: Mapping | None, stage: str) -> tuple[float, bool, str | None]:
    """Evidence component (0.5 = neutral), whether evidence is thin, and a reason."""
    if not effect or effect.get("verdict") in (None, "insufficient_data"):
        return 0.5, True, None
    hr, low, high = effect.get("hazard_ratio"), effect.get("ci_low"), effect.get("ci_high")
    if not hr or hr <= 0:
        return 0.5, True, None
    if low and high and low > 0 and high > low:
        se = (math.log(high) - math.log(low)) / (2 * 1.959964)
    else:
        se = 1.0  # no interval: treat as very uncertain
    weight = EFFECT_PRIOR_SD**2 / (EFFECT_PRIOR_SD**2 + se**2)
    shrunk = math.log(hr) * weight
    value = 0.5 + 0.5 * math.tanh(shrunk / math.log(2))
    interval = f" (95% CI {low:.2f}-{high:.2f})" if low and high else ""
    if effect.get("verdict") == "shortens":
        text = f"deals that got it left {stage} forward {hr:.2f}x as fast{interval}"
    elif effect.get("verdict") == "lengthens":
        text = f"deals that got it left {stage} slower ({hr:.2f}x){interval}"
    else:
        text = f"no clear effect measured in {stage} (hazard ratio {hr:.2f}{interval})"
    return (
        round(value, 4),
        False,
        f"{text}; counted as {math.exp(shrunk):.2f}x after shrinking toward no effect",
    )


def _engagement(asset: AssetFacts) -> tuple[float, str | None]:
    """Share of sends the buyer opened, smoothed toward one half when it was rarely sent."""
    opened = min(max(asset.opened_shares, 0), max(asset.shares, 0))
    value = (opened + 1) / (max(asset.shares, 0) + 2)
    if asset.shares == 0:
        return round(value, 4), None
    return round(
        value, 4
    ), f"buyers opened it {asset.opened_shares} of {asset.shares} times it was sent"


def _freshness(published_at: datetime | None, now: datetime) -> float:
    """1 for a piece published now, halving every year; 0.5 when the date is unknown."""
    if published_at is None:
        return 0.5
    age = max((now - published_at).total_seconds() / 86400.0, 0.0)
    return round(0.5 ** (age / FRESHNESS_HALF_LIFE_DAYS), 4)


def _prepare(asset: AssetFacts, stage: str, effect: Mapping | None, now: datetime) -> _Prepared:
    """The deal-independent components of one asset in one stage."""
    evidence, thin, evidence_reason = _evidence(effect, stage)
    engagement, engagement_reason = _engagement(asset)
    freshness = _freshness(asset.published_at, now)
    named = is_named_author(asset.author)
    voice = 0.0 if asset.pitch_flag else (1.0 if named else 0.3)
    reasons = []
    if named and not asset.pitch_flag:
        reasons.append(f"a named voice: {asset.author}")
    if asset.pitch_flag:
        reasons.append("reads partly like a product pitch (ranked lower)")
    for text in (evidence_reason, engagement_reason):
        if text:
            reasons.append(text)
    components = {
        "evidence": evidence,
        "engagement": engagement,
        "freshness": freshness,
        "voice": voice,
    }
    fixed = sum(WEIGHTS[k] * v for k, v in components.items())
    tags = {
        "industry": tuple(tag_key(t) for t in asset.industries),
        "persona": tuple(tag_key(t) for t in asset.personas),
        "topic": tuple(tag_key(t) for t in asset.topics),
    }
    text = utils.default_process(f"{asset.title} {asset.summary or ''}")
    return _Prepared(asset, components, tuple(reasons), thin, fixed, tags, text)


def prepare_index(
    assets: Iterable[AssetFacts], effects: Mapping[tuple[str, str], Mapping], now: datetime
) -> StageIndex:
    """Index live assets per buying stage, best deal-independent score first (ties by id)."""
    index = StageIndex()
    assets = list(assets)
    for stage in BUYING_STAGES:
        prepared = [
            _prepare(a, stage, effects.get((a.id, stage)), now)
            for a in assets
            if stage in a.stages and not (a.pitch_flag and stage in NO_PITCH_STAGES)
        ]
        prepared.sort(key=lambda p: (-p.fixed, p.asset.id))
        index.by_stage[stage] = prepared
        for p in prepared:
            index.by_id.setdefault(p.asset.id, p)
    for a in assets:
        if a.series and a.series_order is not None:
            index.series.setdefault(tag_key(a.series), []).append((a.series_order, a.id))
    for members in index.series.values():
        members.sort()
    return index


def _best(term: str, candidates: Sequence[str], text: str) -> float:
    """How well one deal term (already a tag key) matches an asset's tags or text, 0..1."""
    if term in candidates:
        return 1.0
    best = max((fuzz.token_set_ratio(term, c) for c in candidates), default=0.0)
    in_text = fuzz.partial_ratio(term, text) * 0.8 if text else 0.0
    best = max(best, in_text)
    return best / 100.0 if best >= FUZZY_FLOOR else 0.0


@functools.lru_cache(maxsize=256)
def _deal_terms(deal: DealFacts) -> tuple[list[tuple[str, str]], float]:
    """The deal's (dimension, term) pairs, each once, and the total weight including the name."""
    terms: list[tuple[str, str]] = []
    if deal.industry and deal.industry.strip():
        terms.append(("industry", tag_key(deal.industry)))
    terms += [("persona", tag_key(x)) for x in deal.personas if x.strip()]
    terms += [("topic", tag_key(x)) for x in deal.topics if x.strip()]
    terms = list(dict.fromkeys(terms))
    return terms, len(terms) + (NAME_WEIGHT if deal.name.strip() else 0.0)


@functools.lru_cache(maxsize=1024)
def _processed(text: str) -> str:
    """rapidfuzz's default processing of a text (memoised: a deal's name is used per candidate)."""
    return utils.default_process(text)


def _context(
    deal: DealFacts, p: _Prepared, term_fits: Sequence[float] | None = None
) -> tuple[float, list[str]]:
    """Fuzzy fit of the deal's industry, personas, topics and name to the asset; matched terms.

    `term_fits` are the per-term fits when already known (the index memoises them per term).
    """
    terms, weight_sum = _deal_terms(deal)
    if not weight_sum:
        return 0.0, []
    total = 0.0
    matched = []
    for n, (dimension, term) in enumerate(terms):
        score = term_fits[n] if term_fits is not None else _best(term, p.tags[dimension], p.text)
        total += score
        if score >= 0.9:
            matched.append(term)
    if deal.name.strip():
        name = fuzz.token_set_ratio(_processed(deal.name), p.text)
        total += (name / 100.0 if name >= FUZZY_FLOOR else 0.0) * NAME_WEIGHT
    return round(total / weight_sum, 4), matched


def _series_next(index: StageIndex, sent: Sequence[SentFacts]) -> dict[str, str]:
    """asset id -> series name, for the next unsent piece of every series the buyer opened."""
    sent_ids = {s.asset_id for s in sent}
    opened: dict[str, int] = {}
    for s in sent:
        if s.opened and s.series and s.series_order is not None:
            key = tag_key(s.series)
            opened[key] = max(opened.get(key, s.series_order), s.series_order)
    nxt = {}
    for key, order in opened.items():
        for member_order, asset_id in index.series.get(key, ()):
            if member_order > order and asset_id not in sent_ids:
                nxt[asset_id] = next(
                    s.series for s in sent if s.series and tag_key(s.series) == key
                )
                break
    return nxt


@dataclass
class _Scored:
    """A candidate's score; its answer item is built only if it is shown."""

    score: float
    tier: int  # 0: the deal's stage (or a series' next piece), 1: adjacent-stage fallback
    little_evidence: bool
    prepared: _Prepared
    components: dict
    matched: list[str]
    series: str | None
    fallback_of: str | None

    @property
    def asset_id(self) -> str:
        """The candidate asset's id."""
        return self.prepared.asset.id

    def item(self, deal: DealFacts) -> dict:
        """The answer item: asset, score, components and plain-language reasons."""
        p = self.prepared
        reasons = []
        if self.components["stage"] == 1.0:
            reasons.append(f"made for the {deal.buying_stage} stage, where this deal is now")
        elif self.fallback_of:
            near = adjacent_stages(deal.buying_stage)
            made_for = ", ".join(s for s in p.asset.stages if s in near) or "another stage"
            reasons.append(
                f"made for {made_for}, next to {deal.buying_stage}: offered because too few "
                f"{deal.buying_stage} pieces are left for this deal"
            )
        if self.series:
            reasons.append(f"next piece of the series '{self.series}', which the buyer opened")
        if self.matched:
            reasons.append("fits the deal's " + ", ".join(self.matched))
        reasons.extend(p.reasons)
        asset = p.asset
        return {
            "asset": {
                "id": asset.id,
                "title": asset.title,
                "url": asset.url,
                "kind": asset.kind,
                "author": asset.author,
            },
            "score": self.score,
            "components": dict(self.components),
            "reasons": reasons,
            "exploration": False,
        }


def _score(
    deal: DealFacts,
    p: _Prepared,
    stage_fit: float,
    tier: int,
    series: str | None,
    fallback_of: str | None,
    term_fits: Sequence[float] | None = None,
) -> _Scored:
    """The full score and components of one candidate for this deal."""
    context, matched = _context(deal, p, term_fits)
    novelty = 1.0 if series else 0.5
    components = {"stage": stage_fit, "context": context, "novelty": novelty, **p.components}
    score = p.fixed + WEIGHTS["stage"] * stage_fit + WEIGHTS["context"] * context
    score += WEIGHTS["novelty"] * novelty
    score = round(min(max(score, 0.0), 1.0), 4)
    return _Scored(score, tier, p.little_evidence, p, components, matched, series, fallback_of)


def rank_for_deal(
    deal: DealFacts, index: StageIndex, sent: Sequence[SentFacts], limit: int
) -> list[dict]:
    """The top `limit` items for an open deal in a buying stage (see module doc for the rules)."""
    stage = deal.buying_stage
    if stage not in BUYING_STAGES or limit < 1:
        return []
    sent_ids = {s.asset_id for s in sent}
    explore = limit // EXPLORATION_EVERY
    want = limit + explore
    series_next = _series_next(index, sent)
    scored: dict[str, _Scored] = {}
    for asset_id, series in sorted(series_next.items()):
        p = index.by_id.get(asset_id)
        if p is None or (p.asset.pitch_flag and stage in NO_PITCH_STAGES):
            continue
        fit = (
            1.0
            if stage in p.asset.stages
            else (0.5 if set(p.asset.stages) & set(adjacent_stages(stage)) else 0.0)
        )
        scored[asset_id] = _score(deal, p, fit, 0, series, stage if fit < 1.0 else None)
    _bounded(deal, index, stage, 1.0, 0, scored, want, explore, sent_ids, None)
    if sum(1 for s in scored.values() if s.tier == 0) < limit:
        for other in adjacent_stages(stage):
            _bounded(deal, index, other, 0.5, 1, scored, want, explore, sent_ids, stage)
    ranked = sorted(scored.values(), key=lambda s: (s.tier, -s.score, s.asset_id))
    return _with_exploration(deal, ranked, limit, explore)


def _bounded(
    deal: DealFacts,
    index: StageIndex,
    stage: str,
    stage_fit: float,
    tier: int,
    scored: dict[str, _Scored],
    want: int,
    explore: int,
    sent_ids: set[str],
    fallback_of: str | None,
) -> None:
    """Score a stage's assets best bound first, stopping once no later one can enter the top `want`.

    The bound of an asset is exact but for the deal's name: its deal-independent part, the
    stage fit, its fit to the deal's terms (memoised per term) and the most the name can add.
    """
    import numpy as np

    prepared = index.by_stage.get(stage, ())
    if not prepared:
        return
    terms, weight_sum = _deal_terms(deal)
    columns = [index.term_column(stage, dimension, term) for dimension, term in terms]
    fit = np.zeros(len(prepared))
    for column in columns:
        fit += column
    if deal.name.strip():
        fit = fit + NAME_WEIGHT * index.name_reach(stage, _processed(deal.name))
    context_cap = fit / weight_sum if weight_sum else fit
    bound = (
        index.fixed_column(stage)
        + WEIGHTS["stage"] * stage_fit
        + WEIGHTS["context"] * context_cap
        + WEIGHTS["novelty"] * 0.5
        + 1e-4  # NOTE: scores are rounded to 4 places; rounding must never make the bound cut early
    )
    order = _best_first(bound, max(64, 8 * want))
    best: list[float] = []  # min-heap of the `want` best scores so far (all candidates)
    thin: list[float] = []  # the same among candidates with little evidence (exploration pool)
    for i in order:
        full = len(best) >= want and bound[i] < best[0]
        if full and (not explore or (len(thin) >= want and bound[i] < thin[0])):
            break
        p = prepared[i]
        if p.asset.id in scored or p.asset.id in sent_ids:
            continue
        if p.asset.pitch_flag and fallback_of in NO_PITCH_STAGES:
            continue
        s = _score(deal, p, stage_fit, tier, None, fallback_of, [float(c[i]) for c in columns])
        scored[p.asset.id] = s
        _push(best, s.score, want)
        if s.little_evidence:
            _push(thin, s.score, want)


def _best_first(bound, head: int):
    """Indices of `bound`, highest first, ties in index order (a stable sort of -bound), lazily.

    NOTE: the loop that consumes this nearly always stops within the first few dozen, so only
    the `head` best (and every index tied with the last of them) are sorted up front; the rest
    is sorted only if the loop gets that far. The order is exactly the full stable sort's.
    """
    import numpy as np

    n = len(bound)
    if n <= head:
        yield from np.argsort(-bound, kind="stable").tolist()
        return
    threshold = np.partition(bound, n - head)[n - head]  # the head-th largest
    top = np.flatnonzero(bound >= threshold)
    yield from top[np.argsort(-bound[top], kind="stable")].tolist()
    rest = np.flatnonzero(bound < threshold)
    yield from rest[np.argsort(-bound[rest], kind="stable")].tolist()


def _push(heap: list[float], value: float, size: int) -> None:
    """Keep the `size` largest values in a min-heap."""
    if len(heap) < size:
        heapq.heappush(heap, value)
    elif value > heap[0]:
        heapq.heapreplace(heap, value)


def _with_exploration(
    deal: DealFacts, ranked: list[_Scored], limit: int, explore: int
) -> list[dict]:
    """The top items; up to one slot in five goes to a promising piece with little evidence.

    A piece with little evidence that the plain ranking leaves out takes the place of the
    lowest-ranked piece that is there on measured evidence, in the last slot of a five, marked
    `exploration: true`. When the plain top has no piece shown on evidence (no report yet),
    it is all exploration already and stays as ranked.
    """
    plain = ranked[:limit]
    pool = [s for s in ranked[limit:] if s.little_evidence]
    proven = [s for s in plain if not s.little_evidence]
    k = min(explore, len(pool), len(proven))
    dropped = {id(s) for s in proven[len(proven) - k :]} if k else set()
    kept = [s for s in plain if id(s) not in dropped]
    items = [s.item(deal) for s in kept]
    for n, pick in enumerate(pool[:k]):
        item = pick.item(deal)
        item["exploration"] = True
        item["reasons"] = [
            *item["reasons"],
            "exploration: a promising piece with little evidence yet",
        ]
        items.insert(min((n + 1) * EXPLORATION_EVERY - 1, len(items)), item)
    for rank, item in enumerate(items, start=1):
        item["rank"] = rank
    return items


def recommend_assets(
    deal: DealFacts,
    assets: Iterable[AssetFacts],
    sent: Sequence[SentFacts],
    effects: Mapping[tuple[str, str], Mapping],
    now: datetime,
    limit: int = 5,
    holdout_fraction: float = 0.0,
) -> dict:
    """The recommendation answer for a deal: holdout, closed or unmapped stage, or ranked items."""
    return answer_for_deal(deal, prepare_index(assets, effects, now), sent, limit, holdout_fraction)


def answer_for_deal(
    deal: DealFacts,
    index: StageIndex,
    sent: Sequence[SentFacts],
    limit: int,
    holdout_fraction: float,
) -> dict:
    """{holdout, closed, message, items} for a deal, from a prepared index."""
    if deal.closed:
        return {
            "holdout": False,
            "closed": True,
            "message": "this deal is closed: nothing to recommend",
            "items": [],
        }
    if in_holdout(deal.id, holdout_fraction):
        return {
            "holdout": True,
            "closed": False,
            "message": "this deal is in the holdout group that gets no recommendations (it measures the recommender)",
            "items": [],
        }
    if deal.buying_stage not in BUYING_STAGES:
        return {
            "holdout": False,
            "closed": False,
            "message": "the deal's current CRM stage is not mapped to a buying stage; map it with `enablement stage-map set`",
            "items": [],
        }
    items = rank_for_deal(deal, index, sent, limit)
    message = None if items else f"no live asset fits the {deal.buying_stage} stage for this deal"
    return {"holdout": False, "closed": False, "message": message, "items": items}
