"""Nudges from HubSpot webhooks (after the answer), the workflow action's signed answers, the stats route."""

from __future__ import annotations

import json
import random
import threading
import time
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from enablement import create_app
from enablement.db.models import Deal, Nudge, RecommendationImpression, Share
from integrations.hubspot.signatures import sign_v3, signed_url
from integrations.memory import InMemoryCrm
from tests.crm_data import deal_record, insert_asset, insert_deals, insert_pipeline, iso
from tests.db.test_nudges import NOW, fresh_deal
from tests.web.test_recommendations import mapped_pipeline
from tests.web.test_webhooks import PORTAL, SECRET, ms, post

ACTION = "/integrations/hubspot/workflow-actions/suggest-content"
DEALS = [str(101 + i) for i in range(20)]


@pytest.fixture
def nudge_app(settings):
    """Task nudges on, webhooks and the workflow action configured, 20 deals in interest, one evaluation piece."""
    app = create_app(
        settings,
        nudges="task",
        hubspot_client_secret=SECRET,
        hubspot_portal_id=str(PORTAL),
    )
    container = app.extensions["enablement"]
    insert_pipeline(container.sessions, mapped_pipeline())
    insert_asset(container.sessions, "fit", title="Fit check", stages=["evaluation"])
    deals = [fresh_deal(d, (timedelta(days=10), "disc")) for d in DEALS]
    deals.append(fresh_deal("200"))  # entered evaluation half an hour ago
    won = ((timedelta(days=3), "demo"), (timedelta(hours=1), "won"))
    deals.append(fresh_deal("300", *won, closed_at=iso(NOW - timedelta(hours=1))))
    insert_deals(container.sessions, *deals)
    container.crm = InMemoryCrm(now=NOW)
    for deal in deals:
        container.crm.put_deal(deal_record(deal))
    yield app
    container.engine.dispose()


def stage_event(event_id: int, deal_id: str, stage_id: str, ago: timedelta) -> dict:
    """A dealstage change that occurred `ago` before now."""
    return {
        "eventId": event_id,
        "subscriptionId": 12,
        "portalId": PORTAL,
        "occurredAt": ms(NOW - ago),
        "subscriptionType": "deal.propertyChange",
        "objectId": int(deal_id),
        "propertyName": "dealstage",
        "propertyValue": stage_id,
    }


def nudge_rows(sessions) -> list[tuple]:
    with sessions() as session:
        return session.execute(
            select(Nudge.deal_id, Nudge.stage_id, Nudge.state).order_by(Nudge.deal_id)
        ).all()


def test_a_webhook_stage_change_makes_one_nudge_after_the_answer(nudge_app):
    container = nudge_app.extensions["enablement"]
    client = nudge_app.test_client()
    response = post(client, [stage_event(1, "101", "demo", timedelta(minutes=2))])
    assert response.status_code == 200
    response.close()  # the follow-up runs once the answer is sent
    assert nudge_rows(container.sessions) == [("101", "demo", "delivered")]
    assert [t.deal_id for t in container.crm.tasks] == ["101"]
    # HubSpot delivers the same event again: nothing more.
    post(client, [stage_event(1, "101", "demo", timedelta(minutes=2))]).close()
    assert len(container.crm.tasks) == 1


