"""POST /webhooks/hubspot with HubSpot's generic object.* events: the guarantees of the legacy deal.* format hold."""

from __future__ import annotations

import json

from sqlalchemy import select

from enablement.db.models import WebhookEvent
from tests.crm_data import insert_deals, sample_deal
from tests.web import test_webhooks as legacy
from tests.web.test_webhooks import (
    DAY,
    PATH,
    deal,
    event,
    history,
    post,
    signed_headers,
    stored_events,
)

# The legacy module's fixtures: the same app, secret, pipeline and deal 101.
hook_app, hook, hook_sessions = legacy.hook_app, legacy.hook, legacy.hook_sessions

DEALS = "0-3"
CONTACTS = "0-1"
# Generic subscriptions are one per action in a developer-platform app: their ids differ.
SUBSCRIPTION = {"creation": 21, "propertyChange": 22, "deletion": 23, "merge": 24, "restore": 25}


def generic(event_id: int, deal_id, minutes: float, action: str, type_id: str = DEALS, **extra):
    """A generic object.<action> event, as HubSpot sends it to a developer-platform app."""
    return {
        **event(event_id, deal_id, minutes, f"object.{action}", **extra),
        "subscriptionId": SUBSCRIPTION[action],
        "objectTypeId": type_id,
    }


def change(event_id: int, deal_id, minutes: float, name: str, value, type_id: str = DEALS):
    """A generic property change."""
    return generic(
        event_id,
        deal_id,
        minutes,
        "propertyChange",
        type_id,
        propertyName=name,
        propertyValue=value,
    )


def test_a_generic_stage_change_is_applied_like_a_legacy_one(hook, hook_sessions):
    answer = post(hook, [change(1, 101, 5 * DAY, "dealstage", "prop")])
    assert answer.status_code == 200 and answer.get_json()["applied"] == 1
    assert [s for s, _ in history(hook_sessions, "101")] == ["disc", "demo", "prop"]
    assert deal(hook_sessions, "101").current_stage_id == "prop"


def test_a_generic_event_without_a_signature_is_refused_and_not_stored(hook, hook_sessions):
    body = json.dumps([change(1, 101, 5 * DAY, "dealstage", "prop")]).encode()
    headers = signed_headers(body, "http://testserver" + PATH, secret="another-secret")
    assert hook.post(PATH, data=body, headers=headers).status_code == 401
    assert stored_events(hook_sessions) == 0


def test_both_formats_in_one_batch_follow_occurred_at_and_a_repeat_changes_nothing(
    hook, hook_sessions
):
    batch = [change(1, 101, 30, "amount", "300"), change(3, 101, 4 * DAY, "dealstage", "prop")]
    first = post(hook, batch).get_json()
    assert (first["stored"], first["applied"]) == (2, 2)
    # A legacy event of the same change arriving later but older: the newer value stays.
    late = post(hook, [event(2, 101, 20, propertyName="amount", propertyValue="200")]).get_json()
    assert (late["stored"], late["ignored"]) == (1, 1)
    again = post(hook, batch).get_json()
    assert (again["stored"], again["duplicates"], again["applied"]) == (0, 2, 0)
    assert deal(hook_sessions, "101").amount == 300.0
    assert [s for s, _ in history(hook_sessions, "101")] == ["disc", "demo", "prop"]


def test_generic_deletion_restore_and_merge_keep_their_meaning(hook, hook_sessions):
    post(hook, [generic(1, 101, 50, "restore"), generic(2, 101, 40, "deletion")])
    assert deal(hook_sessions, "101").deleted_at is None  # the deletion is older
    insert_deals(hook_sessions, sample_deal("102", history=((1, "disc"), (2, "prop"))))
    merge = generic(
        3, 103, 5 * DAY, "merge", primaryObjectId=101, mergedObjectIds=[102], newObjectId=103
    )
    assert post(hook, [merge]).get_json()["applied"] == 1
    assert [s for s, _ in history(hook_sessions, "103")] == ["disc", "disc", "prop", "demo"]
    for loser in ("101", "102"):
        assert deal(hook_sessions, loser).merged_into_id == "103"


def test_events_about_other_object_types_are_stored_as_ignored_with_the_reason(
    hook, hook_sessions, auth
):
    batch = [
        change(1, 9001, 10, "firstname", "Ada", type_id=CONTACTS),
        generic(2, 9002, 10, "creation", type_id="2-123456"),  # a custom object
        event(3, 9003, 10, "contact.creation"),  # the legacy format of another object
        event(4, 101, 10, "deal.associationChange"),  # a deal event the product does not use
    ]
    answer = post(hook, batch).get_json()
    assert (answer["stored"], answer["ignored"], answer["rejected"], answer["applied"]) == (
        4,
        4,
        0,
        0,
    )
    with hook_sessions() as session:
        rows = session.execute(
            select(WebhookEvent.status, WebhookEvent.error, WebhookEvent.object_id).order_by(
                WebhookEvent.event_id
            )
        ).all()
    assert {status for status, _, _ in rows} == {"ignored"}
    assert "object type 0-1, not deals" in rows[0][1]
    assert "contact records" in rows[2][1]
    assert "associationChange" in rows[3][1] and rows[3][2] == "101"
    assert rows[0][2] is None  # a contact's id is not stored as a deal's
    assert deal(hook_sessions, "9001") is None and deal(hook_sessions, "9002") is None
    stats = hook.get("/api/v1/webhooks/stats", headers=auth("admin")).get_json()
    assert (stats["ignored"], stats["rejected"]) == (4, 0)


def test_a_generic_event_without_an_object_type_is_rejected_as_unreadable(hook, hook_sessions):
    unreadable = {**change(1, 101, 10, "amount", "5")}
    del unreadable["objectTypeId"]
    answer = post(hook, [unreadable]).get_json()
    assert (answer["rejected"], answer["applied"]) == (1, 0)


def test_the_configured_industry_personas_and_topics_properties_change_the_deal(
    hook, hook_sessions
):
    batch = [
        change(1, 101, 10, "industry", "Banking"),
        change(2, 101, 10, "personas", "cfo; cio"),
        change(3, 101, 10, "topics", "risk"),
    ]
    assert post(hook, batch).get_json()["applied"] == 3
    stored = deal(hook_sessions, "101")
    assert (stored.industry, list(stored.personas), list(stored.topics)) == (
        "Banking",
        ["cfo", "cio"],
        ["risk"],
    )
    # An older change of the same property does not win.
    assert post(hook, [change(4, 101, 5, "industry", "Retail")]).get_json()["ignored"] == 1
    assert deal(hook_sessions, "101").industry == "Banking"
