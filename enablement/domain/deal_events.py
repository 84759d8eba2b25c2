"""CRM deal events in the product's terms: what a webhook delivers, once the CRM's JSON is read.

A webhook adapter (integrations.hubspot.webhooks) turns each raw event into a DealEvent, or
into a RejectedEvent with the reason it could not be read. The webhook service stores both
and applies the DealEvents. Ordering rules live here, pure: an event changes a field only
when nothing newer is known for that field, so events applied late or twice change nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field as data_field
from datetime import datetime, timedelta

# What happened to the deal.
CREATED = "created"
CHANGED = "changed"
DELETED = "deleted"
RESTORED = "restored"
MERGED = "merged"
KINDS = (CREATED, CHANGED, DELETED, RESTORED, MERGED)

# Deal attributes a change event may carry (product names); STAGE is a history entry, not a field.
STAGE = "stage"
TRACKED_FIELDS = (
    STAGE,
    "pipeline_id",
    "amount",
    "closed_at",
    "name",
    "owner_id",
    "industry",
    "personas",
    "topics",
)
# Deletion and restore race each other like a field: the newest one wins.
DELETED_FIELD = "deleted"

# How far past the receiver's clock an event may be dated (clocks differ; HubSpot's are good).
DEFAULT_FUTURE_SKEW = timedelta(minutes=5)

# What storing and applying an event came to (the inbox keeps it with the reason).
PENDING, APPLIED, IGNORED, REJECTED = "pending", "applied", "ignored", "rejected"
STATUSES = (PENDING, APPLIED, IGNORED, REJECTED)


@dataclass(frozen=True)
class EventKey:
    """What makes a delivered event unique: the CRM sends one event again under the same key."""

    portal_id: str
    subscription_id: str
    event_id: str
    occurred_at: datetime


@dataclass(frozen=True)
class DealEvent:
    """One thing that happened to a deal at `occurred_at`.

    kind CHANGED carries `field` (one of TRACKED_FIELDS, or None for a property the product
    does not track) and its new `value`, already converted to the product's type. kind
    MERGED names the surviving deal in `deal_id` and the deals merged into it in `merged_ids`.
    """

    key: EventKey
    kind: str
    deal_id: str
    subscription_type: str
    field: str | None = None
    value: object = None
    merged_ids: tuple[str, ...] = ()
    primary_id: str | None = None
    payload: dict = data_field(default_factory=dict, compare=False)

    @property
    def occurred_at(self) -> datetime:
        """When the change happened in the CRM (not when it reached us)."""
        return self.key.occurred_at

    @property
    def ordering_field(self) -> str | None:
        """The field whose newest event wins (None: the event is not ordered against others)."""
        if self.kind in (DELETED, RESTORED):
            return DELETED_FIELD
        if self.kind == CHANGED and self.field not in (None, STAGE):
            return self.field
        return None


@dataclass(frozen=True)
class RejectedEvent:
    """An event that could not be read; kept with its reason, under a key derived from its content."""

    key: EventKey
    reason: str
    subscription_type: str = ""
    deal_id: str | None = None
    payload: dict = data_field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class IgnoredEvent(RejectedEvent):
    """A readable event the product has no use for (another object type): stored as ignored, with the reason."""


def is_newer(occurred_at: datetime, newest_known: datetime | None) -> bool:
    """True when a change at occurred_at is newer than everything known for its field."""
    return newest_known is None or occurred_at > newest_known


def reject_if_ahead(event, now: datetime, skew: timedelta):
    """The event itself, or a RejectedEvent when it is dated more than `skew` past `now`.

    NOTE: the newest change of a field wins, so an event dated in the future would win
    against every real change until that date: it is stored with the reason, never applied.
    """
    if isinstance(event, RejectedEvent) or event.key.occurred_at <= now + skew:
        return event
    ahead = event.key.occurred_at - now
    return RejectedEvent(
        key=event.key,
        reason=(
            f"occurredAt {event.key.occurred_at.isoformat()} is {_span(ahead)} ahead of this "
            f"server's clock (at most {_span(skew)} allowed: WEBHOOK_FUTURE_SKEW)"
        ),
        subscription_type=event.subscription_type,
        deal_id=event.deal_id,
        payload=event.payload,
    )


def _span(delta: timedelta) -> str:
    """A duration in the largest whole unit that fits: '3 days', '12 minutes', '40 seconds'."""
    seconds = int(delta.total_seconds())
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            n = seconds // size
            return f"{n} {unit}{'s' if n != 1 else ''}"
    return f"{seconds} second{'s' if seconds != 1 else ''}"
