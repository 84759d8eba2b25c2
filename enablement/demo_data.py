"""A deterministic demo dataset: pipelines, reps, deals with stage histories, assets, shares and views.

Pure: the same seed, sizes and `now` always give the same data. Deals are simulated as
piecewise-constant hazards (an exponential clock per stage), so a share of an asset with
a planted effect multiplies the deal's hazard of moving forward from that moment on:
the later effectiveness report has real effects to find, and most assets have none.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from enablement.domain.crm import DealRecord, OwnerRecord, PipelineRecord, StageEntry, StageRecord

PRODUCT_NAMES: tuple[str, ...] = ("Northwind Pulse", "Pulse Forecaster")
MIN_ASSETS = 20
DAY = 86400.0

INDUSTRIES: tuple[str, ...] = (
    "software",
    "manufacturing",
    "healthcare",
    "financial services",
    "retail",
    "logistics",
    "public sector",
)
PERSONAS: tuple[str, ...] = (
    "cfo",
    "cio",
    "head of sales",
    "operations",
    "procurement",
    "it security",
)
TOPICS: tuple[str, ...] = (
    "revenue forecasting",
    "pipeline hygiene",
    "buying committees",
    "ai governance",
    "data quality",
    "security and compliance",
    "cloud cost control",
    "supply chain resilience",
    "customer retention",
    "change management",
    "procurement modernisation",
    "operational efficiency",
)
# NOTE: coverage gaps are planted on purpose so the coverage report shows them.
CLOSING_NEVER_FOR = ("it security", "operations")
EVALUATION_NEVER_IN = ("public sector",)

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


@dataclass(frozen=True)
class DemoStage:
    """A demo pipeline stage and the buying stage the simulation treats it as."""

    id: str
    label: str
    probability: float
    buying_stage: str | None
    mean_days: float = 0.0
    is_closed: bool = False
    is_won: bool = False


DEFAULT_PIPELINE = (
    "default",
    "Sales Pipeline",
    (
        DemoStage("appointmentscheduled", "Appointment scheduled", 0.2, "interest", 9),
        DemoStage("qualifiedtobuy", "Qualified to buy", 0.4, "interest", 12),
        DemoStage("presentationscheduled", "Presentation scheduled", 0.6, "evaluation", 14),
        DemoStage("decisionmakerboughtin", "Decision maker bought-in", 0.8, "evaluation", 12),
        DemoStage("contractsent", "Contract sent", 0.9, "closing", 10),
        DemoStage("closedwon", "Closed won", 1.0, None, is_closed=True, is_won=True),
        DemoStage("closedlost", "Closed lost", 0.0, None, is_closed=True),
    ),
)
# HubSpot gives custom pipelines and their stages numeric ids.
ENTERPRISE_PIPELINE = (
    "31468712",
    "Enterprise",
    (
        DemoStage("81240101", "Prospecting", 0.05, "awareness", 12),
        DemoStage("81240102", "Discovery call", 0.15, "interest", 10),
        DemoStage("81240103", "Needs analysis", 0.3, "interest", 14),
        DemoStage("81240104", "Demo / proof of concept", 0.5, "evaluation", 18),
        DemoStage("81240105", "Security review", 0.6, "evaluation", 16),
        DemoStage("81240106", "Proposal sent", 0.75, "closing", 12),
        DemoStage("81240107", "Negotiation", 0.9, "closing", 10),
        DemoStage("81240108", "Signed", 1.0, None, is_closed=True, is_won=True),
        DemoStage("81240109", "Lost", 0.0, None, is_closed=True),
    ),
)
PIPELINES = (DEFAULT_PIPELINE, ENTERPRISE_PIPELINE)

# (id, first, last, how much this rep shares relative to the team)
REPS: tuple[tuple[str, str, str, float], ...] = (
    ("90210001", "Alex", "Morgan", 1.6),
    ("90210002", "Brianna", "Cole", 1.3),
    ("90210003", "Carlos", "Mendes", 1.2),
    ("90210004", "Dana", "Whitfield", 1.0),
    ("90210005", "Emeka", "Obi", 1.0),
    ("90210006", "Fiona", "Gallagher", 0.8),
    ("90210007", "Gustav", "Berg", 0.5),
    ("90210008", "Hannah", "Kim", 0.15),
)
AUTHORS: tuple[str, ...] = (
    "Maya Okafor",
    "Daniel Reyes",
    "Priya Natarajan",
    "Tom Lindqvist",
    "Aisha Rahman",
    "Jonas Weber",
    "Elena Petrova",
    "Marcus Chen",
    "Sofia Alvarez",
    "Liam O'Connell",
    "Grace Mbeki",
    "Kenji Sato",
)

_COMPANY_ROOTS = (
    "Acme", "Bluefin", "Cobalt", "Driftwood", "Ember", "Fairhaven", "Granite", "Harbor",
    "Ironbridge", "Juniper", "Keystone", "Lumen", "Meridian", "Northgate", "Oakridge",
    "Pinecrest", "Quarry", "Redwood", "Silverline", "Tidewater", "Upland", "Vantage",
    "Westbrook", "Yellowstone", "Zephyr", "Alder", "Beacon", "Cedar", "Delta", "Evergreen",
    "Foxglove", "Halcyon", "Kestrel", "Larkspur", "Marlowe", "Nimbus", "Orchard", "Sterling",
    "Summit", "Thornbury",
)  # fmt: skip
_COMPANY_SUFFIXES = {
    "software": ("Software", "Labs", "Systems", "Cloud"),
    "manufacturing": ("Industries", "Manufacturing", "Components", "Works"),
    "healthcare": ("Health", "Medical", "Clinics", "Care"),
    "financial services": ("Bank", "Capital", "Insurance", "Financial"),
    "retail": ("Retail", "Stores", "Foods", "Outfitters"),
    "logistics": ("Logistics", "Freight", "Shipping", "Transport"),
    "public sector": ("County Council", "Transit Authority", "Water Board", "City Council"),
}
_INITIATIVES = (
    "Forecasting rollout",
    "Revenue intelligence pilot",
    "Enterprise expansion",
    "Renewal 2027",
    "Data quality programme",
    "EMEA expansion",
    "Board reporting refresh",
    "Supply chain visibility",
    "Retention initiative",
    "Sales operations overhaul",
    "AI governance review",
    "Cloud cost programme",
    "New business unit",
    "Regional rollout",
)

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
_CHANNELS = ("email", "email", "email", "linkedin", "meeting follow-up")


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
class DemoShare:
    """An asset shared to a deal by its owner, with the buyer's views of the link."""

    deal_id: str
    asset_id: str
    shared_at: datetime
    shared_by: str
    channel: str
    viewed_at: tuple[datetime, ...] = ()


