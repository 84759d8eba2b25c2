"""Every route of the app, walked with every kind of caller: the allowed set is exactly the table."""

from __future__ import annotations

import re

import pytest

from enablement import create_app
from enablement.services.tokens import create_token, revoke_token, start_web_session
from tests.crm_data import insert_asset, insert_deals, insert_pipeline, sample_deal

SECRET = "matrix-hubspot-secret"
PUBLIC = "public"
SIGNED = "signed"  # HubSpot's v3 signature, never a bearer token
# (method, rule) -> the minimum role, PUBLIC, or SIGNED. A route missing here fails the test.
TABLE = {
    ("GET", "/static/<path:filename>"): PUBLIC,
    ("GET", "/healthz"): PUBLIC,
    ("GET", "/readyz"): PUBLIC,
    ("GET", "/"): PUBLIC,
    ("GET", "/l/<token>"): PUBLIC,
    ("GET", "/api/v1/openapi.json"): PUBLIC,
    ("POST", "/webhooks/hubspot"): SIGNED,
    ("GET", "/integrations/hubspot/card"): SIGNED,
    ("POST", "/integrations/hubspot/card/shares"): SIGNED,
    ("POST", "/integrations/hubspot/workflow-actions/suggest-content"): SIGNED,
    ("GET", "/api/v1/nudges/stats"): "admin",
    ("GET", "/api/v1/me"): "sales",
    ("GET", "/api/v1/tokens"): "admin",
    ("POST", "/api/v1/tokens"): "admin",
    ("DELETE", "/api/v1/tokens/<int:token_id>"): "admin",
    ("GET", "/api/v1/assets"): "sales",
    ("POST", "/api/v1/assets"): "marketing",
    ("GET", "/api/v1/assets/<asset_id:asset_id>"): "sales",
    ("PATCH", "/api/v1/assets/<asset_id:asset_id>"): "marketing",
    ("DELETE", "/api/v1/assets/<asset_id:asset_id>"): "marketing",
    ("POST", "/api/v1/assets/import"): "marketing",
    ("POST", "/api/v1/deals/import"): "admin",
    ("GET", "/api/v1/deals"): "sales",
    ("GET", "/api/v1/deals/<deal_id>"): "sales",
    ("GET", "/api/v1/deals/<deal_id>/recommendations"): "sales",
    ("POST", "/api/v1/deals/<deal_id>/shares"): "sales",
    ("GET", "/api/v1/shares"): "sales",
    ("GET", "/api/v1/stage-map"): "marketing",
    ("PUT", "/api/v1/stage-map/<pipeline_id>/<stage_id>"): "admin",
    ("GET", "/api/v1/reports/coverage"): "marketing",
    ("GET", "/api/v1/reports/cycle-time"): "marketing",
    ("GET", "/api/v1/reports/effectiveness"): "marketing",
    ("GET", "/api/v1/reports/recommendations"): "marketing",
    ("GET", "/api/v1/webhooks/stats"): "admin",
    ("GET", "/api/v1/jobs"): "admin",
    # Pages: a signed-in session (cookie), never a bearer token; signed out -> the sign-in page.
    ("GET", "/signin"): PUBLIC,
    ("POST", "/signin"): "signin-form",
    ("POST", "/signout"): "signout",
    ("GET", "/reports/coverage.css"): PUBLIC,
    ("GET", "/app"): "page:sales",
    ("GET", "/assets"): "page:sales",
    ("GET", "/assets/new"): "page:marketing",
    ("POST", "/assets/new"): "page:marketing",
    ("GET", "/assets/<asset_id>/edit"): "page:marketing",
    ("POST", "/assets/<asset_id>/edit"): "page:marketing",
    ("POST", "/assets/<asset_id>/retire"): "page:marketing",
    ("GET", "/assets/import"): "page:marketing",
    ("POST", "/assets/import"): "page:marketing",
    ("GET", "/deals/import"): "page:admin",
    ("POST", "/deals/import"): "page:admin",
    ("POST", "/assets/fetch-metadata"): "page:marketing",
    ("GET", "/deals"): "page:sales",
    ("GET", "/deals/<deal_id>"): "page:sales",
    ("POST", "/deals/<deal_id>/share"): "page:sales",
    ("GET", "/reports/coverage"): "page:marketing",
    ("GET", "/reports/effectiveness"): "page:marketing",
    ("GET", "/reports/cycle-time"): "page:marketing",
    ("GET", "/reports/adoption"): "page:marketing",
    ("GET", "/stage-map"): "page:marketing",
    ("POST", "/stage-map/<pipeline_id>/<stage_id>"): "page:admin",
}
RANK = {"sales": 0, "marketing": 1, "admin": 2}
# Callers: no header, a token that never existed, a revoked token, and one token per role.
CALLERS = ("none", "bad", "revoked", "sales-owner", "sales-team", "marketing", "admin")
CALLER_ROLE = {
    "sales-owner": "sales",
    "sales-team": "sales",
    "marketing": "marketing",
    "admin": "admin",
}
# Values for the path arguments: things that exist and that the owner-bound token may reach.
PATH_VALUES = {
    "asset_id": "a1",
    "deal_id": "d1",
    "pipeline_id": "p1",
    "stage_id": "disc",
    "token": "not-a-link",
    "filename": "missing.css",
}


@pytest.fixture
def matrix_app(settings):
    """The app with HubSpot's signature secret set, so signed routes check signatures."""
    app = create_app(settings, hubspot_client_secret=SECRET, hubspot_portal_id="62515")
    yield app
    app.extensions["enablement"].engine.dispose()


