"""The demo's fixed world: pipelines and their stages, reps, authors, industries, personas, topics."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from enablement.domain.crm import OwnerRecord, PipelineRecord, StageRecord

PRODUCT_NAMES: tuple[str, ...] = ("Northwind Pulse", "Pulse Forecaster")

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


@dataclass(frozen=True)
class DemoPipeline:
    """A demo pipeline: its id, label and stages in display order."""

    id: str
    label: str
    stages: tuple[DemoStage, ...]

    def record(self, display_order: int) -> PipelineRecord:
        """The pipeline as the CRM record the demo loads."""
        return PipelineRecord(
            id=self.id,
            label=self.label,
            display_order=display_order,
            stages=tuple(
                StageRecord(
                    id=s.id,
                    label=s.label,
                    display_order=i,
                    probability=s.probability,
                    is_closed=s.is_closed,
                    is_won=s.is_won,
                )
                for i, s in enumerate(self.stages)
            ),
        )


DEFAULT_PIPELINE = DemoPipeline(
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
ENTERPRISE_PIPELINE = DemoPipeline(
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


class Rep(NamedTuple):
    """A demo rep (a CRM owner) and how much they share relative to the team."""

    id: str
    first_name: str
    last_name: str
    share_propensity: float

    def owner_record(self) -> OwnerRecord:
        """The rep as the CRM owner the demo loads."""
        email = f"{self.first_name.lower()}.{self.last_name.lower()}@northwind.example"
        return OwnerRecord(self.id, email, self.first_name, self.last_name)


REPS: tuple[Rep, ...] = (
    Rep("90210001", "Alex", "Morgan", 1.6),
    Rep("90210002", "Brianna", "Cole", 1.3),
    Rep("90210003", "Carlos", "Mendes", 1.2),
    Rep("90210004", "Dana", "Whitfield", 1.0),
    Rep("90210005", "Emeka", "Obi", 1.0),
    Rep("90210006", "Fiona", "Gallagher", 0.8),
    Rep("90210007", "Gustav", "Berg", 0.5),
    Rep("90210008", "Hannah", "Kim", 0.15),
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

COMPANY_ROOTS = (
    "Acme", "Bluefin", "Cobalt", "Driftwood", "Ember", "Fairhaven", "Granite", "Harbor",
    "Ironbridge", "Juniper", "Keystone", "Lumen", "Meridian", "Northgate", "Oakridge",
    "Pinecrest", "Quarry", "Redwood", "Silverline", "Tidewater", "Upland", "Vantage",
    "Westbrook", "Yellowstone", "Zephyr", "Alder", "Beacon", "Cedar", "Delta", "Evergreen",
    "Foxglove", "Halcyon", "Kestrel", "Larkspur", "Marlowe", "Nimbus", "Orchard", "Sterling",
    "Summit", "Thornbury",
)  # fmt: skip
COMPANY_SUFFIXES = {
    "software": ("Software", "Labs", "Systems", "Cloud"),
    "manufacturing": ("Industries", "Manufacturing", "Components", "Works"),
    "healthcare": ("Health", "Medical", "Clinics", "Care"),
    "financial services": ("Bank", "Capital", "Insurance", "Financial"),
    "retail": ("Retail", "Stores", "Foods", "Outfitters"),
    "logistics": ("Logistics", "Freight", "Shipping", "Transport"),
    "public sector": ("County Council", "Transit Authority", "Water Board", "City Council"),
}
INITIATIVES = (
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
TOPICS_BY_INDUSTRY: dict[str, tuple[str, ...]] = {
    "software": ("revenue forecasting", "pipeline hygiene", "ai governance", "customer retention"),
    "manufacturing": ("supply chain resilience", "operational efficiency", "data quality"),
    "healthcare": ("security and compliance", "data quality", "change management"),
    "financial services": ("security and compliance", "ai governance", "revenue forecasting"),
    "retail": ("customer retention", "supply chain resilience", "cloud cost control"),
    "logistics": ("supply chain resilience", "operational efficiency", "cloud cost control"),
    "public sector": ("procurement modernisation", "security and compliance", "change management"),
}


def buying_stage_of(pipeline_id: str, stage_id: str) -> str | None:
    """The buying stage the demo simulation gives a demo CRM stage (None: closed or unknown)."""
    for pipeline in PIPELINES:
        if pipeline.id == pipeline_id:
            for stage in pipeline.stages:
                if stage.id == stage_id:
                    return stage.buying_stage
    return None
