"""The HubSpot app card's backend: v3 signatures, the account, the HubSpot user's own deals, 503 unconfigured."""

import json
import time
from urllib.parse import urlencode

import pytest
from sqlalchemy import select

from enablement import create_app
from enablement.db.models import Owner, RecommendationImpression, Share
from integrations.hubspot.signatures import sign_v3, signed_url, verify_v3
from tests.crm_data import insert_asset, insert_deals, insert_pipeline, sample_deal
from tests.web.test_recommendations import mapped_pipeline
from tests.web.test_timestamp_output import ONE_FORMAT

SECRET = "card-client-secret"  # noqa: S105 - a test value
PORTAL = "4242"
CARD = "/integrations/hubspot/card"
SHARES = "/integrations/hubspot/card/shares"


@pytest.fixture
def card_app(settings):
    app = create_app(
        settings.with_overrides(hubspot_client_secret=SECRET, hubspot_portal_id=PORTAL)
    )
    yield app
    app.extensions["enablement"].engine.dispose()


@pytest.fixture
def card(card_app):
    """A test client of the configured app, with its session factory."""
    sessions = card_app.extensions["enablement"].sessions
    insert_pipeline(sessions, mapped_pipeline())
    insert_deals(sessions, sample_deal("d1"), sample_deal("d2", owner_id="o2"))
    insert_asset(sessions, "fit", stages=["evaluation"], author="Grace Hopper")
    with sessions.begin() as session:
        session.add(Owner(id="o1", email="Rita@Example.com"))
        session.add(Owner(id="o2", email="otto@example.com"))
    return card_app.test_client(), sessions


def signed(method, path, query, body=b"", *, secret=SECRET, at=None):
    """Headers HubSpot would send for this request."""
    timestamp = str(int((at if at is not None else time.time()) * 1000))
    qs = urlencode(query)
    signature = sign_v3(secret, method, signed_url("http://testserver", path, qs), body, timestamp)
    return qs, {"X-HubSpot-Signature-v3": signature, "X-HubSpot-Request-Timestamp": timestamp}


def card_query(deal="d1", email="rita@example.com", portal=PORTAL):
    return {
        "associatedObjectId": deal,
        "associatedObjectType": "DEAL",
        "portalId": portal,
        "userId": "77",
        "userEmail": email,
        "appId": "9",
    }


def test_a_signed_request_gets_the_deals_recommendations_with_share_actions(card):
    client, sessions = card
    qs, headers = signed("GET", CARD, card_query())
    response = client.get(f"{CARD}?{qs}", headers=headers)
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["deal"]["id"] == "d1"
    (item,) = body["recommendations"]
    assert item["asset"]["id"] == "fit"
    assert item["share"]["path"] == SHARES
    assert item["share"]["body"] == {
        "deal_id": "d1",
        "asset_id": "fit",
        "impression_id": body["impression_id"],
    }
    with sessions() as session:
        impression = session.get(RecommendationImpression, body["impression_id"])
        assert (impression.source, impression.requested_by) == ("hubspot_card", "owner:o1")
    # The share button: the same answer as the API's share, linked to the impression.
    raw = json.dumps(item["share"]["body"]).encode()
    qs, headers = signed("POST", SHARES, card_query(), raw)
    shared = client.post(
        f"{SHARES}?{qs}", data=raw, headers={**headers, "Content-Type": "application/json"}
    )
    assert shared.status_code == 201, shared.get_json()
    assert set(shared.get_json()) == {"id", "link", "shared_at"}
    assert ONE_FORMAT.match(shared.get_json()["shared_at"])
    with sessions() as session:
        share = session.scalars(select(Share)).one()
        assert (share.shared_by, share.impression_id, share.channel) == (
            "o1",
            body["impression_id"],
            "hubspot",
        )


def test_another_portal_is_refused(card):
    client, _ = card
    qs, headers = signed("GET", CARD, card_query(portal="999"))
    response = client.get(f"{CARD}?{qs}", headers=headers)
    assert response.status_code == 403
    assert response.get_json()["error"]["details"]["reason"] == "wrong_portal"


