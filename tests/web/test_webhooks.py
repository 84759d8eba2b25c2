"""POST /webhooks/hubspot: signature, durable and idempotent storage, exact history from disorder, hostile bodies."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select, text
from werkzeug.serving import make_server

from enablement import create_app
from enablement.db.models import Deal, StageChange, WebhookEvent
from integrations.hubspot.signatures import sign_v3
from tests.crm_data import T0, insert_deals, insert_pipeline, sample_deal
from tests.http_client import chunked_request

SECRET = "hubspot-client-secret"
PATH = "/webhooks/hubspot"
PORTAL = 62515


def ms(moment: datetime) -> int:
    """Epoch milliseconds, as HubSpot writes occurredAt and the request timestamp."""
    return int(moment.timestamp() * 1000)


def at(minutes: float) -> int:
    """occurredAt `minutes` after T0 (the sample deal's creation)."""
    return ms(T0 + timedelta(minutes=minutes))


def event(
    event_id: int, deal: int | str, minutes: float, kind: str = "deal.propertyChange", **extra
) -> dict:
    """A HubSpot v3 webhook event (subscription ids differ per subscription type, as in a real app)."""
    subscription = {
        "deal.creation": 11,
        "deal.propertyChange": 12,
        "deal.deletion": 13,
        "deal.merge": 14,
        "deal.restore": 15,
    }.get(kind, 99)
    return {
        "eventId": event_id,
        "subscriptionId": subscription,
        "portalId": PORTAL,
        "appId": 4242,
        "occurredAt": at(minutes),
        "subscriptionType": kind,
        "attemptNumber": 0,
        "objectId": int(deal),
        "changeSource": "CRM_UI",
        **extra,
    }


def stage(event_id: int, deal, minutes: float, stage_id: str) -> dict:
    """A dealstage change."""
    return event(event_id, deal, minutes, propertyName="dealstage", propertyValue=stage_id)


def prop(event_id: int, deal, minutes: float, name: str, value) -> dict:
    """A change of another deal property."""
    return event(event_id, deal, minutes, propertyName=name, propertyValue=value)


def signed_headers(
    body: bytes, url: str, secret: str = SECRET, now: datetime | None = None, method: str = "POST"
) -> dict:
    """The headers HubSpot sends with a v3-signed request."""
    timestamp = str(ms(now or datetime.now(UTC)))
    return {
        "Content-Type": "application/json",
        "X-HubSpot-Signature-v3": sign_v3(secret, method, url, body, timestamp),
        "X-HubSpot-Request-Timestamp": timestamp,
    }


def post(client, payload, query: str = "", base: str = "http://testserver", **sign):
    """POST a batch signed for base + path + query (HubSpot decodes a few escapes before signing)."""
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    from integrations.hubspot.signatures import signed_url

    url = signed_url(base, PATH, query)
    target = PATH + (f"?{query}" if query else "")
    return client.post(target, data=body, headers=signed_headers(body, url, **sign))


def history(sessions, deal_id: str) -> list[tuple[str, datetime]]:
    """The stored stage history of a deal, oldest first."""
    with sessions() as session:
        rows = session.execute(
            select(StageChange.stage_id, StageChange.entered_at)
            .where(StageChange.deal_id == deal_id)
            .order_by(StageChange.entered_at)
        )
        return [(s, t) for s, t in rows]


def deal(sessions, deal_id: str) -> Deal | None:
    """The stored deal."""
    with sessions() as session:
        return session.get(Deal, deal_id)


def stored_events(sessions) -> int:
    """Rows in the webhook inbox."""
    with sessions() as session:
        return session.scalar(select(func.count()).select_from(WebhookEvent))


@pytest.fixture
def hook_app(settings):
    """The app with a HubSpot client secret, the sample pipeline and deal 101 (disc at T0, demo 3 days later)."""
    app = create_app(settings, hubspot_client_secret=SECRET)
    sessions = app.extensions["enablement"].sessions
    insert_pipeline(sessions)
    insert_deals(sessions, sample_deal("101"))
    yield app
    app.extensions["enablement"].engine.dispose()


@pytest.fixture
def hook(hook_app):
    """A test client of the app with webhooks on."""
    return hook_app.test_client()


@pytest.fixture
def hook_sessions(hook_app):
    """The session factory of that app."""
    return hook_app.extensions["enablement"].sessions


DAY = 24 * 60


# -- the happy path ---------------------------------------------------------------------


def test_a_signed_stage_change_is_stored_and_becomes_the_current_stage(hook, hook_sessions):
    answer = post(hook, [stage(1, 101, 5 * DAY, "prop")])
    assert answer.status_code == 200, answer.get_json()
    assert answer.get_json()["applied"] == 1
    assert [s for s, _ in history(hook_sessions, "101")] == ["disc", "demo", "prop"]
    assert deal(hook_sessions, "101").current_stage_id == "prop"


def test_tracked_properties_change_the_deal(hook, hook_sessions):
    batch = [
        prop(1, 101, 10, "amount", "2500.50"),
        prop(2, 101, 10, "dealname", "Acme renewal"),
        prop(3, 101, 10, "hubspot_owner_id", "77"),
        prop(4, 101, 10, "hs_next_step", "call"),
    ]
    answer = post(hook, batch).get_json()
    assert (answer["applied"], answer["ignored"]) == (3, 1)
    stored = deal(hook_sessions, "101")
    assert (stored.amount, stored.name, stored.owner_id) == (2500.5, "Acme renewal", "77")


# -- the signature ----------------------------------------------------------------------


def test_a_tampered_body_is_refused_and_nothing_is_stored(hook, hook_sessions):
    body = json.dumps([stage(1, 101, 5 * DAY, "prop")]).encode()
    headers = signed_headers(body, "http://testserver" + PATH)
    answer = hook.post(PATH, data=body.replace(b"prop", b"lost"), headers=headers)
    assert answer.status_code == 401
    assert answer.get_json()["error"]["details"]["reason"] == "the signature does not match"
    assert stored_events(hook_sessions) == 0


def test_a_wrong_secret_is_refused(hook, hook_sessions):
    assert post(hook, [stage(1, 101, 5 * DAY, "prop")], secret="not-the-secret").status_code == 401
    assert stored_events(hook_sessions) == 0


@pytest.mark.parametrize("offset", [timedelta(minutes=-6), timedelta(minutes=6)])
def test_stale_and_far_future_timestamps_are_refused(hook, hook_sessions, offset):
    answer = post(hook, [stage(1, 101, 5 * DAY, "prop")], now=datetime.now(UTC) + offset)
    assert answer.status_code == 401
    assert "5 minutes" in answer.get_json()["error"]["details"]["reason"]
    assert stored_events(hook_sessions) == 0


def test_a_request_without_signature_headers_is_refused(hook, hook_sessions):
    body = json.dumps([stage(1, 101, 5 * DAY, "prop")]).encode()
    answer = hook.post(PATH, data=body, headers={"Content-Type": "application/json"})
    assert answer.status_code == 401
    assert stored_events(hook_sessions) == 0


def test_the_query_string_is_part_of_the_signed_url_with_hubspots_decoding(hook):
    # HubSpot signs the URL with %3A, %2F, ... decoded; other escapes (%20, %26) stay encoded.
    query = "source=hs%3Aprod&path=a%2Fb&note=a%20b%26c"
    assert post(hook, [stage(1, 101, 5 * DAY, "prop")], query=query).status_code == 200
    # The same body signed without the query string does not pass for a URL that has one.
    body = json.dumps([stage(2, 101, 6 * DAY, "won")]).encode()
    headers = signed_headers(body, "http://testserver" + PATH)
    assert hook.post(f"{PATH}?{query}", data=body, headers=headers).status_code == 401


def test_the_host_header_cannot_change_the_url_checked(hook):
    body = json.dumps([stage(1, 101, 5 * DAY, "prop")]).encode()
    forged = signed_headers(body, "http://evil.example" + PATH)
    answer = hook.post(PATH, data=body, headers={**forged, "Host": "evil.example"})
    assert answer.status_code == 401
    honest = signed_headers(body, "http://testserver" + PATH)
    assert hook.post(PATH, data=body, headers={**honest, "Host": "evil.example"}).status_code == 200


def test_behind_a_proxy_the_public_base_url_with_a_path_is_what_hubspot_signed(settings):
    app = create_app(
        settings, hubspot_client_secret=SECRET, public_base_url="https://crm.example.com/enablement"
    )
    sessions = app.extensions["enablement"].sessions
    insert_pipeline(sessions)
    insert_deals(sessions, sample_deal("101"))
    body = json.dumps([stage(1, 101, 5 * DAY, "prop")]).encode()
    headers = signed_headers(body, "https://crm.example.com/enablement/webhooks/hubspot?a=1")
    client = app.test_client()
    # The proxy strips /enablement (and may say so in SCRIPT_NAME); either way the check holds.
    assert client.post(f"{PATH}?a=1", data=body, headers=headers).status_code == 200
    answer = client.post(
        f"{PATH}?a=1",
        data=body,
        headers=headers,
        environ_base={"SCRIPT_NAME": "/enablement"},
    )
    assert answer.status_code == 200 and answer.get_json()["duplicates"] == 1
    app.extensions["enablement"].engine.dispose()


def test_without_a_client_secret_webhooks_answer_503(client):
    answer = post(client, [stage(1, 101, 5 * DAY, "prop")])
    assert answer.status_code == 503
    assert "HUBSPOT_CLIENT_SECRET" in answer.get_json()["error"]["message"]


# -- idempotence and order --------------------------------------------------------------


def test_a_repeated_delivery_is_counted_as_duplicate_and_changes_nothing(hook, hook_sessions, auth):
    batch = [stage(1, 101, 5 * DAY, "prop"), prop(2, 101, 5 * DAY, "amount", "10")]
    first = post(hook, batch).get_json()
    again = post(hook, batch).get_json()
    assert (first["stored"], first["applied"], first["duplicates"]) == (2, 2, 0)
    assert (again["stored"], again["applied"], again["duplicates"]) == (0, 0, 2)
    assert len(history(hook_sessions, "101")) == 3
    stats = hook.get("/api/v1/webhooks/stats", headers=auth("admin")).get_json()
    assert stats == {
        "stored": 2, "duplicates": 2, "pending": 0, "applied": 2, "ignored": 0, "rejected": 0,
    }  # fmt: skip


def test_the_same_event_twice_in_one_batch_is_stored_once(hook, hook_sessions):
    answer = post(hook, [stage(1, 101, 5 * DAY, "prop")] * 2).get_json()
    assert (answer["stored"], answer["duplicates"], answer["applied"]) == (1, 1, 1)
    assert stored_events(hook_sessions) == 1


def test_stage_changes_arriving_out_of_order_give_the_exact_history(hook, hook_sessions):
    moves = [
        stage(1, 101, 4 * DAY, "prop"),
        stage(2, 101, 5 * DAY, "demo"),
        stage(3, 101, 6 * DAY, "won"),
    ]
    for batch in ([moves[2]], [moves[0]], [moves[1]]):
        assert post(hook, batch).status_code == 200
    expected = [
        ("disc", T0),
        ("demo", T0 + timedelta(days=3)),
        ("prop", T0 + timedelta(days=4)),
        ("demo", T0 + timedelta(days=5)),
        ("won", T0 + timedelta(days=6)),
    ]
    assert history(hook_sessions, "101") == expected
    stored = deal(hook_sessions, "101")
    assert stored.current_stage_id == "won"
    assert stored.closed_at == T0 + timedelta(days=6)


def test_a_late_stage_event_never_moves_the_deal_back(hook, hook_sessions):
    post(hook, [stage(1, 101, 5 * DAY, "prop")])
    post(hook, [stage(2, 101, 4 * DAY, "disc")])  # happened before 'prop', arrives after it
    assert deal(hook_sessions, "101").current_stage_id == "prop"
    assert [s for s, _ in history(hook_sessions, "101")] == ["disc", "demo", "disc", "prop"]


def test_a_late_property_change_does_not_overwrite_a_newer_one(hook, hook_sessions):
    post(hook, [prop(1, 101, 20, "amount", "200"), prop(2, 101, 20, "dealname", "New")])
    answer = post(hook, [prop(3, 101, 10, "amount", "100"), prop(4, 101, 30, "dealname", "Newest")])
    assert (answer.get_json()["applied"], answer.get_json()["ignored"]) == (1, 1)
    stored = deal(hook_sessions, "101")
    assert (stored.amount, stored.name) == (200.0, "Newest")


def test_deletion_and_restore_follow_occurred_at_not_arrival(hook, hook_sessions):
    post(hook, [event(1, 101, 50, "deal.restore")])
    post(hook, [event(2, 101, 40, "deal.deletion")])  # older than the restore: ignored
    assert deal(hook_sessions, "101").deleted_at is None
    post(hook, [event(3, 101, 60, "deal.deletion")])
    assert deal(hook_sessions, "101").deleted_at == T0 + timedelta(minutes=60)


def test_a_merge_retires_the_merged_deals_into_the_new_one_with_their_combined_history(
    hook, hook_sessions
):
    insert_deals(hook_sessions, sample_deal("102", history=((1, "disc"), (2, "prop"))))
    merge = event(
        1, 103, 5 * DAY, "deal.merge", primaryObjectId=101, mergedObjectIds=[102], newObjectId=103
    )
    assert post(hook, [merge]).get_json()["applied"] == 1
    merged = deal(hook_sessions, "103")
    assert merged.name == "Acme 101" and merged.pipeline_id == "p1"
    assert [s for s, _ in history(hook_sessions, "103")] == ["disc", "disc", "prop", "demo"]
    assert merged.current_stage_id == "demo"
    for loser in ("101", "102"):
        gone = deal(hook_sessions, loser)
        assert gone.merged_into_id == "103" and gone.deleted_at == T0 + timedelta(days=5)


def test_an_event_for_an_unknown_deal_creates_it_in_its_stages_pipeline(hook, hook_sessions):
    answer = post(hook, [event(1, 555, 0, "deal.creation"), stage(2, 555, 0, "disc")])
    assert answer.get_json()["applied"] == 2
    created = deal(hook_sessions, "555")
    assert (created.pipeline_id, created.current_stage_id) == ("p1", "disc")
    assert created.created_at == T0


# -- hostile and malformed bodies -------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b'{"eventId": 1}',
        b"[" * 100_000 + b"]" * 100_000,
        b'[{"eventId": NaN}]',
        b"[1, 2" + b"9" * 5000 + b"]",
        '["caf\xe9"]'.encode("latin-1"),
    ],
    ids=["not-json", "object", "deep-nesting", "nan", "huge-integer-literal", "not-utf8"],
)
def test_a_signed_body_that_is_not_an_event_array_is_a_400(hook, hook_sessions, body):
    answer = post(hook, body)
    assert answer.status_code == 400
    assert answer.get_json()["error"]["code"] == "bad_request"
    assert stored_events(hook_sessions) == 0