def test_a_replay_with_duplicates_from_two_concurrent_senders_gives_one_nudge_per_stage_entry(
    nudge_app,
):
    container = nudge_app.extensions["enablement"]
    events = [stage_event(i + 1, d, "demo", timedelta(minutes=3)) for i, d in enumerate(DEALS)]
    events += [
        stage_event(100 + i, d, "prop", timedelta(minutes=1)) for i, d in enumerate(DEALS[:5])
    ]
    rng = random.Random(5)
    replay = events + rng.sample(events, len(events) // 10)  # 10% duplicates
    rng.shuffle(replay)
    halves = [replay[0::2], replay[1::2]]
    errors = []

    def sender(batch):
        client = nudge_app.test_client()
        for start in range(0, len(batch), 4):
            response = post(client, batch[start : start + 4])
            if response.status_code != 200:
                errors.append(response.status_code)
            response.close()

    threads = [threading.Thread(target=sender, args=(h,)) for h in halves]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert errors == []
    with container.sessions() as session:
        keys = session.execute(
            select(Nudge.deal_id, Nudge.stage_id, Nudge.entered_at, func.count()).group_by(
                Nudge.deal_id, Nudge.stage_id, Nudge.entered_at
            )
        ).all()
    assert all(n == 1 for *_, n in keys)
    # Every deal ends in its current stage's nudge; a deal whose events came in any order
    # never gets two tasks for one stage entry.
    tasks = [(t.deal_id, t.subject) for t in container.crm.tasks]
    assert len(tasks) == len(set(tasks))
    assert {d for d, s, *_ in keys} == set(DEALS)
    with container.sessions() as session:
        current = dict(session.execute(select(Deal.id, Deal.current_stage_id)).all())
        delivered = session.scalar(
            select(func.count()).select_from(Nudge).where(Nudge.state == "delivered")
        )
    nudged = {(d, s) for d, s, *_ in keys}
    assert all((d, current[d]) in nudged for d in DEALS)
    assert {current[d] for d in DEALS[:5]} == {"prop"}
    assert len(tasks) == delivered


def signed_action(client, body: dict | bytes, *, at: float | None = None, secret: str = SECRET):
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    timestamp = str(int((at if at is not None else time.time()) * 1000))
    signature = sign_v3(secret, "POST", signed_url("http://testserver", ACTION, ""), raw, timestamp)
    return client.post(
        ACTION,
        data=raw,
        headers={
            "Content-Type": "application/json",
            "X-HubSpot-Signature-v3": signature,
            "X-HubSpot-Request-Timestamp": timestamp,
        },
    )


def execution(deal_id: str = "101", portal=PORTAL) -> dict:
    """An execution request as HubSpot's workflows send it."""
    return {
        "callbackId": "ap-1-2-3",
        "origin": {"portalId": portal, "actionDefinitionId": 77, "actionDefinitionVersion": 1},
        "context": {"source": "WORKFLOWS", "workflowId": 9},
        "object": {"objectId": int(deal_id), "objectType": "DEAL"},
        "inputFields": {"limit": 2},
    }


def test_the_workflow_action_answers_a_signed_request_with_its_output_fields(nudge_app):
    container = nudge_app.extensions["enablement"]
    response = signed_action(nudge_app.test_client(), execution("200"))
    assert response.status_code == 200, response.get_json()
    fields = response.get_json()["outputFields"]
    assert fields["top_title"] == "Fit check"
    assert fields["offered_count"] == 1
    assert fields["top_reason"]
    with container.sessions() as session:
        share = session.scalars(select(Share)).one()
        impression = session.get(RecommendationImpression, share.impression_id)
    assert fields["top_link"].startswith("http://testserver/l/")
    assert (share.channel, impression.source) == ("hubspot_workflow", "hubspot_workflow")


def test_a_deal_with_nothing_to_offer_answers_a_count_of_zero(nudge_app):
    response = signed_action(nudge_app.test_client(), execution("300"))  # closed won
    assert response.status_code == 200
    assert response.get_json()["outputFields"] == {
        "top_title": "",
        "top_link": "",
        "top_reason": "",
        "offered_count": 0,
    }


@pytest.mark.parametrize(
    ("how", "status"),
    [
        ("unsigned", 401),
        ("wrong secret", 401),
        ("stale", 401),
        ("tampered", 401),
        ("other account", 403),
        ("not json", 422),
        ("no object", 422),
        ("bad deal id", 422),
    ],
)
def test_the_workflow_action_refuses_what_hubspot_did_not_sign_or_cannot_be_read(
    nudge_app, how, status
):
    client = nudge_app.test_client()
    if how == "unsigned":
        response = client.post(ACTION, json=execution())
    elif how == "wrong secret":
        response = signed_action(client, execution(), secret="not-the-secret")
    elif how == "stale":
        response = signed_action(client, execution(), at=time.time() - 6 * 60)
    elif how == "tampered":
        raw = json.dumps(execution()).encode()
        timestamp = str(int(time.time() * 1000))
        url = signed_url("http://testserver", ACTION, "")
        headers = {
            "X-HubSpot-Signature-v3": sign_v3(SECRET, "POST", url, raw, timestamp),
            "X-HubSpot-Request-Timestamp": timestamp,
        }
        response = client.post(ACTION, data=raw.replace(b"101", b"102"), headers=headers)
    elif how == "other account":
        response = signed_action(client, execution(portal=1))
    elif how == "not json":
        response = signed_action(client, b"{not json")
    elif how == "no object":
        response = signed_action(client, {"origin": {"portalId": PORTAL}})
    else:
        body = execution()
        body["object"]["objectId"] = "1 OR 1=1"
        response = signed_action(client, body)
    assert response.status_code == status, response.get_json()
    assert set(response.get_json()) == {"error"}
    with nudge_app.extensions["enablement"].sessions() as session:
        assert session.scalar(select(func.count()).select_from(RecommendationImpression)) == 0


def test_the_workflow_action_is_unavailable_until_hubspot_is_configured(settings):
    app = create_app(settings)
    try:
        response = app.test_client().post(ACTION, json=execution())
        assert response.status_code == 503
    finally:
        app.extensions["enablement"].engine.dispose()


def test_admins_see_the_nudge_counts_and_the_failing_deliveries(nudge_app, token_for):
    container = nudge_app.extensions["enablement"]
    container.crm.fail(method="create_task")
    client = nudge_app.test_client()
    post(client, [stage_event(1, "101", "demo", timedelta(minutes=2))]).close()
    admin = {"Authorization": f"Bearer {token_for('admin')}"}
    body = client.get("/api/v1/nudges/stats", headers=admin).get_json()
    assert body["states"]["failed"] == 1
    (failing,) = body["failing"]
    assert (failing["deal_id"], failing["attempts"]) == ("101", 1)
    assert failing["next_attempt_at"].endswith("Z")
    sales = {"Authorization": f"Bearer {token_for('sales')}"}
    assert client.get("/api/v1/nudges/stats", headers=sales).status_code == 403


def test_a_nudged_deal_answers_the_pieces_its_nudge_prepared_without_ranking_again(nudge_app):
    container = nudge_app.extensions["enablement"]
    client = nudge_app.test_client()
    post(client, [stage_event(1, "101", "demo", timedelta(minutes=2))]).close()
    with container.sessions() as session:
        before = session.scalar(select(func.count()).select_from(RecommendationImpression))
        share = session.scalars(select(Share)).one()
    response = signed_action(client, execution("101"))
    assert response.status_code == 200
    fields = response.get_json()["outputFields"]
    assert fields["top_title"] == "Fit check" and fields["offered_count"] == 1
    assert fields["top_link"] in container.crm.tasks[0].body
    with container.sessions() as session:
        after = session.scalar(select(func.count()).select_from(RecommendationImpression))
        assert session.scalar(select(func.count()).select_from(Share)) == 1
    assert after == before
    assert share.channel == "nudge"
