"""HubSpot JSON to the product's CRM records (pure functions; the only place that knows HubSpot's shapes)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from enablement.domain.crm import DealRecord, OwnerRecord, PipelineRecord, StageEntry, StageRecord
from enablement.domain.numbers import read_amount
from enablement.domain.timestamps import InvalidTimestamp, in_range

STAGE = "dealstage"


@dataclass(frozen=True)
class DealProperties:
    """Which HubSpot deal properties feed which product attributes."""

    industry: str = "industry"
    personas: str = "personas"
    topics: str = "topics"

    @classmethod
    def from_settings(cls, settings) -> DealProperties:
        """The property names configured by HUBSPOT_INDUSTRY/PERSONAS/TOPICS_PROPERTY."""
        return cls(
            industry=settings.hubspot_industry_property,
            personas=settings.hubspot_personas_property,
            topics=settings.hubspot_topics_property,
        )

    def names(self) -> list[str]:
        """Every property a deal read asks for (current values)."""
        base = [
            "dealname",
            "pipeline",
            STAGE,
            "amount",
            "deal_currency_code",
            "hubspot_owner_id",
            "createdate",
            "closedate",
            "hs_is_closed",
            "hs_lastmodifieddate",
        ]
        extra = [p for p in (self.industry, self.personas, self.topics) if p and p not in base]
        return base + list(dict.fromkeys(extra))


def parse_time(value) -> datetime | None:
    """HubSpot timestamps: ISO 8601 ('...Z') or epoch milliseconds; None when empty or unreadable."""
    if value is None or value == "":
        return None
    text = str(value).strip()
    try:
        if text.isdigit():
            parsed = datetime.fromtimestamp(int(text) / 1000, tz=UTC)
        else:
            parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except (ValueError, OverflowError, OSError):
        return None
    if parsed.tzinfo is None:
        # NOTE: HubSpot date-only values (e.g. closedate set to a day) mean midnight UTC.
        parsed = parsed.replace(tzinfo=UTC)
    try:
        # The product's one range (1970-2100): a moment outside it is unreadable here too.
        return in_range(parsed)
    except InvalidTimestamp:
        return None


def to_millis(moment: datetime) -> int:
    """Epoch milliseconds of an aware datetime (search filters take them)."""
    return int(moment.timestamp() * 1000)


def from_millis(millis: int) -> datetime:
    """The aware UTC datetime of epoch milliseconds."""
    return datetime.fromtimestamp(millis / 1000, tz=UTC)


def _amount(value) -> float | None:
    """A synced amount by the product's one amount rule; one HubSpot cannot mean is left empty."""
    try:
        return read_amount(value)
    except ValueError:
        return None


def _float(value) -> float | None:
    try:
        return float(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def _split(value) -> tuple[str, ...]:
    """A multi-checkbox value ('a;b;c') as a tuple of trimmed parts."""
    return tuple(part.strip() for part in str(value or "").split(";") if part.strip())


def _text(value) -> str | None:
    text = str(value).strip() if value is not None else ""
    return text or None


def _clip(text: str | None, length: int) -> str | None:
    """Text cut to the column's length (HubSpot allows longer values than the product stores)."""
    return text[:length] if text else text


def _currency(value) -> str | None:
    """An ISO 4217 code, or None for anything else."""
    text = _text(value)
    return text.upper() if text and len(text) == 3 and text.isalpha() else None


def pipeline_from_hubspot(data: dict) -> PipelineRecord:
    """A deal pipeline (GET /crm/pipelines/<version>/deals) as a PipelineRecord (won: closed with probability 1)."""
    stages = []
    for stage in data.get("stages") or []:
        meta = stage.get("metadata") or {}
        probability = _float(meta.get("probability"))
        is_closed = str(meta.get("isClosed", "false")).lower() == "true"
        stages.append(
            StageRecord(
                id=str(stage["id"]),
                label=stage.get("label") or str(stage["id"]),
                display_order=int(stage.get("displayOrder") or 0),
                probability=probability,
                is_closed=is_closed,
                is_won=is_closed and probability is not None and probability >= 1.0,
                archived=bool(stage.get("archived", False)),
            )
        )
    return PipelineRecord(
        id=str(data["id"]),
        label=data.get("label") or str(data["id"]),
        stages=tuple(stages),
        display_order=int(data.get("displayOrder") or 0),
        archived=bool(data.get("archived", False)),
    )


def owner_from_hubspot(data: dict) -> OwnerRecord:
    """An owner (GET /crm/owners/<version>) as an OwnerRecord."""
    return OwnerRecord(
        id=str(data["id"]),
        email=_text(data.get("email")),
        first_name=_text(data.get("firstName")),
        last_name=_text(data.get("lastName")),
        archived=bool(data.get("archived", False)),
    )


def stage_history(data: dict, created_at: datetime) -> tuple[StageEntry, ...]:
    """The deal's dealstage history, oldest first, re-entries kept.

    A value set again while the deal was already in that stage is not a new entry, so
    consecutive repeats collapse to the first. Without any history (a deal created by an
    import that HubSpot never versioned), the current stage counts from creation.
    """
    raw = ((data.get("propertiesWithHistory") or {}).get(STAGE)) or []
    points = []
    for item in raw:
        value, moment = _text(item.get("value")), parse_time(item.get("timestamp"))
        if value and moment:
            points.append((moment, value))
    if not points:
        current = _text((data.get("properties") or {}).get(STAGE))
        return (StageEntry(created_at, current),) if current else ()
    points.sort()
    entries: list[StageEntry] = []
    for moment, value in points:
        if entries and entries[-1].stage_id == value:
            continue
        entries.append(StageEntry(moment, value))
    return tuple(entries)


def deal_from_hubspot(data: dict, names: DealProperties) -> DealRecord:
    """A deal object (with propertiesWithHistory) as a DealRecord; archived ones are marked deleted."""
    props = data.get("properties") or {}
    created_at = (
        parse_time(props.get("createdate"))
        or parse_time(data.get("createdAt"))
        or datetime(1970, 1, 1, tzinfo=UTC)
    )
    closed = str(props.get("hs_is_closed") or "").lower() == "true"
    return DealRecord(
        id=str(data["id"]),
        name=_clip(_text(props.get("dealname")), 500) or "",
        pipeline_id=_text(props.get("pipeline")) or "default",
        created_at=created_at,
        stage_history=stage_history(data, created_at),
        amount=_amount(props.get("amount")),
        currency=_currency(props.get("deal_currency_code")),
        industry=_clip(_text(props.get(names.industry)), 255) if names.industry else None,
        owner_id=_text(props.get("hubspot_owner_id")),
        closed_at=parse_time(props.get("closedate")) if closed else None,
        personas=_split(props.get(names.personas)) if names.personas else (),
        topics=_split(props.get(names.topics)) if names.topics else (),
        source_modified_at=parse_time(props.get("hs_lastmodifieddate"))
        or parse_time(data.get("updatedAt")),
        deleted=bool(data.get("archived", False)),
    )
