"""Each product rule has one home, and every path that uses it gives the same answer.

Paths: the HTTP API, the CLI (file import, reports), the demo, and the pure domain.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import select

from enablement.db.models import Share
from enablement.domain.assets import ASSET_FIELDS, FIELDS, is_live
from enablement.domain.timestamps import parse_timestamp
from tests.asset_data import asset_record, jsonl
from tests.crm_data import (
    insert_asset,
    insert_deals,
    insert_pipeline,
    sample_deal,
    sample_pipeline,
    write_jsonl,
)

BROWSER = {"User-Agent": "Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0"}
SPACE_FORM = "2026-01-05 09:00:00+00:00"
NO_ZONE = "2026-01-05T09:00:00"
FAR_FUTURE = "9999-01-05T09:00:00Z"


# ---------------------------------------------------------------- shares and their links


def _token(link: str) -> str:
    return link.rsplit("/l/", 1)[1]


def _all_links_work(client, sessions, settings, source: str) -> int:
    """Follow the link of every share of a source; returns how many were followed."""
    from enablement.domain.links import link_token

    with sessions() as session:
        ids = session.scalars(select(Share.id).where(Share.source == source)).all()
    assert ids, f"no {source} shares stored"
    for share_id in ids:
        response = client.get(f"/l/{link_token(settings.secret_key, share_id)}", headers=BROWSER)
        assert response.status_code == 302, (source, share_id)
    return len(ids)


def test_a_share_made_by_the_api_a_shares_file_or_the_demo_has_a_working_link(
    client, runner, sessions, settings, auth, tmp_path
):
    runner("demo", "--deals", "40", "--assets", "20", "--no-print-tokens")
    assert _all_links_work(client, sessions, settings, "demo") > 20

    with sessions() as session:
        share = session.scalars(select(Share).order_by(Share.id)).first()
        deal_id, asset_id = share.deal_id, share.asset_id
    answer = client.post(
        f"/api/v1/deals/{deal_id}/shares", json={"asset_id": asset_id}, headers=auth("admin")
    )
    assert answer.status_code == 201, answer.get_json()
    assert client.get(f"/l/{_token(answer.get_json()['link'])}", headers=BROWSER).status_code == 302
    assert _all_links_work(client, sessions, settings, "api") == 1

    path = write_jsonl(
        tmp_path / "shares.jsonl",
        [{"deal_id": deal_id, "asset_id": asset_id, "shared_at": "2026-01-06T09:00:00Z"}],
    )
    assert runner("import", "shares", str(path)).exit_code == 0
    assert _all_links_work(client, sessions, settings, "import") == 1


# ---------------------------------------------------------------- timestamps


@pytest.fixture
def crm(sessions):
    insert_pipeline(sessions)
    insert_deals(sessions, sample_deal("d1"))
    insert_asset(sessions, "a1")
    insert_asset(sessions, "a2")


def _import(runner, tmp_path, kind: str, record: dict):
    path = write_jsonl(tmp_path / f"{kind}.jsonl", [record])
    return runner("import", kind, str(path))


@pytest.mark.parametrize(
    ("text", "accepted"), [(SPACE_FORM, True), (NO_ZONE, False), (FAR_FUTURE, False)]
)
def test_a_timestamp_means_the_same_in_every_file_the_api_and_the_report_cli(
    client, runner, auth, tmp_path, crm, text, accepted
):
    expected = 0 if accepted else 1
    deal = sample_deal("d2", closed_at=text)
    deal["stage_history"][0]["entered_at"] = "2026-01-05T09:00:00Z"
    pipeline_file = _import(runner, tmp_path, "pipelines", sample_pipeline())
    assert pipeline_file.exit_code == 0
    results = {
        "deals file": _import(runner, tmp_path, "deals", {**deal, "created_at": text}).exit_code,
        "assets file": _import(
            runner, tmp_path, "assets", asset_record(7, published_at=text)
        ).exit_code,
        "shares file": _import(
            runner, tmp_path, "shares", {"deal_id": "d1", "asset_id": "a1", "shared_at": text}
        ).exit_code,
        "report --as-of": runner("report", "cycle-time", "--as-of", text).exit_code,
    }
    assert results == dict.fromkeys(results, expected)
    api = {
        "asset create": client.post(
            "/api/v1/assets", json=asset_record(8, published_at=text), headers=auth("admin")
        ).status_code,
        "share backfill": client.post(
            "/api/v1/deals/d1/shares",
            json={"asset_id": "a2", "shared_at": text},
            headers=auth("admin"),
        ).status_code,
        "report as_of": client.get(
            "/api/v1/reports/cycle-time", query_string={"as_of": text}, headers=auth("admin")
        ).status_code,
    }
    if accepted:
        assert api["asset create"] == 201 and api["share backfill"] == 201
        assert api["report as_of"] in (200, 202)
    else:
        assert api == dict.fromkeys(api, 422)


# ---------------------------------------------------------------- "live"

TODAY = datetime.now(UTC).date()
CASES = {
    "approved": {"status": "approved"},
    "approved-review-later": {"status": "approved", "review_by": TODAY + timedelta(days=30)},
    "approved-review-today": {"status": "approved", "review_by": TODAY},
    "stale": {"status": "approved", "review_by": TODAY - timedelta(days=1)},
    "draft": {"status": "draft"},
    "retired": {"status": "retired", "retired_at": datetime(2026, 1, 1, tzinfo=UTC)},
}


def test_live_means_the_same_to_the_list_the_asset_view_sharing_and_coverage(
    client, runner, sessions, auth
):
    insert_pipeline(sessions)
    insert_deals(sessions, sample_deal("d1"))
    for asset_id, fields in CASES.items():
        insert_asset(sessions, asset_id, stages=["interest"], personas=["cfo"], **fields)
    expected = {
        asset_id: is_live(fields["status"], fields.get("review_by"), TODAY)
        for asset_id, fields in CASES.items()
    }
    assert sum(expected.values()) == 3

    listed = client.get(
        "/api/v1/assets", query_string={"status": "live"}, headers=auth("admin")
    ).get_json()
    assert {a["id"] for a in listed["items"]} == {i for i, live in expected.items() if live}
    for asset_id, live in expected.items():
        view = client.get(f"/api/v1/assets/{asset_id}", headers=auth("admin")).get_json()
        assert view["live"] is live, asset_id
        shared = client.post(
            "/api/v1/deals/d1/shares", json={"asset_id": asset_id}, headers=auth("sales")
        )
        assert shared.status_code == (201 if live else 409), asset_id
    coverage = json.loads(runner("report", "coverage", "--format", "json").stdout)
    interest = [c for c in coverage["cells"] if c["stage"] == "interest"]
    assert interest and all(c["live_assets"] <= 3 for c in interest)
    assert max(c["live_assets"] for c in interest) == 3
    assert max(c["stale_assets"] for c in interest) == 1


# ---------------------------------------------------------------- tags


def test_tags_compare_the_same_in_the_asset_filter_and_in_coverage_demand(
    client, runner, sessions, auth, tmp_path
):
    insert_pipeline(sessions)
    deal = sample_deal("d1", personas=["  Head   of  SALES "])
    path = write_jsonl(tmp_path / "deals.jsonl", [deal])
    assert runner("import", "deals", str(path)).exit_code == 0
    created = client.post(
        "/api/v1/assets",
        json=asset_record(1, personas=["head of Sales"], stages=["awareness", "interest"]),
        headers=auth("admin"),
    )
    assert created.status_code == 201
    found = client.get(
        "/api/v1/assets", query_string={"persona": "HEAD OF sales"}, headers=auth("admin")
    ).get_json()
    assert [a["id"] for a in found["items"]] == ["asset-1"]
    deal_view = client.get("/api/v1/deals/d1", headers=auth("admin")).get_json()
    assert deal_view["personas"] == ["Head of SALES"]
    coverage = json.loads(runner("report", "coverage", "--format", "json").stdout)
    cells = [c for c in coverage["cells"] if c["dimension"] == "persona"]
    assert len({c["value"] for c in cells}) == 1


# ---------------------------------------------------------------- stage-map review flags


def test_a_stage_needs_review_in_the_api_the_cli_and_the_coverage_report_alike(
    client, runner, sessions, auth, tmp_path
):
    pipeline = sample_pipeline()
    pipeline["stages"].insert(
        0, {"id": "zz", "label": "Qwerty zxcv", "probability": None, "display_order": 9}
    )
    pipeline["stages"].insert(
        0, {"id": "yy", "label": "Asdf ghjk", "probability": 0.1, "display_order": 8}
    )
    assert _import(runner, tmp_path, "pipelines", pipeline).exit_code == 0
    api = client.get("/api/v1/stage-map", headers=auth("admin")).get_json()
    flagged_api = {(r["stage_id"], r["problem"]) for r in api["needs_review"]}
    by_stage = {i["stage_id"]: i for i in api["items"]}
    assert {("zz", "unmapped"), ("yy", "low_confidence")} <= flagged_api
    assert {(s, by_stage[s]["problem"]) for s, _ in flagged_api} == flagged_api
    assert all(by_stage[s]["problem"] is None for s in ("won", "lost", "prop"))
    coverage = json.loads(runner("report", "coverage", "--format", "json").stdout)
    flagged_report = {(r["stage_id"], r["problem"]) for r in coverage["unmapped_stages"]}
    assert flagged_report == flagged_api
    shown = runner("stage-map", "show").stdout
    assert "Qwerty zxcv" in shown and f"{len(flagged_api)} stage(s) need review" in shown


# ---------------------------------------------------------------- the asset record


def test_the_asset_record_fields_are_the_api_schema_the_file_columns_and_the_export(
    client, runner, auth, tmp_path
):
    names = [spec.name for spec in ASSET_FIELDS]
    assert list(FIELDS) == names
    openapi = client.get("/api/v1/openapi.json").get_json()
    schemas = openapi["components"]["schemas"]
    create = next(v for k, v in schemas.items() if k.startswith("AssetCreate"))
    assert set(create["properties"]) == set(names)
    assert set(create.get("required", [])) == {s.name for s in ASSET_FIELDS if s.required}
    shown = next(v for k, v in schemas.items() if k == "Asset")
    assert set(names) - {"body"} <= set(shown["properties"])
    record = asset_record(
        1,
        body="Long text.",
        review_by="2027-01-01",
        series="Season one",
        series_order=2,
        status="draft",
    )
    assert set(record) == set(names)
    assert client.post("/api/v1/assets", json=record, headers=auth("admin")).status_code == 201
    csv_text = runner("export", "assets", "--format", "csv").stdout
    # Files carry one more column than the API takes: when a retired asset was retired.
    assert csv_text.splitlines()[0].split(",") == [*names, "retired_at"]
    exported = json.loads(runner("export", "assets").stdout.splitlines()[0])
    assert exported == {**record, "published_at": "2025-06-01T09:00:00Z"}
    # What the export writes, the import reads back unchanged.
    path = tmp_path / "assets.jsonl"
    path.write_text(jsonl([exported]), encoding="utf-8")
    assert "1 unchanged" in runner("import", "assets", str(path)).stdout
    assert parse_timestamp(exported["published_at"]).date() == date(2025, 6, 1)


# ---------------------------------------------------------------- numbers

HOSTILE_AMOUNTS = [
    "-0",
    -0.0,
    "1_000",
    "\u0661\u0660\u0660",
    "\uff11\uff10",
    "1e308",
    1e308,
    1e16,
    "-5",
    "NaN",
    "0x10",
    "1,000",
]


@pytest.mark.parametrize("amount", HOSTILE_AMOUNTS, ids=repr)
def test_an_amount_means_the_same_to_webhooks_deal_files_and_the_domain(runner, tmp_path, amount):
    from enablement.domain.deal_events import RejectedEvent
    from enablement.domain.numbers import amount_problem
    from integrations.hubspot.webhooks import read_event

    assert amount_problem(amount)
    event = read_event(
        {
            "eventId": 1,
            "subscriptionId": 2,
            "portalId": 3,
            "occurredAt": 1767600000000,
            "subscriptionType": "deal.propertyChange",
            "objectId": 42,
            "propertyName": "amount",
            "propertyValue": amount,
        }
    )
    assert isinstance(event, RejectedEvent) and "amount" in event.reason
    assert _import(runner, tmp_path, "pipelines", sample_pipeline()).exit_code == 0
    result = _import(runner, tmp_path, "deals", sample_deal("d9", amount=amount))
    assert result.exit_code == 1 and "amount" in result.output


@pytest.mark.parametrize("amount", ["1000", "1250.50", 1250, 0, "0"], ids=repr)
def test_a_plain_amount_is_read_alike_on_every_path(runner, tmp_path, amount):
    from integrations.hubspot.webhooks import read_event

    event = read_event(
        {
            "eventId": 1,
            "subscriptionId": 2,
            "portalId": 3,
            "occurredAt": 1767600000000,
            "subscriptionType": "deal.propertyChange",
            "objectId": 42,
            "propertyName": "amount",
            "propertyValue": amount,
        }
    )
    assert event.value == float(amount)
    assert _import(runner, tmp_path, "pipelines", sample_pipeline()).exit_code == 0
    assert _import(runner, tmp_path, "deals", sample_deal("d9", amount=amount)).exit_code == 0


@pytest.mark.parametrize("value", ["1_0", "\u0661", "\uff15", " 5", "5 ", "+5", "-0", "5e1"])
@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/assets?per_page={}",
        "/api/v1/assets?page={}",
        "/api/v1/deals/d1/recommendations?limit={}",
    ],
)
def test_integer_query_parameters_are_plain_digits(client, auth, crm, value, path):
    response = client.get(path.format(value), headers=auth("admin"))
    assert response.status_code == 422, response.get_json()
