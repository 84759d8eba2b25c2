"""HubSpot webhook bodies: HubSpot's event JSON read into the product's deal events.

Pure functions; the only place that knows how HubSpot shapes an event (the request
signature is checked by integrations.hubspot.signatures, shared with the app card).
Nothing HubSpot-shaped leaves this module: the webhook service receives DealEvent,
IgnoredEvent and RejectedEvent records (enablement.domain.deal_events).

Both of HubSpot's formats read into the same records: the generic `object.<action>` events
(objectTypeId "0-3" for deals; what apps on the developer platform subscribe to) and the
legacy `deal.<action>` ones. A readable event about another object type, or an action the
product does not use, is an IgnoredEvent (stored with its reason, never applied).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from enablement.domain.deal_events import (
    CHANGED,
    CREATED,
    DELETED,
    MERGED,
    RESTORED,
    DealEvent,
    EventKey,
    IgnoredEvent,
    RejectedEvent,
)
from enablement.domain.numbers import id_text, read_amount
from enablement.domain.storable import refuse_json_constant, storable_text, text_problem
from enablement.domain.timestamps import EARLIEST
from enablement.errors import BadRequest
from integrations.hubspot.mapping import DealProperties, _clip, _split, _text, parse_time

# HubSpot sends up to 100 events a batch; more is accepted but logged.
BATCH_LIMIT = 100
# HubSpot's events are flat objects; anything nested deeper is not an event batch.
MAX_DEPTH = 8

# HubSpot's objectTypeId of deals (generic object.* events name the object type by it).
DEAL_TYPE = "0-3"
# What happened to the deal, by the action of `deal.<action>` or `object.<action>`.
ACTIONS = {
    "creation": CREATED,
    "propertyChange": CHANGED,
    "deletion": DELETED,
    "restore": RESTORED,
    "merge": MERGED,
}
SUBSCRIPTIONS = {f"deal.{action}": kind for action, kind in ACTIONS.items()}
# Actions HubSpot sends that the product has no use for: stored as ignored, not as unreadable.
UNUSED_ACTIONS = ("associationChange", "privacyDeletion", "newMessage")
# HubSpot deal property -> (product field, how its text value is read).
PROPERTIES: dict[str, tuple[str, Callable[[object], object]]] = {}

_SUBSCRIPTION = re.compile(r"^([a-z][a-z_]{0,39})\.([A-Za-z]{1,40})$")
_TYPE_ID = re.compile(r"^[0-9]{1,4}-[0-9]{1,12}$")
_NO_TIME = EARLIEST


class _Unreadable(ValueError):
    """A value of an event that cannot be read; the message is the reason stored with it."""


class _Unused(Exception):
    """A readable event the product has no use for; the message is the reason stored with it."""

    def __init__(self, reason: str, deal_id: str | None):
        super().__init__(reason)
        self.deal_id = deal_id


# -- the batch ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Batch:
    """A webhook body read into product records, in the order HubSpot sent them."""

    events: list[DealEvent | RejectedEvent]

    @property
    def oversized(self) -> bool:
        """More events than HubSpot's documented maximum (accepted, but worth a log line)."""
        return len(self.events) > BATCH_LIMIT


class _Object(dict):
    """A JSON object that remembers keys it saw twice (the later value would silently win)."""

    duplicates: tuple[str, ...] = ()


