"""The recommendations report (funnel per asset, holdout groups): API, command line and page."""

import csv
import io
import json

import pytest

from enablement import create_app
from enablement.domain.recommend import in_holdout
from enablement.services.tokens import create_token
from tests.crm_data import insert_asset, insert_deals, insert_pipeline, sample_deal, sample_pipeline
from tests.web.test_pages import sign_in

BROWSER = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/126.0 Safari/537.36"
REPORT = "/api/v1/reports/recommendations"


@pytest.fixture
def data(sessions):
    """Two open deals in evaluation and three live evaluation pieces."""
    pipeline = sample_pipeline()
    mapping = {"disc": "interest", "demo": "evaluation", "prop": "closing"}
    for stage in pipeline["stages"]:
        stage["buying_stage"] = mapping.get(stage["id"])
    insert_pipeline(sessions, pipeline)
    insert_deals(sessions, sample_deal("d1"), sample_deal("d2", owner_id="o2"))
    for asset_id, title in (
        ("fit", "Judging vendors"),
        ("plain", "A plain piece"),
        ("more", "More"),
    ):
        insert_asset(sessions, asset_id, title=title, stages=["evaluation"], author="Grace Hopper")


def recommend_share_and_open(client, auth, deal_id: str, asset_id: str, opened: bool) -> None:
    """Ask for a deal's recommendations, share one listed piece from them, maybe open its link."""
    body = client.get(f"/api/v1/deals/{deal_id}/recommendations", headers=auth("sales")).get_json()
    assert asset_id in [item["asset"]["id"] for item in body["items"]]
    created = client.post(
        f"/api/v1/deals/{deal_id}/shares",
        json={"asset_id": asset_id, "impression_id": body["impression_id"]},
        headers=auth("sales"),
    )
    assert created.status_code == 201
    if opened:
        link = created.get_json()["link"].removeprefix("http://testserver")
        assert client.get(link, headers={"User-Agent": BROWSER}).status_code == 302


@pytest.fixture
def funnel(client, auth, data):
    """fit: listed twice, shared twice, opened once; plain and more: listed twice each."""
    recommend_share_and_open(client, auth, "d1", "fit", opened=True)
    recommend_share_and_open(client, auth, "d2", "fit", opened=False)


def test_marketing_reads_the_funnel_per_asset_with_titles_and_the_groups(client, auth, funnel):
    response = client.get(REPORT, headers=auth("marketing"))
    assert response.status_code == 200
    body = response.get_json()
    assert set(body) == {"as_of", "method", "holdout_fraction", "groups", "funnel"}
    assert body["groups"] == {"recommended_deals": 2, "holdout_deals": 0}
    assert body["holdout_fraction"] == 0.0
    rows = {row["asset_id"]: row for row in body["funnel"]}
    assert rows["fit"] == {
        "asset_id": "fit",
        "title": "Judging vendors",
        "recommended": 2,
        "shared": 2,
        "opened": 1,
    }
    assert rows["plain"]["recommended"] == 2 and rows["plain"]["shared"] == 0
    assert [row["asset_id"] for row in body["funnel"]] == sorted(rows)


@pytest.mark.parametrize(("role", "status"), [("marketing", 200), ("admin", 200), ("sales", 403)])
def test_the_report_is_for_marketing_and_up(client, auth, data, role, status):
    assert client.get(REPORT, headers=auth(role)).status_code == status


def test_the_report_needs_a_token(client):
    assert client.get(REPORT).status_code == 401


def test_the_funnel_answers_as_csv_one_row_per_asset(client, auth, funnel):
    response = client.get(f"{REPORT}?format=CSV", headers=auth("marketing"))
    assert response.status_code == 200 and response.mimetype == "text/csv"
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    assert list(rows[0]) == ["asset_id", "title", "recommended", "shared", "opened"]
    assert {r["asset_id"]: r["opened"] for r in rows} == {"fit": "1", "more": "0", "plain": "0"}


@pytest.mark.parametrize(
    "query", ["as_of=2026-06-30T00:00:00Z", "format=html", "verdict=shortens", "unknown=1"]
)
def test_an_as_of_or_a_filter_is_422(client, auth, data, query):
    response = client.get(f"{REPORT}?{query}", headers=auth("marketing"))
    assert response.status_code == 422
    assert response.get_json()["error"]["code"] == "invalid_input"


