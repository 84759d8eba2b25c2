"""CRM records in the product's terms: what a file import, a HubSpot sync or the demo hands to persistence."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


class _Unset:
    """Marks a field that was not given (different from one given as null)."""

    def __repr__(self) -> str:
        return "UNSET"


UNSET = _Unset()


@dataclass(frozen=True)
class StageRecord:
    """A pipeline stage; a given buying_stage (even None) is a confirmed mapping, UNSET is suggested."""

    id: str
    label: str
    display_order: int = 0
    probability: float | None = None
    is_closed: bool = False
    is_won: bool = False
    archived: bool = False
    buying_stage: str | None | _Unset = UNSET


@dataclass(frozen=True)
class PipelineRecord:
    """A pipeline and its stages."""

    id: str
    label: str
    stages: tuple[StageRecord, ...] = ()
    display_order: int = 0
    archived: bool = False


@dataclass(frozen=True)
class OwnerRecord:
    """A CRM user who owns deals."""

    id: str
    email: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    archived: bool = False


@dataclass(frozen=True, order=True)
class StageEntry:
    """The deal entered stage_id at entered_at (pipeline None: the deal's own pipeline)."""

    entered_at: datetime
    stage_id: str
    pipeline_id: str | None = None


@dataclass(frozen=True)
class DealRecord:
    """A deal with its complete stage history (the last entry is the current stage)."""

    id: str
    name: str
    pipeline_id: str
    created_at: datetime
    stage_history: tuple[StageEntry, ...] = ()
    amount: float | None = None
    currency: str | None = None
    industry: str | None = None
    owner_id: str | None = None
    closed_at: datetime | None = None
    personas: tuple[str, ...] = ()
    topics: tuple[str, ...] = ()
    company: str | None = None
    source_modified_at: datetime | None = None
    deleted: bool = False
    extra: dict = field(default_factory=dict, compare=False)


def ordered_history(entries: tuple[StageEntry, ...] | list[StageEntry]) -> list[StageEntry]:
    """Entries sorted by time, exact duplicates removed; re-entries (same stage later) are kept."""
    return sorted(set(entries))