def _object(pairs: list[tuple[str, object]]) -> _Object:
    obj = _Object(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        obj.duplicates = tuple(k for k, _ in pairs if k in seen or seen.add(k))
    return obj


def read_batch(
    body: bytes, portal_id: str | None = None, properties: DealProperties | None = None
) -> Batch:
    """Read a webhook body: a JSON array of events. BadRequest when it is not one.

    Each element becomes a DealEvent, an IgnoredEvent, or a RejectedEvent with its reason
    (a malformed event never blocks the others of its batch). With `portal_id`, events from
    another HubSpot account are rejected; `properties` names the configured industry,
    personas and topics properties (HubSpot's defaults when None).
    """
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest("the body is not UTF-8 text") from None
    try:
        data = json.loads(text, object_pairs_hook=_object, parse_constant=refuse_json_constant)
    except RecursionError:
        raise BadRequest("the body is nested too deeply to be an event batch") from None
    except ValueError as e:
        raise BadRequest("the body is not valid JSON", {"reason": str(e)[:200]}) from None
    if not isinstance(data, list):
        raise BadRequest("the body must be a JSON array of events")
    if _depth(data) > MAX_DEPTH:
        raise BadRequest("the body is nested too deeply to be an event batch")
    return Batch([read_event(item, portal_id, properties) for item in data])


def _depth(value) -> int:
    """How deeply lists and objects nest (iterative: a hostile body cannot exhaust the stack)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        deepest = max(deepest, level)
        if deepest > MAX_DEPTH:
            return deepest
        children = (
            item.values() if isinstance(item, dict) else item if isinstance(item, list) else ()
        )
        stack.extend((child, level + 1) for child in children if isinstance(child, dict | list))
    return deepest


def read_event(
    item, portal_id: str | None = None, properties: DealProperties | None = None
) -> DealEvent | RejectedEvent:
    """One HubSpot event as a DealEvent, an IgnoredEvent (not used), or a RejectedEvent saying why it cannot be read."""
    if not isinstance(item, dict):
        return _rejected(item, "an event must be a JSON object", None)
    payload = stored_payload(item)
    try:
        key = _key(item)
    except _Unreadable as e:
        return _rejected(item, str(e), None, payload)
    try:
        if portal_id is not None and key.portal_id != portal_id:
            raise _Unreadable(
                f"the event comes from HubSpot account {key.portal_id}, not {portal_id}"
            )
        if getattr(item, "duplicates", ()):
            raise _Unreadable(f"the event repeats the key(s) {', '.join(item.duplicates)[:100]}")
        return _event(item, key, payload, properties or DealProperties())
    except _Unused as e:
        return IgnoredEvent(
            key=key,
            reason=str(e),
            subscription_type=_safe_text(item.get("subscriptionType"), 64) or "",
            deal_id=e.deal_id,
            payload=payload,
        )
    except _Unreadable as e:
        return RejectedEvent(
            key=key,
            reason=str(e),
            subscription_type=_safe_text(item.get("subscriptionType"), 64) or "",
            deal_id=_safe_id(item.get("objectId")),
            payload=payload,
        )


def _key(item: dict) -> EventKey:
    """The event's unique key: portal, subscription, event id and the moment it occurred."""
    occurred = item.get("occurredAt")
    if isinstance(occurred, bool) or not isinstance(occurred, int | str):
        raise _Unreadable("occurredAt must be epoch milliseconds")
    moment = parse_time(occurred) if str(occurred).isdigit() else None
    if moment is None:
        raise _Unreadable("occurredAt must be epoch milliseconds between 1970 and 2100")
    return EventKey(
        portal_id=_id(item, "portalId"),
        subscription_id=_id(item, "subscriptionId"),
        event_id=_id(item, "eventId"),
        occurred_at=moment,
    )


def _kind(item: dict) -> str:
    """What happened to the deal, by subscription type; _Unused for another object or an unused action."""
    subscription = item.get("subscriptionType")
    match = _SUBSCRIPTION.match(subscription) if isinstance(subscription, str) else None
    if match is None:
        raise _unsupported(subscription)
    scope, action = match.groups()
    if scope == "object":
        type_id = item.get("objectTypeId")
        if not isinstance(type_id, str) or not _TYPE_ID.match(type_id):
            raise _Unreadable(f"an object.* event needs objectTypeId ({DEAL_TYPE} for deals)")
        if type_id != DEAL_TYPE:
            raise _Unused(f"an event about object type {type_id}, not deals ({DEAL_TYPE})", None)
    elif scope != "deal":
        if action in ACTIONS or action in UNUSED_ACTIONS:
            raise _Unused(f"an event about {scope} records, not deals", None)
        raise _unsupported(subscription)
    if action in UNUSED_ACTIONS:
        raise _Unused(f"{action} events are not used", _safe_id(item.get("objectId")))
    if action not in ACTIONS:
        raise _unsupported(subscription)
    return ACTIONS[action]


def _unsupported(subscription) -> _Unreadable:
    return _Unreadable(
        f"unsupported subscriptionType {_safe_text(subscription, 64)!r}; handled: "
        f"deal.<action> and object.<action> (objectTypeId {DEAL_TYPE}) for {', '.join(ACTIONS)}"
    )


def _event(item: dict, key: EventKey, payload: dict, properties: DealProperties) -> DealEvent:
    """The event's meaning, by subscription type."""
    kind = _kind(item)
    subscription = item["subscriptionType"]
    deal_id = _id(item, "objectId")
    common = {"key": key, "kind": kind, "subscription_type": subscription, "payload": payload}
    if kind == CHANGED:
        name = item.get("propertyName")
        if not isinstance(name, str) or not name:
            raise _Unreadable("a propertyChange event needs propertyName")
        spec = PROPERTIES.get(name) or _configured(name, properties)
        if spec is None:
            return DealEvent(deal_id=deal_id, field=None, value=None, **common)
        field_name, read = spec
        return DealEvent(
            deal_id=deal_id, field=field_name, value=read(item.get("propertyValue")), **common
        )
    if kind == MERGED:
        primary = _id(item, "primaryObjectId") if "primaryObjectId" in item else deal_id
        winner = _id(item, "newObjectId") if item.get("newObjectId") is not None else primary
        merged = item.get("mergedObjectIds")
        if not isinstance(merged, list) or len(merged) > 100:
            raise _Unreadable("a merge event needs mergedObjectIds, a list of at most 100 ids")
        ids = [_as_id(value, "mergedObjectIds") for value in merged]
        losers = tuple(dict.fromkeys(i for i in [*ids, primary] if i != winner))
        return DealEvent(deal_id=winner, merged_ids=losers, primary_id=primary, **common)
    return DealEvent(deal_id=deal_id, **common)


# -- property values ----------------------------------------------------------------------


def _stage(value) -> str:
    text = _value_text(value, 64)
    if not text:
        raise _Unreadable("a dealstage change needs the stage id in propertyValue")
    return text


def _pipeline(value) -> str:
    text = _value_text(value, 64)
    if not text:
        raise _Unreadable("a pipeline change needs the pipeline id in propertyValue")
    return text


def _amount(value) -> float | None:
    text = _value_text(value, 64)
    try:
        return read_amount(text)  # the product's one amount rule (domain.numbers)
    except ValueError as e:
        raise _Unreadable(str(e)) from None


def _closed_at(value) -> datetime | None:
    text = _value_text(value, 64)
    if text is None:
        return None
    moment = parse_time(text)
    if moment is None:
        raise _Unreadable("closedate must be a timestamp between 1970 and 2100")
    return moment


def _name(value) -> str:
    return _clip(_value_text(value, 100_000), 500) or ""


def _owner(value) -> str | None:
    return _value_text(value, 64)


PROPERTIES.update(
    {
        "dealstage": ("stage", _stage),
        "pipeline": ("pipeline_id", _pipeline),
        "amount": ("amount", _amount),
        "closedate": ("closed_at", _closed_at),
        "dealname": ("name", _name),
        "hubspot_owner_id": ("owner_id", _owner),
    }
)


def _industry(value) -> str | None:
    return _clip(_value_text(value, 100_000), 255)


def _parts(value) -> list[str]:
    """A multi-checkbox value ('a;b') as its parts (a list, as the deal stores them)."""
    return list(_split(_value_text(value, 100_000)))


def _configured(name: str, properties: DealProperties) -> tuple[str, Callable] | None:
    """The configured industry, personas and topics properties, read as the sync reads them."""
    for field_name, property_name, read in (
        ("industry", properties.industry, _industry),
        ("personas", properties.personas, _parts),
        ("topics", properties.topics, _parts),
    ):
        if property_name and name == property_name:
            return field_name, read
    return None


def _value_text(value, limit: int) -> str | None:
    """A property value as trimmed text (None when empty); numbers are read as their text."""
    if isinstance(value, bool) or not isinstance(value, str | int | float | type(None)):
        raise _Unreadable("propertyValue must be text")
    if isinstance(value, float) and not math.isfinite(value):
        raise _Unreadable("propertyValue must be a finite number or text")
    text = _text(value)
    if text is None:
        return None
    problem = text_problem(text)  # the product's one storable-text rule
    if problem:
        raise _Unreadable(f"propertyValue {problem}")
    if len(text) > limit:
        raise _Unreadable(f"propertyValue is longer than {limit} characters")
    return text


# -- ids and text -------------------------------------------------------------------------


def _id(item: dict, name: str) -> str:
    if name not in item or item[name] is None:
        raise _Unreadable(f"{name} is missing")
    return _as_id(item[name], name)


def _as_id(value, name: str) -> str:
    """A HubSpot numeric id (a JSON number or digits) as text, by the product's one id rule."""
    try:
        return id_text(value)
    except ValueError as e:
        raise _Unreadable(f"{name} {e}") from None


def _safe_text(value, limit: int) -> str | None:
    """Text fit to store and log: NULs and lone surrogates replaced, cut to `limit`."""
    if value is None:
        return None
    text = (
        value if isinstance(value, str) else str(value) if isinstance(value, int | float) else None
    )
    if text is None:
        return None
    return storable_text(text)[:limit]


def _safe_id(value) -> str | None:
    try:
        return _as_id(value, "objectId")
    except _Unreadable:
        return None


def stored_payload(item: dict) -> dict:
    """The event as kept in the inbox: top-level scalars (and lists of them), cleaned and bounded."""
    out: dict = {}
    for name, value in list(item.items())[:50]:
        key = _safe_text(name, 64)
        if isinstance(value, list):
            out[key] = [_scalar(v) for v in value[:100]]
        else:
            out[key] = _scalar(value)
    return out


def _scalar(value):
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        # NOTE: JSON columns and their readers handle 64-bit integers; a longer one is kept as text.
        return value if -(2**63) <= value < 2**63 else _safe_text(value, 100)
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, str):
        return _safe_text(value, 2000)
    return "<nested>"


def _rejected(
    item, reason: str, key: EventKey | None, payload: dict | None = None
) -> RejectedEvent:
    """A rejected event whose own key cannot be read: keyed by a digest of its content.

    The same malformed event delivered twice gets the same key, so it is stored once.
    """
    payload = (
        payload
        if payload is not None
        else {"value": _scalar(item) if not isinstance(item, list) else "<list>"}
    )
    digest = hashlib.sha256(
        json.dumps(payload, sort_keys=True, ensure_ascii=True, default=str).encode()
    ).hexdigest()
    key = key or EventKey(
        portal_id="", subscription_id="", event_id=f"sha256:{digest[:56]}", occurred_at=_NO_TIME
    )
    subscription = item.get("subscriptionType") if isinstance(item, dict) else None
    deal_id = _safe_id(item.get("objectId")) if isinstance(item, dict) else None
    return RejectedEvent(
        key=key,
        reason=reason,
        subscription_type=_safe_text(subscription, 64) or "",
        deal_id=deal_id,
        payload=payload,
    )