def test_the_counts_are_cached_until_a_new_share_or_impression(client, auth, funnel):
    before = client.get(REPORT, headers=auth("marketing")).get_json()
    # as_of is when the counts were taken: the same one means the same cached answer.
    assert client.get(REPORT, headers=auth("marketing")).get_json()["as_of"] == before["as_of"]
    recommend_share_and_open(client, auth, "d1", "plain", opened=True)
    after = client.get(REPORT, headers=auth("marketing")).get_json()
    assert after["as_of"] > before["as_of"]
    rows = {row["asset_id"]: row for row in after["funnel"]}
    assert rows["plain"] == {
        "asset_id": "plain",
        "title": "A plain piece",
        "recommended": 3,
        "shared": 1,
        "opened": 1,
    }


def test_held_out_deals_are_counted_in_their_group(settings, data):
    app = create_app(settings.with_overrides(recommendation_holdout=0.5))
    try:
        client = app.test_client()
        sessions = app.extensions["enablement"].sessions
        sales, _ = create_token(sessions, "sales", "team")
        marketing, _ = create_token(sessions, "marketing", "m")
        for deal_id in ("d1", "d2"):
            url = f"/api/v1/deals/{deal_id}/recommendations"
            client.get(url, headers={"Authorization": f"Bearer {sales}"})
        body = client.get(REPORT, headers={"Authorization": f"Bearer {marketing}"}).get_json()
        held = sum(in_holdout(d, 0.5) for d in ("d1", "d2"))
        assert body["groups"] == {"recommended_deals": 2 - held, "holdout_deals": held}
        assert body["holdout_fraction"] == 0.5
    finally:
        app.extensions["enablement"].engine.dispose()


def test_the_cli_prints_the_funnel_as_a_table_json_and_csv(runner, funnel):
    table = runner("report", "recommendations")
    assert table.exit_code == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].split() == ["asset_id", "title", "recommended", "shared", "opened"]
    assert next(line for line in lines if line.startswith("fit")).split()[-3:] == ["2", "2", "1"]
    assert lines[-1] == "2 deal(s) shown recommendations, 0 held out"
    as_json = json.loads(runner("report", "recommendations", "--format", "json").stdout)
    assert as_json["groups"]["recommended_deals"] == 2
    as_csv = runner("report", "recommendations", "--format", "csv").stdout.splitlines()
    assert as_csv[0] == "asset_id,title,recommended,shared,opened"
    assert "fit,Judging vendors,2,2,1" in as_csv


def test_the_cli_refuses_an_as_of_and_effectiveness_filters(runner, data):
    dated = runner("report", "recommendations", "--as-of", "2026-06-30T00:00:00Z")
    assert dated.exit_code == 1 and "no as_of" in dated.stderr
    assert runner("report", "recommendations", "--verdict", "shortens").exit_code == 2
    assert runner("report", "recommendations", "--format", "html").exit_code == 2


def test_the_effectiveness_page_shows_the_funnel_and_the_groups(client, token_for, funnel):
    assert sign_in(client, token_for("marketing")).status_code == 302
    html = client.get("/reports/effectiveness").text
    section = html.split('id="funnel"')[1].split("</section>")[0]
    assert "2 deals shown recommendations, 0 held out" in section
    rows = section.split('id="funnel-table"')[1]
    first = rows.split("<tbody>")[1].split("</tr>")[0]
    # Most recommended first; ties by shares made from the recommendation.
    assert "Judging vendors" in first and first.count('class="num"') == 3
    assert ">2</td>" in first and ">1</td>" in first


def test_the_effectiveness_page_says_when_nothing_was_recommended(client, token_for, data):
    assert sign_in(client, token_for("marketing")).status_code == 302
    section = client.get("/reports/effectiveness").text.split('id="funnel"')[1]
    assert "0 deals shown recommendations" in section and "No recommendations logged yet" in section


def test_the_route_and_every_field_are_in_the_openapi_document(client):
    spec = client.get("/api/v1/openapi.json").get_json()
    operation = spec["paths"][REPORT]["get"]
    assert "marketing" in operation["description"]
    assert [p["name"] for p in operation["parameters"]] == ["format"]
    answer = operation["responses"]["200"]["content"]
    assert answer["application/json"]["schema"]["$ref"].endswith("/RecommendationsReport")
    assert "text/csv" in answer
    schemas = spec["components"]["schemas"]
    for name in ("RecommendationsReport", "FunnelRow", "RecommendationGroups"):
        undescribed = [k for k, v in schemas[name]["properties"].items() if "description" not in v]
        assert undescribed == [], name
