"""The OpenAPI document lists every answer a route gives, and OPTIONS names each route's own methods."""

from __future__ import annotations

import pytest

REPORTS = ["coverage", "cycle-time", "effectiveness", "recommendations"]


@pytest.fixture
def spec(client):
    return client.get("/api/v1/openapi.json").get_json()


def test_a_repeated_share_answers_200_as_documented(client, spec, token_for):
    from tests.crm_data import insert_asset, insert_deals, insert_pipeline, sample_deal

    sessions = client.application.extensions["enablement"].sessions
    insert_pipeline(sessions)
    insert_deals(sessions, sample_deal("d1"))
    insert_asset(sessions, "a1")
    headers = {"Authorization": f"Bearer {token_for('sales', owner_id='o1')}"}
    first = client.post("/api/v1/deals/d1/shares", json={"asset_id": "a1"}, headers=headers)
    again = client.post("/api/v1/deals/d1/shares", json={"asset_id": "a1"}, headers=headers)
    assert (first.status_code, again.status_code) == (201, 200)
    responses = spec["paths"]["/api/v1/deals/{deal_id}/shares"]["post"]["responses"]
    assert {"200", "201"} <= set(responses)
    assert (
        responses["200"]["content"]["application/json"]["schema"]
        == (responses["201"]["content"]["application/json"]["schema"])
    )


@pytest.mark.parametrize("report", REPORTS)
def test_every_report_documents_its_202_while_computing(spec, report):
    answer = spec["paths"][f"/api/v1/reports/{report}"]["get"]["responses"]["202"]
    assert "Retry-After" in answer["headers"]
    schema = answer["content"]["application/json"]["schema"]
    name = schema["$ref"].rsplit("/", 1)[1]
    assert set(spec["components"]["schemas"][name]["properties"]) == {
        "status",
        "report",
        "as_of",
        "retry_after",
    }
    if report == "coverage":
        assert "text/html" in answer["content"]


def test_every_operation_documents_the_servers_414(spec):
    operations = [op for path in spec["paths"].values() for op in path.values()]
    assert operations
    for op in operations:
        assert "text/html" in op["responses"]["414"]["content"]


def test_options_on_the_import_route_names_its_own_methods(client, auth):
    allowed = client.options("/api/v1/assets/import").headers["Allow"]
    assert set(allowed.replace(" ", "").split(",")) == {"POST", "OPTIONS"}
    one = client.options("/api/v1/assets/a1").headers["Allow"]
    assert set(one.replace(" ", "").split(",")) == {"GET", "HEAD", "PATCH", "DELETE", "OPTIONS"}
    wrong = client.get("/api/v1/assets/import", headers=auth("admin"))
    assert wrong.status_code == 405


def test_import_cannot_be_an_asset_id(client, auth):
    from tests.asset_data import asset_record

    response = client.post(
        "/api/v1/assets", json=asset_record(1, id="import"), headers=auth("marketing")
    )
    assert response.status_code == 422
    assert "reserved" in str(response.get_json()["error"]["details"])


def test_gunicorn_answers_a_too_long_url_with_the_documented_414(tmp_path):
    import http.client
    import os
    import subprocess
    import time

    from tests.test_serving import BIN, ROOT, free_port

    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "HUBSPOT_"))}
    env["ENABLEMENT_INSTANCE_PATH"] = str(tmp_path / "instance")
    subprocess.run([str(BIN / "enablement"), "init"], env=env, check=True, timeout=120, cwd=ROOT)
    port = free_port()
    server = subprocess.Popen(
        [str(BIN / "gunicorn"), "-w", "1", "-b", f"127.0.0.1:{port}", "wsgi:app"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=ROOT,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                connection.request("GET", "/api/v1/assets?q=" + "x" * 5000)
                answer = connection.getresponse()
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise
                time.sleep(0.2)
        assert answer.status == 414
        assert answer.getheader("Content-Type").startswith("text/html")
        connection.close()
    finally:
        server.terminate()
        server.wait(timeout=30)