def test_malformed_events_are_recorded_as_rejected_without_blocking_the_others(
    hook, hook_sessions, auth
):
    good = stage(1, 101, 5 * DAY, "prop")
    nul = {**stage(2, 101, 6 * DAY, "won"), "propertyValue": "w\u0000on"}
    bad_time = {**stage(4, 101, 6 * DAY, "won"), "occurredAt": 10**30}
    wrong_type = {**stage(5, 101, 6 * DAY, "won"), "objectId": "abc"}
    huge_id = {**stage(6, 101, 6 * DAY, "won"), "eventId": "HUGE"}
    unsupported = event(7, 101, 6 * DAY, "deal.teleport")
    nested = {**stage(8, 101, 6 * DAY, "won"), "propertyValue": {"a": [1]}}
    body = json.dumps([good, nul, bad_time, wrong_type, huge_id, unsupported, nested, 5, "x"])
    body = body.replace('"HUGE"', "1e400")  # a number too large for a float
    # A lone surrogate, escaped as JSON allows: not valid Unicode, so the event is refused.
    body = (
        body[:-1]
        + ', {"eventId": 3, "subscriptionId": 12, "portalId": 1, "occurredAt": 1767600000000, '
    )
    body += (
        '"subscriptionType": "deal.propertyChange", "objectId": 101, "propertyName": "dealstage", '
    )
    body += '"propertyValue": "\\ud800"}]'
    answer = post(hook, body.encode())
    assert answer.status_code == 200, answer.get_json()
    counts = answer.get_json()
    assert (counts["applied"], counts["rejected"]) == (1, 9)
    assert deal(hook_sessions, "101").current_stage_id == "prop"
    with hook_sessions() as session:
        reasons = list(
            session.scalars(select(WebhookEvent.error).where(WebhookEvent.status == "rejected"))
        )
    assert any("NUL" in r for r in reasons)
    assert any("surrogate" in r for r in reasons)
    assert any("occurredAt" in r for r in reasons)
    assert any("unsupported subscriptionType" in r for r in reasons)
    # The same malformed batch again is stored once: every rejected event has a stable key.
    again = post(hook, body.encode()).get_json()
    assert (again["stored"], again["duplicates"]) == (0, 10)
    assert hook.get("/api/v1/webhooks/stats", headers=auth("admin")).get_json()["rejected"] == 9


