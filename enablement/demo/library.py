"""The demo's asset library: titles, summaries and texts, special pieces and the planted effects.

Deterministic for a given `random.Random` and `now`. Roles say what a piece is there for:
general, pitch (product positioning), series, planted (a true effect), confounded (no effect,
sent mostly to small deals), shelfware (never shared), unopened (shared, never opened),
and draft, retired, stale, untagged.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from enablement.demo.world import (
    AUTHORS,
    CLOSING_NEVER_FOR,
    EVALUATION_NEVER_IN,
    INDUSTRIES,
    PERSONAS,
    TOPICS,
)

_PERSONA_PLURAL = {
    "cfo": "CFOs",
    "cio": "CIOs",
    "head of sales": "heads of sales",
    "operations": "operations leaders",
    "procurement": "procurement teams",
    "it security": "security leaders",
}
_PERSONA_ONE = {
    "cfo": "CFO",
    "cio": "CIO",
    "head of sales": "head of sales",
    "operations": "operations leader",
    "procurement": "procurement lead",
    "it security": "CISO",
}


_TITLES = {
    "awareness": (
        "What most {topic} programmes get wrong",
        "{Topic} is a leadership problem, not a tooling problem",
        "Earned, not published: rethinking {topic}",
        "The quiet shift in {topic} that {personas} keep missing",
        "Why {industry} needs a point of view on {topic}",
        "Heretics welcome: an unpopular opinion on {topic}",
        "Five signals that {topic} is about to change in {industry}",
        "Effort is not a result: measuring {topic} honestly",
    ),
    "interest": (
        "A practical guide to {topic} for {personas}",
        "{Topic} in {industry}: what the leaders do differently",
        "The {topic} benchmark: how {industry} compares",
        "Beyond the buzzword: making {topic} measurable",
        "Questions every {persona} should ask about {topic}",
        "From insight to action: {topic} for {personas}",
    ),
    "evaluation": (
        "How to judge {topic} vendors: a framework for {personas}",
        "The {topic} roadmap: sequencing the first twelve months",
        "Build, buy or partner? Deciding on {topic}",
        "Proof, not promises: running a fair {topic} pilot",
        "A scorecard for {topic} in {industry}",
    ),
    "closing": (
        "The cost of waiting on {topic} in {industry}",
        "How a {industry} team made {topic} stick",
        "Before you sign: a {topic} readiness checklist for {personas}",
        "Overcoming the last hesitation on {topic}",
    ),
}
_STAGE_KINDS = {
    "awareness": ("article", "article", "podcast", "video", "report"),
    "interest": ("whitepaper", "webinar", "article", "report", "podcast"),
    "evaluation": ("framework", "roadmap", "case_study", "webinar", "whitepaper"),
    "closing": ("case_study", "roadmap", "framework", "article"),
}
_SUMMARIES = (
    "{author} argues that {topic} is earned through engagement, not output, and shows {personas} where to start.",
    "A point of view on {topic} for {personas}: what is wrong in the market and what people are missing.",
    "{author} strips {topic} back to the decisions it should change, with examples from {industry}.",
    "Why {topic} matters at this stage of the buying journey, and how {personas} can tell real insight from filler.",
    "Lessons on {topic} from teams that changed minds instead of counting clicks.",
)
_BODY = (
    "Thought leadership is earned, not published: an idea nobody debates is a thought with no leadership.",
    "Effort is not a result, and a count of pieces produced says nothing about minds changed.",
    "Ideas and opinions start conversations; descriptions of what a vendor sells rarely do.",
    "The strongest teams ask what is wrong in the market and what people are missing.",
    "Buyers value material that helps them evaluate a decision, not material that makes it for them.",
    "Insight manifests through a person with a name and a track record, not through a logo.",
    "Heretics often see the leading edge first; their wisdom only shows over time.",
    "Community matters: people return to a series whose story they feel part of.",
    "A timely reminder at the right moment overcomes more hesitation than another brochure.",
    "Frameworks for judging options are scarce, so the few good ones travel far.",
)
_PITCH_TITLES = (
    "Northwind Pulse: every feature your revenue team needs",
    "Why our platform beats the alternatives on price",
    "Pulse Forecaster pricing and packaging explained",
    "See our platform in action: book a demo",
    "What is new in Northwind Pulse this quarter",
    "Our solution for {industry}: features and licence options",
)
_PITCH_BODY = (
    "Our platform integrates with your CRM in minutes.",
    "Northwind Pulse ships with a forecasting dashboard out of the box.",
    "Pricing starts per user per month, with a discount for an annual subscription.",
    "Request a demo to see every feature in action.",
    "Onboarding takes less than a week with our solution.",
    "Pulse Forecaster is included in the premium licence.",
    "Start a free trial today and upgrade when you are ready.",
)
SERIES_NAME = "Earned, Not Published - Season 1"
_SERIES = (
    ("Why nobody reads your thought leadership", "awareness"),
    ("Personal, not corporate", "awareness"),
    ("Point of view before product", "interest"),
    ("Heretics and the leading edge", "interest"),
    ("Fandom, community and belonging in B2B", "evaluation"),
    ("Making it matter at the close", "closing"),
)


@dataclass(frozen=True)
class DemoAsset:
    """An asset of the demo library (tags lower-case; stages are buying stages)."""

    id: str
    title: str
    url: str
    kind: str
    author: str
    summary: str
    body: str
    topics: tuple[str, ...]
    industries: tuple[str, ...]
    personas: tuple[str, ...]
    stages: tuple[str, ...]
    status: str = "approved"
    published_at: datetime | None = None
    review_by: date | None = None
    retired_at: datetime | None = None
    series: str | None = None
    series_order: int | None = None
    role: str = "general"  # general, pitch, series, planted, confounded, shelfware, unopened


@dataclass(frozen=True)
class PlantedEffect:
    """A true effect built into the simulation: hazard ratio of moving forward after a share."""

    asset_id: str
    buying_stage: str
    hazard_ratio: float
    note: str


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:80]


def _ordinal(n: int) -> str:
    """2nd, 3rd, 4th, 11th, 21st ..."""
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


# "a" before a vowel sound becomes "an" ("an operational ..."); "u" words like "unified"
# and "user" start with a consonant sound and keep "a".
_ARTICLE = re.compile(r"\b([Aa]) (?=[aeioAEIO]|[uU](?!ni|s[eu]))")


def _fill(template: str, topic: str, persona: str, industry: str, author: str = "") -> str:
    topic = re.sub(r"\bai\b", "AI", topic)
    text = template.format(
        topic=topic,
        Topic=topic[:1].upper() + topic[1:],
        personas=_PERSONA_PLURAL[persona],
        persona=_PERSONA_ONE[persona],
        industry=industry,
        author=author,
    )
    text = _ARTICLE.sub(lambda m: f"{m.group(1)}n ", text)
    return text[:1].upper() + text[1:]


def _personas_for(rng: random.Random, stage: str, k: int) -> tuple[str, ...]:
    pool = [p for p in PERSONAS if stage != "closing" or p not in CLOSING_NEVER_FOR]
    return tuple(sorted(rng.sample(pool, k)))


def _industries_for(rng: random.Random, stages: tuple[str, ...]) -> tuple[str, ...]:
    pool = [i for i in INDUSTRIES if "evaluation" not in stages or i not in EVALUATION_NEVER_IN]
    k = rng.choice((0, 0, 1, 1, 1, 2))
    return tuple(sorted(rng.sample(pool, k)))


def _primary_stage(rng: random.Random) -> str:
    # Skewed on purpose: most content is early-stage, evaluation and closing are thin.
    return rng.choices(("awareness", "interest", "evaluation", "closing"), (45, 35, 14, 6))[0]


class _Library:
    """Collects assets with unique ids, titles and URLs."""

    def __init__(self, rng: random.Random, now: datetime):
        self.rng, self.now, self.items, self.titles = rng, now, [], set()

    def title(self, templates, topic, persona, industry) -> str:
        for _ in range(12):
            text = _fill(self.rng.choice(templates), topic, persona, industry)
            if text not in self.titles:
                return text
        # NOTE: a later edition reads like a real title; the differing number keeps the
        # near-duplicate check from flagging it (titles whose numbers differ do not count).
        edition = 2
        while f"{text} ({_ordinal(edition)} edition)" in self.titles:
            edition += 1
        return f"{text} ({_ordinal(edition)} edition)"

    def add(self, **fields) -> DemoAsset:
        asset_id = f"demo-{len(self.items) + 1:04d}"
        fields.setdefault("published_at", self.published(30, 1000))
        fields.setdefault("review_by", self.review_by())
        asset = DemoAsset(
            id=asset_id,
            url=f"https://insights.northwind.example/{fields['kind']}s/{_slug(fields['title'])}-{len(self.items) + 1}",
            **fields,
        )
        self.titles.add(asset.title)
        self.items.append(asset)
        return asset

    def published(self, min_days: int, max_days: int) -> datetime:
        days = self.rng.uniform(min_days, max_days)
        return (self.now - timedelta(days=days)).replace(microsecond=0)

    def review_by(self) -> date | None:
        if self.rng.random() < 0.15:
            return None
        return self.now.date() + timedelta(days=self.rng.randint(30, 420))


def build_library(
    rng: random.Random, now: datetime, n: int
) -> tuple[tuple[DemoAsset, ...], tuple[PlantedEffect, ...]]:
    """n assets (the planted ones and the series first) and the effects planted in them."""
    lib = _Library(rng, now)
    planted = _planted_assets(lib)
    _series(lib)
    count = {
        "pitch": max(2, n * 4 // 100),
        "draft": max(1, n * 3 // 100),
        "retired": max(1, n * 4 // 100),
        "stale": max(2, n * 7 // 100),
        "untagged": max(1, n // 100),
        "shelfware": max(1, n * 7 // 100),
        "unopened": max(1, n * 2 // 100),
    }
    for _ in range(count["pitch"]):
        _pitch(lib)
    remaining = n - len(lib.items)
    roles = [
        r
        for r in ("draft", "retired", "stale", "untagged", "shelfware", "unopened")
        for _ in range(count[r])
    ]
    roles = roles[: max(0, remaining)]
    roles += ["general"] * (remaining - len(roles))
    rng.shuffle(roles)
    for role in roles:
        _general(lib, role)
    return tuple(lib.items[:n]), planted


def _general(lib: _Library, role: str) -> None:
    rng = lib.rng
    stage = _primary_stage(rng)
    stages = (stage,)
    if stage in ("awareness", "interest") and rng.random() < 0.2:
        stages = ("awareness", "interest")
    elif stage == "evaluation" and rng.random() < 0.2:
        stages = ("interest", "evaluation")
    topic = rng.choice(TOPICS)
    personas = _personas_for(
        rng, "closing" if "closing" in stages else stage, rng.choice((1, 1, 2))
    )
    industries = _industries_for(rng, stages)
    industry = industries[0] if industries else "every industry"
    author = rng.choice(AUTHORS)
    topics = (topic,) if rng.random() < 0.6 else tuple(sorted({topic, rng.choice(TOPICS)}))
    fields = dict(
        title=lib.title(_TITLES[stage], topic, personas[0], industry),
        kind=rng.choice(_STAGE_KINDS[stage]),
        author=author,
        summary=_fill(rng.choice(_SUMMARIES), topic, personas[0], industry, author.split()[0]),
        body=" ".join(rng.sample(_BODY, 4)),
        topics=topics,
        industries=industries,
        personas=personas,
        stages=stages,
        role=role,
    )
    if role == "draft":
        fields.update(status="draft", published_at=None)
    elif role == "retired":
        # Published at least 200 days ago and retired 60-180 days later: always in the past.
        published = lib.published(200, 1000)
        fields.update(
            status="retired",
            published_at=published,
            retired_at=published + timedelta(days=rng.uniform(60, 180)),
        )
    elif role == "stale":
        fields.update(
            published_at=lib.published(300, 1000),
            review_by=lib.now.date() - timedelta(days=rng.randint(5, 200)),
        )
    elif role == "untagged":
        fields.update(stages=())
    lib.add(**fields)


def _pitch(lib: _Library) -> None:
    rng = lib.rng
    industry = rng.choice(INDUSTRIES)
    stage = rng.choice(("awareness", "interest", "interest", "evaluation"))
    template = _PITCH_TITLES[len([a for a in lib.items if a.role == "pitch"]) % len(_PITCH_TITLES)]
    title = _fill(template, "", "cfo", industry)
    if title in lib.titles:
        title = f"{title} ({industry})"
    lib.add(
        title=title,
        kind=rng.choice(("article", "video", "webinar")),
        author=rng.choice(AUTHORS),
        summary="A tour of Northwind Pulse: every feature, pricing per seat and the upgrade path from the free trial.",
        body=" ".join(rng.sample(_PITCH_BODY, 5)),
        topics=(rng.choice(TOPICS),),
        industries=(industry,)
        if stage != "evaluation" or industry not in EVALUATION_NEVER_IN
        else (),
        personas=_personas_for(rng, stage, 2),
        stages=(stage,),
        role="pitch",
    )


def _series(lib: _Library) -> None:
    author = "Maya Okafor"
    for order, (episode, stage) in enumerate(_SERIES, start=1):
        lib.add(
            title=f"Earned, Not Published S1E{order}: {episode}",
            kind="podcast",
            author=author,
            summary=f"Episode {order} of a season on thought leadership that is earned, personal and about a point of view.",
            body=" ".join(lib.rng.sample(_BODY, 4)),
            topics=("buying committees", "change management"),
            industries=(),
            personas=("cfo", "cio", "head of sales"),
            stages=(stage,),
            published_at=(lib.now - timedelta(days=420 - 21 * order)).replace(microsecond=0),
            series=SERIES_NAME,
            series_order=order,
            role="series",
        )


def _planted_assets(lib: _Library) -> tuple[PlantedEffect, ...]:
    specs = (
        (
            "The buying committee has changed: a field guide for heads of sales",
            "whitepaper",
            "interest",
            "buying committees",
            ("head of sales", "cfo"),
            2.2,
            "planted: deals that get it move on from interest about twice as fast",
        ),
        (
            "How to judge revenue forecasting vendors: a framework for CFOs",
            "framework",
            "evaluation",
            "revenue forecasting",
            ("cfo", "cio"),
            1.9,
            "planted: speeds evaluation",
        ),
        (
            "The 40-page data quality maturity model",
            "report",
            "evaluation",
            "data quality",
            ("cio", "operations"),
            0.5,
            "planted: slows evaluation (buyers get lost in it)",
        ),
        (
            "Quick wins in pipeline hygiene",
            "article",
            "interest",
            "pipeline hygiene",
            ("head of sales",),
            1.0,
            "planted: no effect, but reps send it mostly to small (fast) deals",
        ),
    )
    effects = []
    for title, kind, stage, topic, personas, ratio, note in specs:
        asset = lib.add(
            title=title,
            kind=kind,
            author=lib.rng.choice(AUTHORS),
            summary=_fill(_SUMMARIES[1], topic, personas[0], "every industry"),
            body=" ".join(lib.rng.sample(_BODY, 4)),
            topics=(topic,),
            industries=(),
            personas=tuple(sorted(personas)),
            stages=(stage,),
            published_at=lib.published(400, 700),
            review_by=lib.now.date() + timedelta(days=lib.rng.randint(120, 400)),
            role="planted" if ratio != 1.0 else "confounded",
        )
        effects.append(PlantedEffect(asset.id, stage, ratio, note))
    return tuple(effects)
