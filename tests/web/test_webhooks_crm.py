"""Webhook events for deals the service does not know, completed from a fake HubSpot over real HTTP on loopback.

The completion is a deal_fetch job, run inline here (the tests' job queue).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from enablement import create_app
from enablement.db.models import Deal, WebhookEvent
from tests.crm_data import insert_pipeline, sample_pipeline
from tests.integrations.fake_hubspot import TOKEN, served_standard_portal
from tests.web.test_webhooks import SECRET, history, ms, post, stored_events

T1 = datetime(2026, 2, 2, 10, 0, tzinfo=UTC)


@pytest.fixture
def fake():
    """A fake HubSpot portal (two pipelines, owners) on loopback."""
    with served_standard_portal() as server:
        yield server


@pytest.fixture
def crm_app(settings, fake):
    """The app with a client secret and an access token pointing at the fake; no pipeline stored yet."""
    app = create_app(
        settings,
        hubspot_client_secret=SECRET,
        hubspot_access_token=TOKEN,
        hubspot_api_base=fake.url,
    )
    yield app
    app.extensions["enablement"].engine.dispose()


def stage_event(event_id: int, deal_id: int, moment: datetime, stage_id: str) -> dict:
    """A dealstage change as HubSpot sends it."""
    return {
        "eventId": event_id,
        "subscriptionId": 12,
        "portalId": 62515,
        "occurredAt": ms(moment),
        "subscriptionType": "deal.propertyChange",
        "objectId": deal_id,
        "propertyName": "dealstage",
        "propertyValue": stage_id,
    }


def test_an_unknown_deal_is_fetched_from_hubspot_after_the_answer(crm_app, fake):
    fake.add_deal(
        4711,
        [("appointmentscheduled", T1), ("qualifiedtobuy", T1 + timedelta(days=2))],
        dealname="Globex platform",
        amount="48000",
        hubspot_owner_id="101",
    )
    sessions = crm_app.extensions["enablement"].sessions
    client = crm_app.test_client()
    answer = post(client, [stage_event(1, 4711, T1 + timedelta(days=2), "qualifiedtobuy")])
    assert answer.status_code == 200
    # No pipeline was stored, so the event waits; the fetch brings pipelines, the deal and its history.
    assert answer.get_json()["pending"] == 1
    # The fetch is a deal_fetch job; the tests' job queue runs it inline, as it is queued
    # (tests/test_workers.py has it run by a worker process after the web app is gone).
    with sessions() as session:
        stored = session.get(Deal, "4711")
        assert stored is not None
        assert (stored.name, stored.amount, stored.pipeline_id) == (
            "Globex platform",
            48000.0,
            "default",
        )
        assert stored.current_stage_id == "qualifiedtobuy"
        statuses = list(session.scalars(select(WebhookEvent.status)))
    assert statuses == ["applied"]
    assert history(sessions, "4711") == [
        ("appointmentscheduled", T1),
        ("qualifiedtobuy", T1 + timedelta(days=2)),
    ]
    assert [r for r in fake.requests("/crm/v3/objects/deals/batch/read")]
    assert stored_events(sessions) == 1


def test_a_later_event_racing_the_fetch_is_kept(crm_app, fake):
    fake.add_deal(4712, [("appointmentscheduled", T1)], dealname="Initech")
    sessions = crm_app.extensions["enablement"].sessions
    # A pipeline is stored, so the deal is created at once from the event, then completed.
    insert_pipeline(sessions, sample_pipeline("p1"))
    client = crm_app.test_client()
    later = T1 + timedelta(days=3)
    answer = post(client, [stage_event(2, 4712, later, "presentationscheduled")])
    # No stored pipeline has that stage: held until the fetch brings HubSpot's pipelines.
    assert answer.get_json()["pending"] == 1
    # HubSpot's copy (read by the fake, which has not seen the move) plus the newer event.
    assert [s for s, _ in history(sessions, "4712")] == [
        "appointmentscheduled",
        "presentationscheduled",
    ]
    with sessions() as session:
        stored = session.get(Deal, "4712")
        assert (stored.name, stored.pipeline_id, stored.current_stage_id) == (
            "Initech",
            "default",
            "presentationscheduled",
        )