def test_more_than_100_events_are_accepted(hook, hook_sessions):
    batch = [prop(i, 101, i, "amount", str(i)) for i in range(1, 151)]
    answer = post(hook, batch).get_json()
    assert (answer["stored"], answer["applied"]) == (150, 150)
    assert deal(hook_sessions, "101").amount == 150.0


def test_a_body_over_1_mb_is_a_413_by_content_length(hook, hook_sessions):
    body = json.dumps([prop(1, 101, 1, "dealname", "x" * (1024 * 1024))]).encode()
    answer = post(hook, body)
    assert answer.status_code == 413
    assert stored_events(hook_sessions) == 0


def _chunked_post(port: int, body: bytes, headers: dict) -> int:
    """POST with Transfer-Encoding: chunked over real HTTP; the status."""
    return chunked_request(port, "POST", PATH, body, headers, timeout=10)[0]


def test_a_chunked_body_is_read_up_to_the_limit_only(hook_app, hook_sessions):
    server = make_server("127.0.0.1", 0, hook_app, threaded=True)
    # NOTE: request threads are joined at server_close, so the work each answer leaves for
    # after it is sent (the pending-events pass) is done before the database goes away.
    server.daemon_threads = False
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://testserver{PATH}"
        small = json.dumps([stage(1, 101, 5 * DAY, "prop")]).encode()
        assert _chunked_post(server.port, small, signed_headers(small, url)) == 200
        big = json.dumps([prop(2, 101, 1, "dealname", "x" * (2 * 1024 * 1024))]).encode()
        assert _chunked_post(server.port, big, signed_headers(big, url)) == 413
    finally:
        server.shutdown()
        server.server_close()
        hook_app.extensions["enablement"].jobs.wait(30)
    assert stored_events(hook_sessions) == 1


