"""CRM records in the product's terms: what a file import, a HubSpot sync or the demo hands to persistence.

Also the `Crm` interface the sync use case talks to; integrations implement it
(integrations.hubspot.client.HubSpotCrm, integrations.memory.InMemoryCrm).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol, runtime_checkable

from enablement.domain.tags import distinct_tags
from enablement.errors import ExternalServiceError


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
    # The current stage when no history is known (an export that carries only the stage).
    current_stage_id: str | None = None
    # When a deleted deal was deleted (None: now, on first storing it deleted).
    deleted_at: datetime | None = None

    def __post_init__(self) -> None:
        # NOTE: every path (files, sync, demo, webhooks) builds a DealRecord, so the one tag
        # rule is applied here: display form, each tag once (case-insensitively).
        object.__setattr__(self, "personas", distinct_tags(self.personas))
        object.__setattr__(self, "topics", distinct_tags(self.topics))


def ordered_history(entries: tuple[StageEntry, ...] | list[StageEntry]) -> list[StageEntry]:
    """Entries sorted by time, exact duplicates removed; re-entries (same stage later) are kept."""
    return sorted(set(entries))


@dataclass(frozen=True)
class DealPage:
    """Deals read in one step, and the resume token that is safe to store once they are committed.

    Listing every deal: `resume` is the CRM's opaque token for the next page (None on the
    last page, which has `done` set). Reading modified deals: a page whose `resume` is set
    closes a time window; it is the ISO 8601 time before which every modified deal has been
    yielded (None on the pages inside a window).
    """

    deals: list[DealRecord]
    resume: str | None = None
    done: bool = False


@dataclass(frozen=True)
class CallCounts:
    """Requests sent to the CRM so far (retries included), how many were retries, and the pace held."""

    calls: int = 0
    retries: int = 0
    rate: float | None = None  # requests per second the client is held to (None: no limit)
    rate_limited: int = 0  # answers that said "too many requests" (429)


class CrmRefused(ExternalServiceError):
    """The CRM refused our credentials or their permissions: no other request can succeed either."""

    code = "crm_unauthorized"


class CrmDailyLimit(ExternalServiceError):
    """The CRM's daily request quota is used up: stop cleanly; the next run after `resume_by` resumes."""

    code = "crm_daily_limit"
    status = 429

    def __init__(self, message: str, resume_by: datetime | None = None):
        super().__init__(message)
        self.resume_by = resume_by


@runtime_checkable
class Crm(Protocol):
    """The CRM the product syncs deals from and writes share notes to.

    Failures are the product's errors: CrmRefused when the credentials are refused (stop
    everything), another EnablementError (ExternalServiceError, NotFound) when one request
    failed for good after the implementation's own retries.
    """

    def fetch_pipelines(self) -> list[PipelineRecord]:
        """Every deal pipeline with its stages (archived ones included, marked archived)."""
        ...

    def iter_owners(self) -> Iterator[OwnerRecord]:
        """Every owner, active and archived (deals keep owners who left)."""
        ...

    def iter_all_deals(
        self, after: str | None = None, archived: bool = False
    ) -> Iterator[DealPage]:
        """Every active (or archived, marked deleted) deal with its complete stage history, page by page from `after`."""
        ...

    def iter_deal_ids(self, archived: bool = False) -> Iterator[list[str]]:
        """Ids of every active (or archived) deal, a page at a time: the deletion sweep compares them with ours."""
        ...

    def iter_deals_modified_between(self, start: datetime, end: datetime) -> Iterator[DealPage]:
        """Active deals last modified in [start, end), with their histories; see DealPage for `resume`."""
        ...

    def fetch_deals(self, ids: Iterable[str]) -> list[DealRecord]:
        """These active deals with their exact stage histories; unknown ids are left out."""
        ...

    def create_note(self, deal_id: str, body: str, timestamp: datetime) -> str:
        """Log a note (plain text, one paragraph a line) on the deal at `timestamp`; returns the note id."""
        ...

    def find_note(self, deal_id: str, marker: str) -> str | None:
        """The id of a note on the deal whose text contains `marker`, or None."""
        ...

    def find_task(self, deal_id: str, marker: str) -> str | None:
        """The id of a task on the deal whose body contains `marker`, or None."""
        ...

    def create_task(
        self, deal_id: str, owner_id: str | None, subject: str, body: str, due: datetime
    ) -> str:
        """Create a task on the deal (plain text body) assigned to `owner_id` (None: unassigned), due at `due`; returns its id."""
        ...

    def call_counts(self) -> CallCounts:
        """Requests sent since this client was built (for the sync summary)."""
        ...
