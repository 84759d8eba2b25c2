"""Reading HubSpot's webhook events into the product's deal events (pure: no app, no database)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from enablement.domain.deal_events import (
    CHANGED,
    CREATED,
    DELETED,
    DELETED_FIELD,
    MERGED,
    RESTORED,
    DealEvent,
    IgnoredEvent,
    RejectedEvent,
)
from enablement.domain.storable import text_problem
from enablement.errors import BadRequest
from integrations.hubspot.mapping import DealProperties
from integrations.hubspot.webhooks import read_batch, read_event, stored_payload

BASE = {
    "eventId": 100,
    "subscriptionId": 12,
    "portalId": 62515,
    "occurredAt": 1767600000000,
    "subscriptionType": "deal.propertyChange",
    "objectId": 42,
}


def test_a_stage_change_becomes_a_changed_event_keyed_by_hubspots_four_fields():
    event = read_event({**BASE, "propertyName": "dealstage", "propertyValue": "closedwon"})
    assert isinstance(event, DealEvent)
    assert (event.kind, event.deal_id, event.field, event.value) == (
        CHANGED,
        "42",
        "stage",
        "closedwon",
    )
    assert (event.key.portal_id, event.key.subscription_id, event.key.event_id) == (
        "62515",
        "12",
        "100",
    )
    assert event.occurred_at == datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
    assert event.ordering_field is None  # history entries are a set, not last-writer-wins


@pytest.mark.parametrize(
    ("name", "value", "field", "expected"),
    [
        ("amount", "1500.5", "amount", 1500.5),
        ("amount", "", "amount", None),
        ("closedate", "1767600000000", "closed_at", datetime(2026, 1, 5, 8, 0, tzinfo=UTC)),
        ("dealname", "  Globex  ", "name", "Globex"),
        ("hubspot_owner_id", 77, "owner_id", "77"),
        ("pipeline", "default", "pipeline_id", "default"),
    ],
)
def test_tracked_properties_are_read_by_the_mapping_rules(name, value, field, expected):
    event = read_event({**BASE, "propertyName": name, "propertyValue": value})
    assert (event.field, event.value, event.ordering_field) == (field, expected, field)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"propertyName": "amount", "propertyValue": "-5"}, "no sign"),
        ({"propertyName": "amount", "propertyValue": "lots"}, "plain digits"),
        ({"propertyName": "amount", "propertyValue": "-0"}, "no sign"),
        ({"propertyName": "amount", "propertyValue": "1e308"}, "no sign, exponent"),
        ({"propertyName": "amount", "propertyValue": 1e308}, "exponent"),
        ({"propertyName": "amount", "propertyValue": -0.0}, "no sign"),
        ({"propertyName": "amount", "propertyValue": "1_000"}, "separators"),
        ({"propertyName": "amount", "propertyValue": "\u0661\u0660\u0660"}, "non-ASCII digits"),
        ({"propertyName": "amount", "propertyValue": "\uff11\uff10"}, "non-ASCII digits"),
        ({"propertyName": "amount", "propertyValue": "NaN"}, "plain digits"),
        ({"objectId": 0, "propertyName": "dealstage", "propertyValue": "a"}, "numeric id"),
        ({"objectId": "-0", "propertyName": "dealstage", "propertyValue": "a"}, "numeric id"),
        ({"objectId": "007", "propertyName": "dealstage", "propertyValue": "a"}, "leading 0"),
        ({"objectId": "9" * 20, "propertyName": "dealstage", "propertyValue": "a"}, "numeric id"),
        ({"objectId": 10**19, "propertyName": "dealstage", "propertyValue": "a"}, "numeric id"),
        ({"objectId": "\u0664\u0662", "propertyName": "dealstage", "propertyValue": "a"}, "id"),
        ({"propertyName": "closedate", "propertyValue": "99999999999999999"}, "1970 and 2100"),
        ({"propertyName": "dealstage", "propertyValue": ""}, "needs the stage id"),
        ({"propertyName": "dealstage", "propertyValue": True}, "must be text"),
        ({"propertyName": "dealstage", "propertyValue": "x" * 65}, "longer than 64"),
        ({"propertyName": "dealstage"}, "needs the stage id"),
        ({"propertyValue": "x"}, "needs propertyName"),
        ({"objectId": -3, "propertyName": "dealstage", "propertyValue": "a"}, "numeric id"),
        ({"objectId": True, "propertyName": "dealstage", "propertyValue": "a"}, "numeric id"),
        (
            {"portalId": None, "propertyName": "dealstage", "propertyValue": "a"},
            "portalId is missing",
        ),
        ({"occurredAt": -1, "propertyName": "dealstage", "propertyValue": "a"}, "occurredAt"),
        ({"occurredAt": 1.5, "propertyName": "dealstage", "propertyValue": "a"}, "occurredAt"),
    ],
)
def test_unreadable_events_are_rejected_with_a_reason(change, reason):
    event = read_event({**BASE, **change})
    assert isinstance(event, RejectedEvent)
    assert reason in event.reason


def test_a_rejected_event_without_a_readable_key_gets_a_stable_one_from_its_content():
    first = read_event({"eventId": "x", "objectId": 5})
    again = read_event({"eventId": "x", "objectId": 5})
    other = read_event({"eventId": "y", "objectId": 5})
    assert first.key == again.key != other.key
    assert first.key.event_id.startswith("sha256:") and len(first.key.event_id) <= 64


def test_a_repeated_key_inside_an_event_is_refused_rather_than_silently_resolved():
    body = b'[{"eventId": 1, "eventId": 2, "subscriptionId": 12, "portalId": 1, "occurredAt": 1767600000000,'
    body += b' "subscriptionType": "deal.deletion", "objectId": 42}]'
    (event,) = read_batch(body).events
    assert isinstance(event, RejectedEvent) and "repeats the key" in event.reason


def test_merges_name_the_new_deal_as_winner_and_every_other_deal_as_merged():
    event = read_event(
        {
            **BASE,
            "subscriptionType": "deal.merge",
            "primaryObjectId": 42,
            "mergedObjectIds": [7],
            "newObjectId": 99,
        }
    )
    assert (event.kind, event.deal_id, event.merged_ids, event.primary_id) == (
        MERGED,
        "99",
        ("7", "42"),
        "42",
    )
    older = read_event(
        {**BASE, "subscriptionType": "deal.merge", "primaryObjectId": 42, "mergedObjectIds": [7]}
    )
    assert (older.deal_id, older.merged_ids) == ("42", ("7",))


def test_deletion_and_restore_order_against_each_other():
    deletion = read_event({**BASE, "subscriptionType": "deal.deletion"})
    restore = read_event({**BASE, "subscriptionType": "deal.restore"})
    assert deletion.ordering_field == restore.ordering_field == DELETED_FIELD


def test_the_stored_payload_is_flat_clean_and_reads_back_to_the_same_event():
    raw = {
        **BASE,
        "propertyName": "dealname",
        "propertyValue": "Acme",
        "extra": {"deep": [1]},
        "n": 10**30,
    }
    payload = stored_payload(raw)
    assert payload["extra"] == "<nested>" and payload["n"] == str(10**30)
    json.dumps(payload, allow_nan=False)  # storable on both engines
    assert read_event(payload) == read_event(raw)


def test_a_body_that_is_not_an_array_of_events_is_a_bad_request():
    for body in (b"{}", b"null", b'"[]"', b"[[[[[[[[[[1]]]]]]]]]]"):
        with pytest.raises(BadRequest):
            read_batch(body)
    assert read_batch(b"[]").events == []


def test_unstorable_text_is_refused_by_the_products_rule_and_kept_cleaned_in_the_payload():
    event = read_event({**BASE, "propertyName": "dealname", "propertyValue": "Ac\x00me \ud800"})
    assert isinstance(event, RejectedEvent)
    assert event.reason == f"propertyValue {text_problem('Ac' + chr(0))}"
    assert event.payload["propertyValue"] == "Ac\ufffdme \ufffd"


GENERIC = {**BASE, "subscriptionType": "object.propertyChange", "objectTypeId": "0-3"}


@pytest.mark.parametrize(
    ("action", "kind"),
    [
        ("creation", CREATED),
        ("propertyChange", CHANGED),
        ("deletion", DELETED),
        ("restore", RESTORED),
        ("merge", MERGED),
    ],
)
def test_generic_deal_events_read_into_the_same_records_as_legacy_ones(action, kind):
    extra = {"propertyName": "dealstage", "propertyValue": "closedwon"}
    extra.update({"primaryObjectId": 42, "mergedObjectIds": [7]} if action == "merge" else {})
    generic = read_event({**GENERIC, **extra, "subscriptionType": f"object.{action}"})
    legacy = read_event({**BASE, **extra, "subscriptionType": f"deal.{action}"})
    assert isinstance(generic, DealEvent) and generic.kind == kind
    same = ("kind", "deal_id", "field", "value", "merged_ids", "primary_id", "key")
    assert [getattr(generic, f) for f in same] == [getattr(legacy, f) for f in same]
    assert generic.subscription_type == f"object.{action}"


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"objectTypeId": "0-1"}, "object type 0-1, not deals"),
        ({"objectTypeId": "2-3456"}, "object type 2-3456"),
        ({"subscriptionType": "contact.propertyChange", "objectTypeId": None}, "contact records"),
        ({"subscriptionType": "object.associationChange"}, "associationChange events are not used"),
        ({"subscriptionType": "deal.privacyDeletion"}, "privacyDeletion events are not used"),
    ],
)
def test_events_the_product_has_no_use_for_are_ignored_with_a_reason(change, reason):
    event = read_event({**GENERIC, "propertyName": "firstname", "propertyValue": "Ada", **change})
    assert isinstance(event, IgnoredEvent)
    assert reason in event.reason
    assert event.key.event_id == "100"  # keyed like any event: a repeat is a duplicate


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"objectTypeId": None}, "needs objectTypeId"),
        ({"objectTypeId": 3}, "needs objectTypeId"),
        ({"objectTypeId": "deals"}, "needs objectTypeId"),
        ({"subscriptionType": "object.teleport"}, "unsupported subscriptionType"),
        ({"subscriptionType": "contact.teleport"}, "unsupported subscriptionType"),
        ({"subscriptionType": "dealstage"}, "unsupported subscriptionType"),
    ],
)
def test_generic_events_that_cannot_be_read_are_still_rejected(change, reason):
    event = read_event({**GENERIC, "propertyName": "dealstage", "propertyValue": "x", **change})
    assert isinstance(event, RejectedEvent) and not isinstance(event, IgnoredEvent)
    assert reason in event.reason


def test_an_ignored_event_from_another_account_is_rejected_first():
    event = read_event({**GENERIC, "objectTypeId": "0-1"}, portal_id="1")
    assert isinstance(event, RejectedEvent) and not isinstance(event, IgnoredEvent)
    assert "HubSpot account 62515, not 1" in event.reason


def test_the_configured_context_properties_are_read_by_their_configured_names():
    names = DealProperties(industry="sector", personas="buyer_roles", topics="")
    sector = read_event(
        {**GENERIC, "propertyName": "sector", "propertyValue": " Banking "}, None, names
    )
    roles = read_event(
        {**GENERIC, "propertyName": "buyer_roles", "propertyValue": "cfo;;cio"}, None, names
    )
    default = read_event(
        {**GENERIC, "propertyName": "industry", "propertyValue": "Retail"}, None, names
    )
    assert (sector.field, sector.value) == ("industry", "Banking")
    assert (roles.field, roles.value, roles.ordering_field) == (
        "personas",
        ["cfo", "cio"],
        "personas",
    )
    assert default.field is None  # not the configured industry property: not tracked
