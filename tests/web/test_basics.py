"""Health, readiness, the error shape, auth and roles, the OpenAPI document."""

from sqlalchemy import select

from enablement.db.models import ApiToken
from enablement.services.tokens import hash_token


def test_healthz_answers_ok_without_the_database(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json()["status"] == "ok"


def test_healthz_says_which_instance_answers(client):
    import os
    from importlib.metadata import version

    body = client.get("/healthz").get_json()
    assert body["name"] == "enablement"
    assert body["version"] == version("enablement")
    assert body["pid"] == os.getpid()
    assert isinstance(body["host"], str) and body["host"]


def test_readyz_answers_ok_when_the_database_answers(client):
    assert client.get("/readyz").status_code == 200


def test_readyz_answers_503_when_the_database_is_gone(app, client, settings):
    from enablement import db

    container = app.extensions["enablement"]
    container.engine.dispose()
    container.engine = db.make_engine("postgresql+psycopg://nobody@127.0.0.1:1/none")
    response = client.get("/readyz")
    assert response.status_code == 503


def test_unknown_route_answers_the_error_shape(client):
    response = client.get("/api/v1/nope")
    assert response.status_code == 404
    body = response.get_json()
    assert body["error"]["code"] == "not_found"
    assert set(body["error"]) == {"code", "message", "details"}


def test_openapi_document_is_public_and_openapi_3(client):
    response = client.get("/api/v1/openapi.json")
    assert response.status_code == 200
    assert response.get_json()["openapi"].startswith("3.")


def test_every_api_route_is_in_the_openapi_document(app, client):
    spec = client.get("/api/v1/openapi.json").get_json()
    import re

    documented = {(path, method) for path, ops in spec["paths"].items() for method in ops}
    missing = []
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/v1") or rule.rule.endswith("openapi.json"):
            continue
        path = re.sub(r"<(?:[a-z_]+:)?([a-zA-Z_]+)>", r"{\1}", rule.rule)
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            if (path, method.lower()) not in documented:
                missing.append(f"{method} {path}")
    assert missing == []


def test_tokens_are_stored_only_as_hashes(sessions, token_for):
    token = token_for("sales")
    with sessions() as session:
        stored = session.scalars(select(ApiToken)).all()
    assert len(stored) == 1
    assert stored[0].token_hash == hash_token(token)
    assert token not in {stored[0].token_hash, stored[0].prefix, stored[0].name}


def test_answers_carry_conservative_security_headers(client):
    response = client.get("/", headers={"Accept": "text/html"})
    assert response.status_code == 200
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert "default-src 'self'" in response.headers["Content-Security-Policy"]


def test_a_browser_gets_an_html_error_page_with_the_message_escaped(client):
    response = client.get("/<script>x</script>", headers={"Accept": "text/html"})
    assert response.status_code == 404
    assert response.mimetype == "text/html"
    assert b"<script>x</script>" not in response.data


def test_the_openapi_document_describes_the_fields_and_the_errors(client):
    spec = client.get("/api/v1/openapi.json").get_json()
    schemas = spec["components"]["schemas"]
    for name in (
        "Asset",
        "AssetCreate",
        "AssetPatch",
        "ImportResult",
        "CoverageCell",
        "CoverageReport",
        "Effect",
        "EffectivenessReport",
        "StageTime",
        "Token",
        "StageMapItem",
        "ErrorBody",
    ):
        undescribed = [
            prop
            for prop, body in schemas[name]["properties"].items()
            if "description" not in body and "$ref" not in body
        ]
        assert not undescribed, (name, undescribed)
    props = [p for s in schemas.values() for p in s.get("properties", {}).values()]
    described = sum("description" in p for p in props)
    assert described / len(props) > 0.9, (described, len(props))
    for path, operations in spec["paths"].items():
        for method, op in operations.items():
            responses = op["responses"]
            if "{" in path:
                assert "404" in responses, (method, path)
            if op.get("security"):
                assert {"401", "403"} <= set(responses), (method, path)
            for status, answer in responses.items():
                if status == "414":  # gunicorn's own page, before the app sees the request
                    assert "text/html" in answer["content"]
                    continue
                if status.startswith(("4", "5")):
                    assert answer["description"], (method, path, status)
                    assert answer["content"]["application/json"]["schema"] == {
                        "$ref": "#/components/schemas/Error"
                    }
            for param in op.get("parameters", []):
                if param["in"] == "query" and path.startswith("/api/v1/reports"):
                    assert param.get("description"), (path, param["name"])