@pytest.fixture
def callers(matrix_app):
    """Authorization headers per caller, a world to act on, and a token id admins may revoke."""
    sessions = matrix_app.extensions["enablement"].sessions
    insert_pipeline(sessions)
    insert_deals(sessions, sample_deal("d1", owner_id="o1"), sample_deal("d2", owner_id="o2"))
    insert_asset(sessions, "a1")
    made = {
        "sales-owner": create_token(sessions, "sales", "rep o1", "o1"),
        "sales-team": create_token(sessions, "sales", "team"),
        "marketing": create_token(sessions, "marketing", "marketing"),
        "admin": create_token(sessions, "admin", "admin"),
        "revoked": create_token(sessions, "admin", "revoked admin"),
    }
    revoke_token(sessions, made["revoked"][1].id)
    headers = {name: {"Authorization": f"Bearer {token}"} for name, (token, _) in made.items()}
    headers["none"] = {}
    headers["bad"] = {"Authorization": "Bearer enb_this-token-was-never-issued"}
    # The pages' callers: a server-side session of the token (a never-issued one for "bad").
    session_ids = {
        name: start_web_session(sessions, record.id) for name, (_, record) in made.items()
    }
    session_ids["bad"] = "a-session-id-that-was-never-issued"
    clients = {}
    for caller in CALLERS:
        clients[caller] = matrix_app.test_client()
        if caller != "none":
            with clients[caller].session_transaction() as cookie:
                cookie["sid"] = session_ids[caller]
        # The pages' CSRF token of this session (form posts must carry it to reach the role check).
        form = clients[caller].get("/signin").get_data(as_text=True)
        clients[caller].csrf = re.search(r'name="csrf_token" value="([^"]+)"', form).group(1)
    victim = create_token(sessions, "sales", "to revoke")[1].id
    return headers, clients, victim


def app_routes(app) -> list[tuple[str, str]]:
    """(method, rule) of every route the app serves, HEAD and OPTIONS aside."""
    return sorted(
        (method, rule.rule)
        for rule in app.url_map.iter_rules()
        for method in rule.methods - {"HEAD", "OPTIONS"}
    )


def expected(requirement: str, caller: str) -> str:
    """What the caller must get: 'allowed', '401', '403' or 'signin' (redirected to sign in)."""
    if requirement == PUBLIC:
        return "allowed"
    if requirement == "signin-form":
        return "401"  # the form posted without a token: the sign-in page again, with 401
    if requirement == "signout":
        return "signin"
    if requirement.startswith("page:"):
        if caller in ("none", "bad", "revoked"):
            return "signin"
        requirement = requirement.removeprefix("page:")
    if requirement == SIGNED or caller in ("none", "bad", "revoked"):
        return "401"
    return "allowed" if RANK[CALLER_ROLE[caller]] >= RANK[requirement] else "403"


def observed(response) -> str:
    """The answer class: 401, 403, signin (a redirect to the sign-in page), or allowed."""
    if response.status_code in (401, 403):
        return str(response.status_code)
    if response.status_code in (302, 303) and "/signin" in response.headers.get("Location", ""):
        return "signin"
    return "allowed"


def test_the_table_lists_every_route_of_the_app_and_no_other(matrix_app):
    assert sorted(TABLE) == app_routes(matrix_app)


def test_every_route_answers_every_caller_exactly_as_the_table_says(matrix_app, callers):
    headers, clients, victim = callers
    wrong = []
    # Signing out ends the session every later page request needs: walk it last.
    for method, rule in sorted(app_routes(matrix_app), key=lambda r: TABLE.get(r) == "signout"):
        requirement = TABLE.get((method, rule))
        assert requirement is not None, f"{method} {rule} is not in the authorization table"
        path = rule
        for name, value in {**PATH_VALUES, "token_id": str(victim)}.items():
            path = path.replace(f"<{name}>", value).replace(f"<int:{name}>", value)
            path = path.replace(f"<{name}:{name}>", value)
            path = path.replace(f"<path:{name}>", value)
        for caller in CALLERS:
            page = requirement.startswith("page:") or requirement in ("signin-form", "signout")
            client = clients[caller]
            sent = {"X-CSRFToken": client.csrf} if page else headers[caller]
            response = client.open(path, method=method, headers=sent, json={})
            response.close()
            assert response.status_code < 500, (method, path, caller, response.data[:300])
            if observed(response) != expected(requirement, caller):
                wrong.append((method, rule, caller, response.status_code))
    assert wrong == [], "\n".join(map(str, wrong))


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/v1/deals/d2"),
        ("GET", "/api/v1/deals/d2/recommendations"),
        ("POST", "/api/v1/deals/d2/shares"),
    ],
)
def test_an_owner_bound_sales_token_cannot_reach_another_owners_deal(
    matrix_app, callers, method, path
):
    headers, _, _ = callers
    client = matrix_app.test_client()
    body = {"asset_id": "a1"}
    assert (
        client.open(path, method=method, headers=headers["sales-owner"], json=body).status_code
        == 404
    )
    assert client.open(
        path, method=method, headers=headers["sales-team"], json=body
    ).status_code in (
        200,
        201,
    )


def test_a_signed_in_page_session_never_authenticates_the_api(matrix_app, callers):
    _, clients, _ = callers
    for method, rule in app_routes(matrix_app):
        requirement = TABLE[(method, rule)]
        if requirement in RANK:
            path = rule.replace("<int:token_id>", "1")
            for name, value in PATH_VALUES.items():
                path = path.replace(f"<{name}>", value).replace(f"<{name}:{name}>", value)
            assert clients["admin"].open(path, method=method, json={}).status_code == 401, path
