"""Hostile input on every path: a clear 4xx, nothing stored, never a 500 (issue 9, part A)."""

from __future__ import annotations

import io
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select
from werkzeug.datastructures import FileStorage, MultiDict
from werkzeug.serving import make_server
from werkzeug.test import encode_multipart

from enablement.db.models import ApiToken, Asset
from tests.asset_data import asset_record, jsonl
from tests.crm_data import insert_asset, insert_deals, insert_pipeline, sample_deal
from tests.http_client import chunked_request

IMPORT = "/api/v1/assets/import"


def assets_stored(sessions) -> int:
    """How many assets the database holds."""
    with sessions() as session:
        return session.scalar(select(func.count()).select_from(Asset))


def oversized_jsonl(limit: int) -> bytes:
    """Valid asset JSON Lines just past `limit` bytes (every line would import on its own)."""
    lines, size, i = [], 0, 0
    while size <= limit + 64 * 1024:
        i += 1
        line = (json.dumps(asset_record(i, summary="s" * 400)) + "\n").encode()
        lines.append(line)
        size += len(line)
    return b"".join(lines)


@pytest.fixture
def served(app):
    """The app under a real threaded WSGI server (werkzeug's, which sets wsgi.input_terminated)."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    # NOTE: request threads are joined at server_close, so the work an answer leaves for after
    # it is sent (a token's last-used touch) is done before the app's database goes away.
    server.daemon_threads = False
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.port
    server.shutdown()
    server.server_close()


# --- 1. oversized bodies, whatever the framing ------------------------------------------------


def test_a_chunked_import_over_the_limit_is_413_and_imports_nothing(served, app, auth, sessions):
    body = oversized_jsonl(app.config["MAX_CONTENT_LENGTH"])
    headers = {**auth("marketing"), "Content-Type": "application/x-ndjson"}
    status, answer = chunked_request(served, "POST", IMPORT + "?skip_invalid=true", body, headers)
    assert status == 413
    assert answer["error"]["code"] == "payload_too_large"
    assert assets_stored(sessions) == 0


def test_a_chunked_import_under_the_limit_imports_everything(served, auth, sessions):
    body = jsonl(asset_record(i) for i in range(1, 301)).encode()
    headers = {**auth("marketing"), "Content-Type": "application/x-ndjson"}
    status, answer = chunked_request(served, "POST", IMPORT, body, headers)
    assert (status, answer["created"]) == (200, 300)
    assert assets_stored(sessions) == 300


def test_a_chunked_json_body_over_the_limit_is_413_not_400(served, app, auth, sessions):
    limit = app.config["MAX_CONTENT_LENGTH"]
    body = json.dumps(asset_record(1, body="x" * (limit + 10))).encode()
    headers = {**auth("marketing"), "Content-Type": "application/json"}
    status, answer = chunked_request(served, "POST", "/api/v1/assets", body, headers)
    assert (status, answer["error"]["code"]) == (413, "payload_too_large")
    assert assets_stored(sessions) == 0


@pytest.mark.parametrize(
    ("path", "content_type", "role"),
    [
        (IMPORT, "application/x-ndjson", "marketing"),
        (IMPORT, "text/csv", "marketing"),
        (IMPORT, "application/json", "marketing"),
        ("/api/v1/assets", "application/json", "marketing"),
        ("/api/v1/tokens", "application/json", "admin"),
    ],
)
def test_a_terminated_stream_over_the_limit_is_413_on_every_body_route(
    client, app, auth, sessions, path, content_type, role
):
    # As gunicorn hands a chunked body to the app: no Content-Length, wsgi.input_terminated set.
    body = oversized_jsonl(app.config["MAX_CONTENT_LENGTH"])
    response = client.post(
        path,
        input_stream=io.BytesIO(body),
        content_type=content_type,
        headers=auth(role),
        environ_overrides={"wsgi.input_terminated": True},
    )
    assert response.status_code == 413
    assert response.get_json()["error"]["code"] == "payload_too_large"
    assert assets_stored(sessions) == 0


def test_a_terminated_stream_under_the_limit_is_read_whole(client, auth, sessions):
    body = jsonl(asset_record(i) for i in range(1, 51)).encode()
    response = client.post(
        IMPORT,
        input_stream=io.BytesIO(body),
        content_type="application/x-ndjson",
        headers=auth("marketing"),
        environ_overrides={"wsgi.input_terminated": True},
    )
    assert (response.status_code, response.get_json()["created"]) == (200, 50)


def test_a_chunked_multipart_import_over_the_limit_is_413(served, app, auth, sessions):
    body = oversized_jsonl(app.config["MAX_CONTENT_LENGTH"])
    boundary, encoded = encode_multipart(
        MultiDict({"file": FileStorage(io.BytesIO(body), "assets.jsonl")})
    )
    headers = {**auth("marketing"), "Content-Type": f"multipart/form-data; boundary={boundary}"}
    status, answer = chunked_request(served, "POST", IMPORT, encoded, headers)
    assert (status, answer["error"]["code"]) == (413, "payload_too_large")
    assert assets_stored(sessions) == 0


# --- 2. classes of input the database cannot store ---------------------------------------------

NUL = "a\x00b"
SURROGATE = "\\ud800"  # in JSON text: a lone high surrogate
# Routes that read a JSON body, with a body that is valid apart from the hostile value.
JSON_ROUTES = [
    ("POST", "/api/v1/tokens", "admin", lambda v: {"role": "sales", "name": v}),
    ("POST", "/api/v1/assets", "marketing", lambda v: asset_record(1, title=v)),
    ("PATCH", "/api/v1/assets/a1", "marketing", lambda v: {"title": v}),
    ("POST", IMPORT, "marketing", lambda v: [asset_record(1, author=v)]),
    ("PUT", "/api/v1/stage-map/p1/disc", "admin", lambda v: {"buying_stage": v}),
    ("POST", "/api/v1/deals/d1/shares", "sales", lambda v: {"asset_id": v}),
]


@pytest.fixture
def world(sessions):
    """A pipeline, a deal and an asset, so that only the hostile value can be wrong."""
    insert_pipeline(sessions)
    insert_deals(sessions, sample_deal("d1"))
    insert_asset(sessions, "a1")


def send_json_text(client, method, path, text: str, headers):
    """Send raw JSON text (so that escapes like \\ud800 reach the parser as written)."""
    return client.open(
        path, method=method, data=text.encode(), content_type="application/json", headers=headers
    )


def route_id(route) -> str:
    """A readable test id for a route."""
    return f"{route[0]} {route[1]}"


@pytest.mark.parametrize("route", JSON_ROUTES, ids=route_id)
def test_a_nul_byte_in_any_json_field_is_422_naming_the_field(client, auth, world, sessions, route):
    method, path, role, body = route
    before = assets_stored(sessions)
    response = client.open(path, method=method, json=body(NUL), headers=auth(role))
    assert response.status_code == 422, response.get_json()
    assert "NUL" in response.get_json()["error"]["message"]
    assert assets_stored(sessions) == before


@pytest.mark.parametrize("route", JSON_ROUTES, ids=route_id)
def test_a_lone_surrogate_in_any_json_field_is_422(client, auth, world, sessions, route):
    method, path, role, body = route
    text = json.dumps(body("MARK")).replace("MARK", SURROGATE)
    response = send_json_text(client, method, path, text, auth(role))
    assert response.status_code == 422, response.get_json()
    assert "surrogate" in response.get_json()["error"]["message"]


@pytest.mark.parametrize("route", JSON_ROUTES, ids=route_id)
@pytest.mark.parametrize("depth", [40, 100_000])
def test_deeply_nested_json_is_a_4xx_never_a_recursion_error(client, auth, world, route, depth):
    method, path, role, _ = route
    text = "[" * depth + "]" * depth
    response = send_json_text(client, method, path, text, auth(role))
    assert response.status_code in (400, 422)
    assert "deep" in json.dumps(response.get_json())


@pytest.mark.parametrize("route", JSON_ROUTES, ids=route_id)
@pytest.mark.parametrize("number", ["1" + "0" * 30, "-1" + "0" * 30, "1e400", "NaN", "Infinity"])
def test_huge_and_non_finite_numbers_are_4xx(client, auth, world, route, number):
    method, path, role, body = route
    text = json.dumps(body("MARK")).replace('"MARK"', number)
    response = send_json_text(client, method, path, text, auth(role))
    assert response.status_code in (400, 422), response.get_json()


# Every GET route with a query, and the routes with a path id.
QUERY_ROUTES = [
    ("/api/v1/assets", "sales", "q"),
    ("/api/v1/assets", "sales", "persona"),
    ("/api/v1/deals", "sales", "q"),
    ("/api/v1/deals", "sales", "owner_id"),
    ("/api/v1/shares", "sales", "deal_id"),
    ("/api/v1/stage-map", "marketing", "pipeline_id"),
    ("/api/v1/reports/coverage", "sales", "pipeline_id"),
    ("/api/v1/reports/cycle-time", "sales", "pipeline_id"),
    ("/api/v1/reports/effectiveness", "sales", "pipeline_id"),
    ("/api/v1/deals/d1/recommendations", "sales", "limit"),
    ("/api/v1/tokens", "admin", "all"),
    ("/l/xyz", None, "utm_source"),
    ("/", None, "q"),
]


@pytest.mark.parametrize(("path", "role", "name"), QUERY_ROUTES)
def test_a_nul_byte_in_any_query_parameter_is_a_4xx(client, auth, world, path, role, name):
    headers = auth(role) if role else {}
    for params in ({name: NUL}, {NUL: "x"}):
        response = client.get(path, query_string=params, headers=headers)
        assert 400 <= response.status_code < 500, (params, response.data[:200])


PATH_ROUTES = [
    ("GET", "/api/v1/assets/{}", "sales"),
    ("PATCH", "/api/v1/assets/{}", "marketing"),
    ("DELETE", "/api/v1/assets/{}", "marketing"),
    ("GET", "/api/v1/deals/{}", "sales"),
    ("GET", "/api/v1/deals/{}/recommendations", "sales"),
    ("POST", "/api/v1/deals/{}/shares", "sales"),
    ("PUT", "/api/v1/stage-map/{}/disc", "admin"),
    ("PUT", "/api/v1/stage-map/p1/{}", "admin"),
    ("GET", "/l/{}", None),
]


@pytest.mark.parametrize(("method", "path", "role"), PATH_ROUTES)
def test_a_nul_byte_in_any_path_id_is_404(client, auth, world, method, path, role):
    headers = auth(role) if role else {}
    response = client.open(path.format("a1%00x"), method=method, headers=headers, json={})
    assert response.status_code == 404
    assert "Location" not in response.headers


@pytest.mark.parametrize("token_id", ["99999999999999999999", "2147483648", str(2**63)])
def test_an_integer_path_id_out_of_the_database_range_is_404(client, auth, sessions, token_id):
    response = client.delete(f"/api/v1/tokens/{token_id}", headers=auth("admin"))
    assert response.status_code == 404
    with sessions() as session:
        assert session.scalar(select(func.count()).where(ApiToken.revoked_at.is_not(None))) == 0


def test_an_integer_path_id_in_range_still_reaches_the_route(client, auth):
    response = client.delete("/api/v1/tokens/2147483647", headers=auth("admin"))
    assert response.status_code == 404
    assert "no token with id 2147483647" in response.get_json()["error"]["message"]


def test_a_nul_byte_in_a_header_is_400(client, auth, world):
    headers = {**auth("sales"), "Idempotency-Key": NUL}
    response = client.post("/api/v1/deals/d1/shares", json={"asset_id": "a1"}, headers=headers)
    assert response.status_code == 400


# --- files: the same classes in JSON Lines and CSV ---------------------------------------------

FILE_CASES = [
    ("jsonl-nul", "application/x-ndjson", jsonl([asset_record(1, title=NUL)]).encode()),
    (
        "jsonl-surrogate",
        "application/x-ndjson",
        jsonl([asset_record(1, title="MARK")]).replace("MARK", SURROGATE).encode(),
    ),
    (
        "jsonl-deep",
        "application/x-ndjson",
        ('{"id": "a", "title": ' + "[" * 50_000 + "]" * 50_000 + "}\n").encode(),
    ),
    ("jsonl-huge", "application/x-ndjson", b'{"id": "a", "display_order": 1' + b"0" * 30 + b"}\n"),
    ("jsonl-nan", "application/x-ndjson", b'{"id": "a", "display_order": NaN}\n'),
    (
        "csv-nul",
        "text/csv",
        b"id,title,url,kind\na1,Ti\x00tle,https://insights.example.com/1,article\n",
    ),
    (
        "csv-bad-utf8",
        "text/csv",
        b"id,title,url,kind\na1,\xed\xa0\x80,https://x.example/1,article\n",
    ),
]


@pytest.mark.parametrize(
    ("content", "body"), [c[1:] for c in FILE_CASES], ids=[c[0] for c in FILE_CASES]
)
def test_hostile_files_are_a_4xx_and_import_nothing(client, auth, sessions, content, body):
    for skip in ("false", "true"):
        response = client.post(
            f"{IMPORT}?skip_invalid={skip}",
            data=body,
            content_type=content,
            headers=auth("marketing"),
        )
        assert 400 <= response.status_code < 500 or response.get_json()["created"] == 0
        assert assets_stored(sessions) == 0


# --- 3. smaller: CSV formulas, Allow, internal URLs, token prefixes, OpenAPI ------------------


def test_an_asset_csv_export_escapes_formula_cells_and_imports_back_unchanged(
    client, auth, runner, sessions, tmp_path
):
    record = asset_record(1, title='=HYPERLINK("http://evil.example")', author="@admin")
    assert client.post("/api/v1/assets", json=record, headers=auth("marketing")).status_code == 201
    out = tmp_path / "assets.csv"
    assert runner("export", "assets", "--format", "csv", "--output", str(out)).exit_code == 0
    text = out.read_text()
    assert "'=HYPERLINK" in text and "'@admin" in text
    assert ",=HYPERLINK" not in text and ",@admin" not in text
    result = runner("import", "assets", str(out))
    assert result.exit_code == 0, result.output
    assert "1 unchanged" in result.output
    with sessions() as session:
        assert session.get(Asset, "asset-1").title.startswith("=HYPERLINK")


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("PUT", "/api/v1/assets", {"GET", "HEAD", "OPTIONS", "POST"}),
        ("POST", "/api/v1/tokens/1", {"DELETE", "OPTIONS"}),
        ("DELETE", "/healthz", {"GET", "HEAD", "OPTIONS"}),
    ],
)
def test_a_405_names_the_allowed_methods(client, auth, method, path, allowed):
    response = client.open(path, method=method, headers=auth("admin"))
    assert response.status_code == 405
    assert set(response.headers["Allow"].split(", ")) == allowed
    assert response.get_json()["error"]["code"] == "method_not_allowed"


@pytest.mark.parametrize(
    "url",
    [
        "http://localhost/x",
        "http://app.localhost/",
        "http://127.0.0.1:8080/",
        "http://127.1/",
        "http://2130706433/",
        "http://0x7f000001/",
        "http://10.0.0.5/",
        "http://172.16.3.4/",
        "http://192.168.1.10/",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]/",
        "http://[fc00::1]/",
        "http://[fe80::1]/",
        "http://[::ffff:127.0.0.1]/",
        "http://[2002:7f00:1::]/",
        "http://[64:ff9b::a9fe:a9fe]/latest/meta-data/",
        "http://[2001:0:4136:e378:8000:63bf:80ff:fffe]/",
        "http://0.0.0.0/",
        "http://metadata.google.internal/computeMetadata/v1/",
        "https://user:secret@insights.example.com/",
        "https://user@insights.example.com/",
    ],
)
def test_asset_urls_to_internal_hosts_or_with_credentials_are_refused(client, auth, sessions, url):
    for send in (
        lambda: client.post(
            "/api/v1/assets", json=asset_record(1, url=url), headers=auth("marketing")
        ),
        lambda: client.post(IMPORT, json=[asset_record(1, url=url)], headers=auth("marketing")),
    ):
        response = send()
        assert response.status_code == 422
        assert "url" in json.dumps(response.get_json()["error"]["details"])
    assert assets_stored(sessions) == 0


def test_public_asset_urls_are_still_accepted(client, auth):
    for i, url in enumerate(
        ["https://1.1.1.1/report", "https://cafe.example/", "https://[2606:4700::1111]/"]
    ):
        response = client.post(
            "/api/v1/assets", json=asset_record(i + 1, url=url), headers=auth("marketing")
        )
        assert response.status_code == 201, response.get_json()


def test_the_token_list_shows_only_a_short_prefix(client, auth, token_for):
    token = token_for("sales", "rep")
    created = client.post(
        "/api/v1/tokens", json={"role": "sales", "name": "new"}, headers=auth("admin")
    ).get_json()
    items = client.get("/api/v1/tokens", headers=auth("admin")).get_json()["items"]
    prefixes = {item["name"]: item["prefix"] for item in items}
    assert prefixes["rep"] == token[:8]
    assert created["prefix"] == created["token"][:8]
    assert all(len(p) == 8 and p.startswith("enb_") for p in prefixes.values())


def test_the_openapi_document_is_as_strict_as_the_validation(client):
    spec = client.get("/api/v1/openapi.json").get_json()
    url = spec["components"]["schemas"]["AssetCreate"]["properties"]["url"]
    assert url["format"] == "uri" and url["maxLength"] == 2048 and url["pattern"].startswith("^")
    token_id = spec["paths"]["/api/v1/tokens/{token_id}"]["delete"]["parameters"][0]["schema"]
    assert token_id == {"type": "integer", "minimum": 0, "maximum": 2**31 - 1}
    for kind in ("coverage", "cycle-time", "effectiveness"):
        operation = spec["paths"][f"/api/v1/reports/{kind}"]["get"]
        assert "text/csv" in operation["responses"]["200"]["content"]
        as_of = next(p for p in operation["parameters"] if p["name"] == "as_of")
        pattern = re.compile(as_of["schema"]["pattern"])
        assert pattern.search("2026-01-05T09:00:00Z") and pattern.search(
            "2100-12-31T23:59:59+01:00"
        )
        assert not pattern.search("9999-12-31T00:00:00Z") and not pattern.search(
            "1969-12-31T00:00Z"
        )
    coverage = spec["paths"]["/api/v1/reports/coverage"]["get"]["responses"]["200"]["content"]
    assert "text/html" in coverage


def test_a_nul_byte_in_a_page_form_field_is_422_and_shares_nothing(app, sessions, world):
    from enablement.db.models import Share
    from enablement.services.tokens import create_token, start_web_session

    client = app.test_client()
    _, record = create_token(sessions, "sales", "page rep")
    with client.session_transaction() as cookie:
        cookie["sid"] = start_web_session(sessions, record.id)
    form = client.get("/signin").get_data(as_text=True)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', form).group(1)
    response = client.post("/deals/d1/share", data={"asset_id": "a1\x00", "csrf_token": csrf})
    assert response.status_code == 422
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(Share)) == 0


def test_a_nul_byte_in_a_multipart_text_field_is_422(client, auth, sessions):
    response = client.post(
        IMPORT,
        data={"file": (io.BytesIO(jsonl([asset_record(1)]).encode()), "a.jsonl"), "note": NUL},
        headers=auth("marketing"),
    )
    assert response.status_code == 422
    assert assets_stored(sessions) == 0


def test_under_gunicorn_a_chunked_import_over_the_limit_is_413_and_imports_nothing(
    settings, app, token_for, sessions
):
    # The finding was made under gunicorn, which sets wsgi.input_terminated on every request.
    if not settings.database_url.startswith("sqlite"):
        pytest.skip("one engine is enough to check the server's framing")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {
        **os.environ,
        "DATABASE_URL": settings.database_url,
        "ENABLEMENT_INSTANCE_PATH": str(settings.instance_path),
        "SECRET_KEY": "gunicorn-test-secret-key",
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-w", "1", "-b", f"127.0.0.1:{port}", "wsgi:app"],
        env=env,
        cwd=Path(__file__).resolve().parents[2],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.2)
        headers = {
            "Authorization": f"Bearer {token_for('marketing')}",
            "Content-Type": "application/x-ndjson",
        }
        big = oversized_jsonl(app.config["MAX_CONTENT_LENGTH"])
        status, _ = chunked_request(port, "POST", IMPORT + "?skip_invalid=true", big, headers)
        assert status == 413
        small = jsonl(asset_record(i) for i in range(1, 21)).encode()
        assert chunked_request(port, "POST", IMPORT, small, headers)[0] == 200
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert assets_stored(sessions) == 20


@pytest.mark.parametrize("path", ["/l//evil.example", "/reports//coverage", "//evil.example/x"])
def test_doubled_slashes_with_a_forged_host_never_redirect_off_site(client, path):
    response = client.get("/", environ_overrides={"PATH_INFO": path, "HTTP_HOST": "evil.example"})
    assert response.status_code == 404
    assert "Location" not in response.headers