@pytest.mark.parametrize(
    "problem", ["stale", "future", "tampered", "wrong_secret", "missing", "host"]
)
def test_stale_tampered_or_missing_signatures_are_401_and_store_nothing(card, problem):
    client, sessions = card
    at = {"stale": time.time() - 301, "future": time.time() + 400}.get(problem)
    qs, headers = signed(
        "GET", CARD, card_query(), at=at, secret="other" if problem == "wrong_secret" else SECRET
    )
    if problem == "tampered":
        qs = qs.replace("d1", "d2")
    if problem == "missing":
        headers = {}
    extra = {"Host": "evil.example"} if problem == "host" else {}
    if problem == "host":
        # Signed for the attacker's host: we rebuild the URL from PUBLIC_BASE_URL, so it fails.
        timestamp = headers["X-HubSpot-Request-Timestamp"]
        headers["X-HubSpot-Signature-v3"] = sign_v3(
            SECRET, "GET", signed_url("http://evil.example", CARD, qs), b"", timestamp
        )
    response = client.get(f"{CARD}?{qs}", headers={**headers, **extra})
    assert response.status_code == 401
    assert response.get_json()["error"]["details"]["reason"] == "invalid_signature"
    with sessions() as session:
        assert session.scalars(select(RecommendationImpression)).all() == []


def test_a_tampered_share_body_is_refused(card):
    client, sessions = card
    raw = json.dumps({"deal_id": "d1", "asset_id": "fit"}).encode()
    qs, headers = signed("POST", SHARES, card_query(), raw)
    forged = raw.replace(b"fit", b"fi2")
    response = client.post(
        f"{SHARES}?{qs}", data=forged, headers={**headers, "Content-Type": "application/json"}
    )
    assert response.status_code == 401
    with sessions() as session:
        assert session.scalars(select(Share)).all() == []


def test_a_hubspot_user_who_owns_nothing_or_not_this_deal_is_refused(card):
    client, _ = card
    qs, headers = signed("GET", CARD, card_query(email="intern@example.com"))
    response = client.get(f"{CARD}?{qs}", headers=headers)
    assert response.status_code == 403
    assert response.get_json()["error"]["details"]["reason"] == "not_an_owner"
    qs, headers = signed("GET", CARD, card_query(deal="d2"))
    assert client.get(f"{CARD}?{qs}", headers=headers).status_code == 404


@pytest.mark.parametrize("deal", ["d%00", "x" * 65, ""])
def test_bad_deal_ids_from_the_card_are_clear_errors(card, deal):
    client, _ = card
    qs, headers = signed("GET", CARD, card_query(deal=deal))
    assert client.get(f"{CARD}?{qs}", headers=headers).status_code in (404, 422)


def test_without_a_client_secret_the_card_answers_503(client, settings):
    for method, path in (("get", CARD), ("post", SHARES)):
        response = getattr(client, method)(f"{path}?portalId={PORTAL}")
        assert response.status_code == 503
        assert "HUBSPOT_CLIENT_SECRET" in response.get_json()["error"]["message"]


def test_verify_v3_checks_time_against_the_given_now():
    from datetime import UTC, datetime, timedelta

    now = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
    ts = str(int(now.timestamp() * 1000))
    sig = sign_v3(SECRET, "GET", "https://x.example/a?b=c", b"", ts)
    assert verify_v3(SECRET, "GET", "https://x.example/a?b=c", b"", sig, ts, now) is None
    assert verify_v3(
        SECRET, "GET", "https://x.example/a?b=c", b"", sig, ts, now + timedelta(minutes=6)
    )
    assert verify_v3(SECRET, "GET", "https://x.example/a?b=d", b"", sig, ts, now)
    assert verify_v3(SECRET, "GET", "https://x.example/a?b=c", b"", "é" + sig, ts, now)
    assert verify_v3(SECRET, "GET", "https://x.example/a?b=c", b"", sig, "12ab", now)


def test_verify_request_checks_hubspots_headers_against_our_public_url():
    from datetime import UTC, datetime

    from integrations.hubspot.signatures import verify_request

    now = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
    ts = str(int(now.timestamp() * 1000))
    sig = sign_v3(SECRET, "POST", "https://x.example/base/hook?a=b:c", b"{}", ts)
    headers = {"X-HubSpot-Signature-v3": sig, "X-HubSpot-Request-Timestamp": ts}
    check = ("https://x.example/base/", "POST", "/hook", b"a=b%3Ac", b"{}")
    assert verify_request(SECRET, *check, headers, now) is None
    assert verify_request(SECRET, "https://evil.example/base", *check[1:], headers, now)
    assert "missing" in verify_request(SECRET, *check, {"X-HubSpot-Signature-v3": sig}, now)