def test_the_stats_route_is_for_admins(hook, auth):
    assert hook.get("/api/v1/webhooks/stats").status_code == 401
    assert hook.get("/api/v1/webhooks/stats", headers=auth("sales")).status_code == 403


def test_a_database_failure_answers_503_so_hubspot_retries(
    hook, hook_app, hook_sessions, database_url
):
    if not database_url.startswith("sqlite"):
        pytest.skip(
            "the table is renamed on SQLite only, to keep the shared PostgreSQL schema intact"
        )
    engine = hook_app.extensions["enablement"].engine
    with engine.begin() as conn:
        conn.execute(text("ALTER TABLE webhook_events RENAME TO webhook_events_away"))
    answer = post(hook, [stage(1, 101, 5 * DAY, "prop")])
    assert answer.status_code == 503
    with engine.begin() as conn:
        conn.execute(text("ALTER TABLE webhook_events_away RENAME TO webhook_events"))
    assert deal(hook_sessions, "101").current_stage_id == "demo"
    assert post(hook, [stage(1, 101, 5 * DAY, "prop")]).status_code == 200


def test_events_from_another_hubspot_account_are_rejected(settings):
    app = create_app(settings, hubspot_client_secret=SECRET, hubspot_portal_id="999")
    sessions = app.extensions["enablement"].sessions
    insert_pipeline(sessions)
    insert_deals(sessions, sample_deal("101"))
    answer = post(app.test_client(), [stage(1, 101, 5 * DAY, "prop")]).get_json()
    assert (answer["rejected"], answer["applied"]) == (1, 0)
    assert deal(sessions, "101").current_stage_id == "demo"
    with sessions() as session:
        assert "not 999" in session.scalar(select(WebhookEvent.error))
    app.extensions["enablement"].engine.dispose()