@dataclass(frozen=True)
class PlantedEffect:
    """A true effect built into the simulation: hazard ratio of moving forward after a share."""

    asset_id: str
    buying_stage: str
    hazard_ratio: float
    note: str


@dataclass(frozen=True)
class DemoData:
    """Everything the demo loads."""

    pipelines: tuple[PipelineRecord, ...]
    owners: tuple[OwnerRecord, ...]
    deals: tuple[DealRecord, ...]
    assets: tuple[DemoAsset, ...]
    shares: tuple[DemoShare, ...]
    planted: tuple[PlantedEffect, ...]
    product_names: tuple[str, ...] = PRODUCT_NAMES


def generate_demo(now: datetime, seed: int = 42, deals: int = 2000, assets: int = 300) -> DemoData:
    """Build the demo dataset ending at `now` (aware); same arguments, same data."""
    if now.tzinfo is None:
        raise ValueError("now must be an aware datetime")
    if assets < MIN_ASSETS:
        raise ValueError(f"the demo needs at least {MIN_ASSETS} assets")
    if deals < 1:
        raise ValueError("the demo needs at least one deal")
    now = now.astimezone(UTC).replace(microsecond=0)
    rng = random.Random(seed)
    library, planted = _assets(rng, now, assets)
    deal_records, shares = _deals(rng, now, deals, library, planted)
    return DemoData(
        pipelines=tuple(_pipeline_record(p) for p in PIPELINES),
        owners=tuple(
            OwnerRecord(rid, f"{first.lower()}.{last.lower()}@northwind.example", first, last)
            for rid, first, last, _ in REPS
        ),
        deals=deal_records,
        assets=library,
        shares=shares,
        planted=planted,
    )


def buying_stage_of(pipeline_id: str, stage_id: str) -> str | None:
    """The buying stage the demo simulation gives a demo CRM stage (None: closed or unknown)."""
    for pid, _, stages in PIPELINES:
        if pid == pipeline_id:
            for stage in stages:
                if stage.id == stage_id:
                    return stage.buying_stage
    return None


def _pipeline_record(pipeline) -> PipelineRecord:
    pid, label, stages = pipeline
    return PipelineRecord(
        id=pid,
        label=label,
        display_order=0 if pid == "default" else 1,
        stages=tuple(
            StageRecord(
                id=s.id,
                label=s.label,
                display_order=i,
                probability=s.probability,
                is_closed=s.is_closed,
                is_won=s.is_won,
            )
            for i, s in enumerate(stages)
        ),
    )


# ---------------------------------------------------------------- assets


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


def _assets(rng: random.Random, now: datetime, n: int):
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


# ---------------------------------------------------------------- deals


@dataclass
class _Pick:
    """Share-able assets of one buying stage with cumulative weights for random.choices."""

    assets: list[DemoAsset]
    weights: list[float]


