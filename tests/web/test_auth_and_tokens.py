"""Bearer tokens, roles, and the token API: every failure answers the error shape and changes nothing."""

import pytest
from sqlalchemy import func, select

from enablement.db.models import ApiToken


def token_count(sessions) -> int:
    with sessions() as session:
        return session.scalar(select(func.count()).select_from(ApiToken))


def assert_error(response, status: int, code: str | None = None):
    assert response.status_code == status, response.get_data(as_text=True)
    body = response.get_json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "details"}
    if code:
        assert body["error"]["code"] == code


def test_a_request_without_a_token_is_401(client):
    assert_error(client.get("/api/v1/me"), 401, "unauthenticated")


@pytest.mark.parametrize(
    "header",
    [
        "Bearer",
        "Bearer ",
        "Basic dXNlcjpwYXNz",
        "Bearer enb_not-a-real-token",
        "Bearer " + "x" * 500,
        "token",
    ],
)
def test_a_malformed_or_unknown_token_is_401(client, header):
    assert_error(
        client.get("/api/v1/me", headers={"Authorization": header}), 401, "unauthenticated"
    )


def test_a_valid_token_identifies_its_role(client, token_for):
    token = token_for("sales", name="Sam", owner_id="42")
    response = client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200
    assert response.get_json() == {"name": "Sam", "role": "sales", "owner_id": "42"}


@pytest.mark.parametrize("role", ["sales", "marketing"])
def test_tokens_api_is_admin_only(client, auth, role):
    assert_error(client.get("/api/v1/tokens", headers=auth(role)), 403, "forbidden")


def test_admin_creates_a_token_that_is_shown_once_and_works(client, auth, sessions):
    response = client.post(
        "/api/v1/tokens", json={"role": "marketing", "name": "Mia"}, headers=auth("admin")
    )
    assert response.status_code == 201
    created = response.get_json()
    assert created["token"].startswith("enb_")
    me = client.get("/api/v1/me", headers={"Authorization": f"Bearer {created['token']}"})
    assert me.get_json()["role"] == "marketing"
    listed = client.get("/api/v1/tokens", headers=auth("admin")).get_json()["items"]
    assert all("token" not in item for item in listed)
    assert {item["name"] for item in listed} >= {"Mia"}


def test_a_revoked_token_stops_working(client, auth, token_for, sessions):
    token = token_for("sales", name="leaver")
    with sessions() as session:
        token_id = session.scalar(select(ApiToken.id).where(ApiToken.name == "leaver"))
    assert client.delete(f"/api/v1/tokens/{token_id}", headers=auth("admin")).status_code == 200
    assert_error(client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"}), 401)
    active = client.get("/api/v1/tokens", headers=auth("admin")).get_json()["items"]
    assert "leaver" not in {item["name"] for item in active}
    everything = client.get("/api/v1/tokens?all=true", headers=auth("admin")).get_json()["items"]
    (revoked,) = [item for item in everything if item["name"] == "leaver"]
    assert revoked["revoked_at"] is not None


def test_revoking_an_unknown_token_is_404(client, auth):
    assert_error(client.delete("/api/v1/tokens/999999", headers=auth("admin")), 404, "not_found")


@pytest.mark.parametrize(
    ("kwargs", "status", "code"),
    [
        ({"data": "{not json", "content_type": "application/json"}, 400, "bad_request"),
        (
            {"data": "role=sales&name=x", "content_type": "application/x-www-form-urlencoded"},
            415,
            "unsupported_media_type",
        ),
        ({"json": {"role": "sales", "name": "x", "is_admin": True}}, 422, "invalid_input"),
        ({"json": {"role": "root", "name": "x"}}, 422, "invalid_input"),
        ({"json": {"role": "sales", "name": 7}}, 422, "invalid_input"),
        ({"json": {"role": "sales", "name": ""}}, 422, "invalid_input"),
        ({"json": ["role", "sales"]}, 422, "invalid_input"),
        ({"json": {"role": "sales", "name": "x" * (6 * 1024 * 1024)}}, 413, "payload_too_large"),
    ],
    ids=[
        "malformed",
        "form-encoded",
        "unknown-field",
        "unknown-role",
        "wrong-type",
        "empty-name",
        "array",
        "oversized",
    ],
)
def test_bad_token_requests_get_the_error_shape_and_create_nothing(
    client, auth, sessions, kwargs, status, code
):
    headers = auth("admin")
    before = token_count(sessions)
    response = client.post("/api/v1/tokens", headers=headers, **kwargs)
    assert_error(response, status, code)
    assert token_count(sessions) == before


def test_hostile_token_names_come_back_as_data(client, auth):
    name = "<script>alert(1)</script>'; DROP TABLE api_tokens; --"
    response = client.post(
        "/api/v1/tokens", json={"role": "sales", "name": name}, headers=auth("admin")
    )
    assert response.status_code == 201
    assert response.get_json()["name"] == name
    assert response.mimetype == "application/json"


def test_cli_creates_a_token_printed_once(runner, sessions):
    result = runner("tokens", "create", "--role", "admin", "--name", "ops")
    assert result.exit_code == 0, result.stderr
    token = result.stdout.strip()
    assert token.startswith("enb_")
    with sessions() as session:
        stored = session.scalars(select(ApiToken)).one()
    assert stored.role == "admin" and token not in stored.token_hash


def test_cli_rejects_an_unknown_role_as_bad_usage(runner, sessions):
    result = runner("tokens", "create", "--role", "root", "--name", "x")
    assert result.exit_code == 2
    assert token_count(sessions) == 0


def test_cli_revoking_an_unknown_token_exits_1_with_a_message(runner):
    result = runner("tokens", "revoke", "12345")
    assert result.exit_code == 1
    assert "no token with id 12345" in result.stderr


def test_a_tokens_use_is_recorded_after_the_answer_and_at_most_every_few_minutes(
    app, sessions, token_for, monkeypatch
):
    from enablement.services import tokens

    token = token_for("sales")

    def last_used():
        with sessions() as session:
            return session.scalar(
                select(ApiToken.last_used_at).where(ApiToken.name == "test sales")
            )

    touches = []
    real_touch = tokens._touch
    monkeypatch.setattr(tokens, "_touch", lambda *a: touches.append(a) or real_touch(*a))
    client = app.test_client()
    response = client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200
    assert touches == [], "the touch waits for the answer to be sent"
    response.close()
    assert len(touches) == 1 and last_used() is not None
    again = client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
    again.close()
    assert len(touches) == 1, "not again within the granularity"


def test_a_failing_touch_after_the_answer_is_logged_and_loses_no_answer(
    client, token_for, monkeypatch, caplog
):
    from enablement.services import tokens

    def broken(*_):
        raise RuntimeError("database gone")

    monkeypatch.setattr(tokens, "_touch", broken)
    response = client.get("/api/v1/me", headers={"Authorization": f"Bearer {token_for('sales')}"})
    assert response.status_code == 200 and response.get_json()["role"] == "sales"
    response.close()
    assert "work after the answer failed" in caplog.text
