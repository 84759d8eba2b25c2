"""Every timestamp the service writes has one spelling: UTC, a trailing Z (domain.timestamps)."""

import json
import re

import pytest

from tests.crm_data import insert_asset, insert_deals, insert_pipeline, sample_deal

# Whole seconds, or a fraction when the moment has one; never an offset, never a space.
ONE_FORMAT = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?Z$")
LOOKS_LIKE_A_MOMENT = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:")


def timestamps(value, path="") -> dict[str, str]:
    """Every string in a JSON answer that is a moment in time, by its path."""
    found = {}
    if isinstance(value, dict):
        for key, child in value.items():
            found.update(timestamps(child, f"{path}.{key}"))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            found.update(timestamps(child, f"{path}.{index}"))
    elif isinstance(value, str) and LOOKS_LIKE_A_MOMENT.match(value):
        found[path] = value
    return found


@pytest.fixture
def data(sessions, client, auth):
    insert_pipeline(sessions)
    insert_deals(sessions, sample_deal("d1"))
    insert_asset(sessions, "a1", published_at=None)
    body = {"asset_id": "a1", "shared_at": "2026-01-20T10:00:00.250+01:00"}
    response = client.post("/api/v1/deals/d1/shares", json=body, headers=auth("admin"))
    assert response.status_code == 201


def test_every_timestamp_in_representative_answers_has_the_one_format(client, auth, data):
    asset = {
        "title": "Field notes",
        "url": "https://content.example/notes",
        "kind": "article",
        "author": "Ada Writer",
        "published_at": "2026-02-01T08:00:00-05:00",
    }
    created = client.post("/api/v1/assets", json=asset, headers=auth("marketing"))
    assert created.status_code == 201, created.get_json()
    answers = {
        "asset created": created.get_json(),
        "deal": client.get("/api/v1/deals/d1", headers=auth("sales")).get_json(),
        "deals": client.get("/api/v1/deals", headers=auth("sales")).get_json(),
        "my shares": client.get("/api/v1/shares?mine=true", headers=auth("admin")).get_json(),
        "assets": client.get("/api/v1/assets", headers=auth("marketing")).get_json(),
        "tokens": client.get("/api/v1/tokens", headers=auth("admin")).get_json(),
        "coverage": client.get(
            "/api/v1/reports/coverage?as_of=2026-06-30T02:00:00%2B02:00", headers=auth("marketing")
        ).get_json(),
    }
    found = {
        f"{name}{path}": t
        for name, answer in answers.items()
        for path, t in timestamps(answer).items()
    }
    assert {k: v for k, v in found.items() if not ONE_FORMAT.match(v)} == {}
    # The walk saw the kinds of timestamps there are: stored, backfilled, parsed with offsets.
    assert found["deal.shares.0.shared_at"] == "2026-01-20T09:00:00.250000Z"
    assert found["deal.stage_history.1.entered_at"] == "2026-01-08T09:00:00Z"
    assert found["asset created.published_at"] == "2026-02-01T13:00:00Z"
    assert found["coverage.as_of"] == "2026-06-30T00:00:00Z"
    assert any(k.startswith("tokens.") for k in found) and len(found) >= 12


def test_an_export_and_the_api_write_the_same_instant_alike(client, auth, runner, data):
    api = client.get("/api/v1/deals/d1", headers=auth("sales")).get_json()
    result = runner("export", "shares")
    assert result.exit_code == 0, result.stderr
    (exported,) = [json.loads(line) for line in result.stdout.splitlines()]
    assert exported["shared_at"] == api["shares"][0]["shared_at"] == "2026-01-20T09:00:00.250000Z"
    deals = runner("export", "deals")
    (deal,) = [json.loads(line) for line in deals.stdout.splitlines()]
    assert deal["created_at"] == api["created_at"] == "2026-01-05T09:00:00Z"
    assert [s["entered_at"] for s in deal["stage_history"]] == [
        s["entered_at"] for s in api["stage_history"]
    ]