def _share_pools(rng: random.Random, library: tuple[DemoAsset, ...]) -> dict[str, list]:
    base: dict[str, float] = {}
    for asset in library:
        if asset.status == "draft" or asset.role == "shelfware" or not asset.stages:
            continue
        weight = rng.lognormvariate(0, 0.7)
        if asset.role in ("planted", "confounded"):
            weight = 9.0
        elif asset.role == "series":
            weight *= 1.5
        base[asset.id] = weight
    pools = {}
    for stage in ("awareness", "interest", "evaluation", "closing"):
        members = [a for a in library if a.id in base and stage in a.stages]
        pools[stage] = (members, [base[a.id] for a in members])
    everything = [a for a in library if a.id in base]
    pools["any"] = (everything, [base[a.id] for a in everything])
    return pools


def _when(start: datetime, days: float) -> datetime:
    return start + timedelta(seconds=round(days * DAY))


def _deals(rng, now, n, library, planted):
    pools = _share_pools(rng, library)
    effects = {p.asset_id: (p.buying_stage, p.hazard_ratio) for p in planted}
    confounded = {p.asset_id for p in planted if p.hazard_ratio == 1.0}
    open_rate = {a.id: (0.0 if a.role == "unopened" else rng.uniform(0.45, 0.95)) for a in library}
    by_position = {(a.series, a.series_order): a for a in library if a.series}
    series_next = {
        a.id: by_position[(a.series, a.series_order + 1)]
        for a in library
        if a.series and (a.series, a.series_order + 1) in by_position
    }
    companies = _companies(rng, max(40, n // 3))
    records, shares = [], []
    for i in range(n):
        record, deal_shares = _deal(
            rng, now, i, companies, pools, effects, confounded, open_rate, series_next
        )
        records.append(record)
        shares.extend(deal_shares)
    return tuple(records), tuple(shares)


def _companies(rng: random.Random, n: int) -> list[tuple[str, str]]:
    """Distinct company names with their industry (a company may have several deals)."""
    found: dict[str, str] = {}
    for _ in range(n * 5):
        if len(found) >= n:
            break
        industry = rng.choice(INDUSTRIES)
        found.setdefault(
            f"{rng.choice(_COMPANY_ROOTS)} {rng.choice(_COMPANY_SUFFIXES[industry])}", industry
        )
    return list(found.items())


def _deal(rng, now, i, companies, pools, effects, confounded, open_rate, series_next):
    deal_id = str(18_000_000_001 + i)
    pipeline_id, _, all_stages = PIPELINES[0] if rng.random() < 0.7 else PIPELINES[1]
    open_stages = [s for s in all_stages if not s.is_closed]
    won = next(s for s in all_stages if s.is_won)
    lost = next(s for s in all_stages if s.is_closed and not s.is_won)
    company, industry = rng.choice(companies)
    rep = rng.choices(REPS, (3, 3, 3, 3, 3, 3, 2, 2))[0]
    median = 25000.0 if pipeline_id == "default" else 90000.0
    amount = round(median * rng.lognormvariate(0, 0.9), -2) or 100.0
    small = amount < median
    created = now - timedelta(days=rng.uniform(1, 365), seconds=rng.randint(0, 86399))
    created = created.replace(microsecond=0)
    personas = tuple(sorted(rng.sample(PERSONAS, rng.choice((1, 2, 2, 3)))))
    topics = tuple(sorted(rng.sample(list(sorted(set(_topics_for(industry)))), rng.choice((1, 2)))))
    speed = (amount / median) ** -0.3 * rng.lognormvariate(0, 0.3)
    share_rate = 0.09 * rep[3] * rng.lognormvariate(0, 0.4)
    horizon = (now - created).total_seconds() / DAY
    idx = 0 if pipeline_id == "default" or rng.random() < 0.6 else 1
    t = 0.0
    history = [(0.0, open_stages[idx].id)]
    shares: list[DemoShare] = []
    sent: set[str] = set()
    engaged_next: list[DemoAsset] = []
    mult, closed_at = 1.0, None
    while True:
        stage = open_stages[idx]
        forward = speed / (stage.mean_days * 1.35)
        lose = 0.005 + 0.0015 * idx
        back = 0.012 if idx > 0 else 0.0
        total = forward * mult + lose + back
        exit_at = t + rng.expovariate(total)
        share_at = t + rng.expovariate(share_rate)
        if min(exit_at, share_at) >= horizon:
            break  # still open at `now`
        if share_at < exit_at:
            t = share_at
            asset = _pick_asset(
                rng, pools, stage.buying_stage, created, t, sent, small, confounded, engaged_next
            )
            if asset is None:
                continue
            sent.add(asset.id)
            when = _when(created, t)
            views = _views(rng, when, now, open_rate[asset.id])
            if views and asset.id in series_next:
                engaged_next.append(series_next[asset.id])
            shares.append(DemoShare(deal_id, asset.id, when, rep[0], rng.choice(_CHANNELS), views))
            effect = effects.get(asset.id)
            if effect and effect[0] == stage.buying_stage:
                mult *= effect[1]
            continue
        t = exit_at
        roll = rng.random() * total
        if roll < forward * mult:
            if idx == len(open_stages) - 1:
                history.append((t, won.id))
                closed_at = t
                break
            step = 2 if rng.random() < 0.1 and idx + 2 < len(open_stages) else 1
            idx += step
        elif roll < forward * mult + lose:
            history.append((t, lost.id))
            closed_at = t
            break
        else:
            idx -= 1
        if open_stages[idx].buying_stage != stage.buying_stage:
            mult = 1.0  # a new buying-stage episode: earlier shares no longer count as exposure
        history.append((t, open_stages[idx].id))
    entries, last = [], None
    for offset, stage_id in history:
        at = _when(created, offset)
        if last is not None and at <= last:
            at = last + timedelta(minutes=1)
        entries.append(StageEntry(at, stage_id))
        last = at
    record = DealRecord(
        id=deal_id,
        name=f"{company} – {rng.choice(_INITIATIVES)}",
        company=company,
        pipeline_id=pipeline_id,
        created_at=created,
        stage_history=tuple(entries),
        amount=amount,
        currency="USD",
        industry=industry,
        owner_id=rep[0],
        closed_at=entries[-1].entered_at if closed_at is not None else None,
        personas=personas,
        topics=topics,
        source_modified_at=entries[-1].entered_at,
    )
    return record, shares


def _topics_for(industry: str) -> tuple[str, ...]:
    by_industry = {
        "software": (
            "revenue forecasting",
            "pipeline hygiene",
            "ai governance",
            "customer retention",
        ),
        "manufacturing": ("supply chain resilience", "operational efficiency", "data quality"),
        "healthcare": ("security and compliance", "data quality", "change management"),
        "financial services": ("security and compliance", "ai governance", "revenue forecasting"),
        "retail": ("customer retention", "supply chain resilience", "cloud cost control"),
        "logistics": ("supply chain resilience", "operational efficiency", "cloud cost control"),
        "public sector": (
            "procurement modernisation",
            "security and compliance",
            "change management",
        ),
    }
    return by_industry[industry] + ("buying committees",)


def _pick_asset(rng, pools, buying_stage, created, t, sent, small, confounded, engaged_next):
    """An asset the rep sends now: usually one made for the stage, sometimes the next series piece."""
    when = _when(created, t)
    if engaged_next and rng.random() < 0.5:
        candidate = engaged_next.pop(0)
        if _available(candidate, when) and candidate.id not in sent:
            return candidate
    key = buying_stage if rng.random() < 0.85 and pools.get(buying_stage, ([],))[0] else "any"
    members, weights = pools[key]
    if not members:
        return None
    for _ in range(4):
        asset = rng.choices(members, weights)[0]
        if asset.id in confounded and not small and rng.random() < 0.85:
            continue  # reps send this one mostly to small deals
        if asset.id not in sent and _available(asset, when):
            return asset
    return None


def _available(asset: DemoAsset, when: datetime) -> bool:
    if asset.published_at is None or asset.published_at > when:
        return False
    return asset.retired_at is None or when < asset.retired_at


def _views(rng, shared_at: datetime, now: datetime, open_rate: float) -> tuple[datetime, ...]:
    if rng.random() >= open_rate:
        return ()
    times, at = [], shared_at
    for _ in range(rng.choice((1, 1, 1, 2, 2, 3))):
        at = at + timedelta(seconds=round(3600 * rng.lognormvariate(1.5, 1.2)) + 30)
        if at > now:
            break
        times.append(at)
    return tuple(times)


def summary_counts(data: DemoData) -> dict[str, int]:
    """Counts for the load report: deals by outcome, assets by status, shares and views."""
    closed_won = {s.id for _, _, stages in PIPELINES for s in stages if s.is_won}
    closed_lost = {
        s.id for _, _, stages in PIPELINES for s in stages if s.is_closed and not s.is_won
    }
    current = [d.stage_history[-1].stage_id for d in data.deals]
    return {
        "deals": len(data.deals),
        "won": sum(s in closed_won for s in current),
        "lost": sum(s in closed_lost for s in current),
        "open": sum(s not in closed_won and s not in closed_lost for s in current),
        "stage_changes": sum(len(d.stage_history) for d in data.deals),
        "assets": len(data.assets),
        "shares": len(data.shares),
        "views": sum(len(s.viewed_at) for s in data.shares),
    }