def test_events_stored_but_never_applied_are_applied_by_a_later_delivery(hook, hook_sessions):
    from enablement.db.webhooks import store_events
    from enablement.services.webhooks import _row
    from integrations.hubspot.webhooks import read_batch

    # As if the database failed between the inbox commit and the apply, two minutes ago.
    stranded = read_batch(json.dumps([stage(1, 101, 5 * DAY, "prop")]).encode()).events
    with hook_sessions.begin() as session:
        rows = [
            {**_row(e), "received_at": datetime.now(UTC) - timedelta(minutes=2)} for e in stranded
        ]
        store_events(session, rows)
    assert deal(hook_sessions, "101").current_stage_id == "demo"
    answer = post(hook, [prop(2, 101, 10, "amount", "5")])
    assert answer.status_code == 200
    answer.close()  # the pass runs once the answer is sent, as a server closes it
    assert deal(hook_sessions, "101").current_stage_id == "prop"
    with hook_sessions() as session:
        assert set(session.scalars(select(WebhookEvent.status))) == {"applied"}


def test_a_change_to_an_unknown_pipeline_waits_with_its_reason(hook, hook_sessions, auth):
    answer = post(hook, [prop(1, 101, 10, "pipeline", "p-new")]).get_json()
    assert answer["pending"] == 1
    assert deal(hook_sessions, "101").pipeline_id == "p1"
    with hook_sessions() as session:
        assert "unknown pipeline" in session.scalar(select(WebhookEvent.error))
    assert hook.get("/api/v1/webhooks/stats", headers=auth("admin")).get_json()["pending"] == 1


def test_merging_back_after_a_merge_keeps_one_deal_alive(hook, hook_sessions):
    insert_deals(hook_sessions, sample_deal("102", history=((1, "disc"), (2, "prop"))))
    a_takes_b = event(1, 101, 5 * DAY, "deal.merge", primaryObjectId=101, mergedObjectIds=[102])
    b_takes_a = event(2, 102, 6 * DAY, "deal.merge", primaryObjectId=102, mergedObjectIds=[101])
    assert post(hook, [a_takes_b]).get_json()["applied"] == 1
    assert post(hook, [b_takes_a]).get_json()["ignored"] == 1
    survivor, gone = deal(hook_sessions, "101"), deal(hook_sessions, "102")
    assert survivor.deleted_at is None and survivor.merged_into_id is None
    assert gone.merged_into_id == "101"
    # Both in one batch, in either order of arrival: the same outcome.
    assert post(hook, [b_takes_a, a_takes_b]).get_json()["duplicates"] == 2
    assert deal(hook_sessions, "101").deleted_at is None
