"""GET /api/v1/deals/<id>/recommendations and `enablement recommend`: ranking, holdout, impressions, scope."""

import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import event, func, select

from enablement import create_app
from enablement.db.models import RecommendationImpression, RecommendationItem, Share
from enablement.domain.recommend import in_holdout
from enablement.services.recommendations import holdout_counts, recommendation_funnel
from tests.crm_data import insert_asset, insert_deals, insert_pipeline, sample_deal, sample_pipeline

BROWSER = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 Version/17.0 Safari/605.1.15"
MAPPING = {"disc": "interest", "demo": "evaluation", "prop": "closing"}


def mapped_pipeline() -> dict:
    """The sample pipeline with every open stage confirmed to a buying stage."""
    data = sample_pipeline()
    for stage in data["stages"]:
        stage["buying_stage"] = MAPPING.get(stage["id"])
    return data


# Re-read the assets' fingerprint on every request, as after its few seconds have passed.
EVERY_REQUEST = {"recommendation_assets_check_every": timedelta(0)}


@pytest.fixture
def settings(settings, request):
    """The test settings with the recommendation caches' timings a test asks for (indirect)."""
    return settings.with_overrides(**getattr(request, "param", {}))


@pytest.fixture
def data(sessions):
    insert_pipeline(sessions, mapped_pipeline())
    insert_deals(
        sessions,
        sample_deal("d1"),  # in demo: evaluation, owner o1
        sample_deal("d2", owner_id="o2"),
        sample_deal("won", history=((0, "disc"), (3, "won")), closed_at="2026-01-08T09:00:00Z"),
    )
    published = datetime.now(UTC) - timedelta(days=20)
    insert_asset(
        sessions,
        "fit",
        stages=["evaluation"],
        industries=["Manufacturing"],
        personas=["CFO"],
        author="Grace Hopper",
        published_at=published,
    )
    insert_asset(
        sessions, "plain", stages=["evaluation"], author="Grace Hopper", published_at=published
    )
    insert_asset(
        sessions, "early", stages=["interest"], author="Grace Hopper", published_at=published
    )
    insert_asset(sessions, "draft", stages=["evaluation"], status="draft")


def url(deal_id="d1", **query):
    suffix = "&".join(f"{k}={v}" for k, v in query.items())
    return f"/api/v1/deals/{deal_id}/recommendations" + (f"?{suffix}" if suffix else "")


def test_recommendations_rank_live_assets_for_the_deal_and_log_an_impression(
    client, sessions, token_for, data
):
    headers = {"Authorization": f"Bearer {token_for('sales', 'Rita', owner_id='o1')}"}
    response = client.get(url(limit=2), headers=headers)
    assert response.status_code == 200
    body = response.get_json()
    assert body["deal"]["buying_stage"] == "evaluation"
    assert body["deal"]["crm_stage"]["id"] == "demo"
    assert body["holdout"] is False and body["closed"] is False
    assert [i["asset"]["id"] for i in body["items"]] == ["fit", "plain"]
    item = body["items"][0]
    assert set(item["asset"]) == {"id", "title", "url", "kind", "author"}
    assert {"stage", "context", "evidence", "engagement", "freshness", "novelty"} <= set(
        item["components"]
    )
    assert item["reasons"] and item["exploration"] is False
    with sessions() as session:
        impression = session.get(RecommendationImpression, body["impression_id"])
        assert (impression.deal_id, impression.buying_stage, impression.holdout) == (
            "d1",
            "evaluation",
            False,
        )
        assert (impression.requested_by, impression.source) == ("owner:o1", "api")
        assert [(i.asset_id, i.rank, i.score) for i in impression.items] == [
            ("fit", 1, item["score"]),
            ("plain", 2, body["items"][1]["score"]),
        ]
    # The adjacent stage appears only once the deal's own stage runs out.
    three = client.get(url(limit=3), headers=headers).get_json()
    assert [i["asset"]["id"] for i in three["items"]] == ["fit", "plain", "early"]
    assert any("next to evaluation" in r for r in three["items"][2]["reasons"])
    assert three["impression_id"] != body["impression_id"]


@pytest.mark.parametrize("limit", ["0", "51", "abc", "-1", "1.5", "%00"])
def test_limit_out_of_range_is_422(client, auth, data, limit):
    response = client.get(url(limit=limit), headers=auth("sales"))
    assert response.status_code == 422
    assert response.get_json()["error"]["code"] == "invalid_input"


@pytest.mark.parametrize("deal_id", ["nope", "d%00", "%ED%A0%80", "x" * 65])
def test_unknown_or_impossible_deal_is_404(client, auth, data, deal_id):
    response = client.get(url(deal_id), headers=auth("sales"))
    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == "not_found"


def test_closed_deal_says_so_with_no_items(client, auth, data):
    body = client.get(url("won"), headers=auth("sales")).get_json()
    assert body["closed"] is True and body["items"] == [] and "closed" in body["message"]


def test_a_sales_token_bound_to_an_owner_reaches_its_owners_deals_only(client, token_for, data):
    other = {"Authorization": f"Bearer {token_for('sales', 'Otto', owner_id='o2')}"}
    team = {"Authorization": f"Bearer {token_for('sales', 'Team')}"}
    for path in (url("d1"), "/api/v1/deals/d1"):
        assert client.get(path, headers=other).status_code == 404
        assert client.get(path, headers=team).status_code == 200
    share = client.post("/api/v1/deals/d1/shares", json={"asset_id": "fit"}, headers=other)
    assert share.status_code == 404
    listed = client.get("/api/v1/deals", headers=other).get_json()
    assert [d["id"] for d in listed["items"]] == ["d2"]
    # Asking for another owner's deals finds nothing rather than everyone's.
    assert client.get("/api/v1/deals?owner_id=o1", headers=other).get_json()["total"] == 0
    assert client.get("/api/v1/deals?q=acme", headers=other).get_json()["total"] == 1
    assert client.get("/api/v1/deals", headers=team).get_json()["total"] == 3


def test_deal_search_takes_owner_id_me_and_open(client, token_for, data):
    mine = {"Authorization": f"Bearer {token_for('sales', 'Rita', owner_id='o1')}"}
    team = {"Authorization": f"Bearer {token_for('sales', 'Team')}"}
    me = client.get("/api/v1/deals?owner_id=me", headers=mine).get_json()
    assert sorted(d["id"] for d in me["items"]) == ["d1", "won"]
    response = client.get("/api/v1/deals?owner_id=me", headers=team)
    assert response.status_code == 422
    open_deals = client.get("/api/v1/deals?open=true", headers=team).get_json()
    assert sorted(d["id"] for d in open_deals["items"]) == ["d1", "d2"]
    closed = client.get("/api/v1/deals?open=false", headers=team).get_json()
    assert [d["id"] for d in closed["items"]] == ["won"]
    fuzzy = client.get("/api/v1/deals?open=true&q=acme%20won", headers=team).get_json()
    assert "won" not in [d["id"] for d in fuzzy["items"]]
    assert client.get("/api/v1/deals?open=maybe", headers=team).status_code == 422


def test_holdout_deals_get_no_items_and_are_logged(settings, data):
    app = create_app(settings.with_overrides(recommendation_holdout=0.5))
    client = app.test_client()
    container = app.extensions["enablement"]
    from enablement.services.tokens import create_token

    token, _ = create_token(container.sessions, "sales", "team")
    headers = {"Authorization": f"Bearer {token}"}
    answers = {d: client.get(url(d), headers=headers).get_json() for d in ("d1", "d2")}
    for deal_id, body in answers.items():
        assert body["holdout"] is in_holdout(deal_id, 0.5)
        if body["holdout"]:
            assert body["items"] == [] and "holdout" in body["message"]
        # Stable: asking again gives the same group.
        assert client.get(url(deal_id), headers=headers).get_json()["holdout"] is body["holdout"]
    held = sum(in_holdout(d, 0.5) for d in ("d1", "d2"))
    assert holdout_counts(container.sessions) == {
        "recommended_deals": 2 - held,
        "holdout_deals": held,
    }
    container.engine.dispose()


def test_a_share_from_a_recommendation_is_counted_through_to_the_buyers_open(
    client, sessions, auth, data
):
    body = client.get(url(limit=2), headers=auth("sales")).get_json()
    impression = body["impression_id"]
    shares = "/api/v1/deals/d1/shares"
    created = client.post(
        shares, json={"asset_id": "fit", "impression_id": impression}, headers=auth("sales")
    )
    assert created.status_code == 201
    with sessions() as session:
        assert session.scalar(select(Share.impression_id)) == impression
    assert (
        client.get(
            created.get_json()["link"].removeprefix("http://testserver"),
            headers={"User-Agent": BROWSER},
        ).status_code
        == 302
    )
    funnel = {row["asset_id"]: row for row in recommendation_funnel(sessions)}
    assert funnel["fit"] == {"asset_id": "fit", "recommended": 1, "shared": 1, "opened": 1}
    assert funnel["plain"] == {"asset_id": "plain", "recommended": 1, "shared": 0, "opened": 0}
    # Novelty: what the deal already got is not suggested again.
    again = client.get(url(limit=5), headers=auth("sales")).get_json()
    assert "fit" not in [i["asset"]["id"] for i in again["items"]]


@pytest.mark.parametrize(
    "change",
    [
        {"impression_id": "0" * 32},  # unknown
        {"asset_id": "early"},  # not listed in that impression
        {"impression_id": "not-hex"},
    ],
)
def test_a_share_must_reference_an_impression_of_that_deal_listing_that_asset(
    client, sessions, auth, data, change
):
    impression = client.get(url(limit=2), headers=auth("sales")).get_json()["impression_id"]
    body = {"asset_id": "fit", "impression_id": impression, **change}
    response = client.post("/api/v1/deals/d1/shares", json=body, headers=auth("sales"))
    assert response.status_code == 422
    other = client.get(url("d2", limit=2), headers=auth("sales")).get_json()["impression_id"]
    wrong_deal = client.post(
        "/api/v1/deals/d1/shares",
        json={"asset_id": "fit", "impression_id": other},
        headers=auth("sales"),
    )
    assert wrong_deal.status_code == 422
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(Share)) == 0


def test_my_shares_lists_the_callers_own(client, token_for, data):
    rita = {"Authorization": f"Bearer {token_for('sales', 'Rita', owner_id='o1')}"}
    team = {"Authorization": f"Bearer {token_for('sales', 'Team')}"}
    client.post("/api/v1/deals/d1/shares", json={"asset_id": "fit"}, headers=rita)
    client.post("/api/v1/deals/d2/shares", json={"asset_id": "plain"}, headers=team)
    mine = client.get("/api/v1/shares?mine=true", headers=rita).get_json()
    assert [(s["deal_id"], s["asset_id"], s["views"]) for s in mine["items"]] == [("d1", "fit", 0)]
    assert mine["total"] == 1 and mine["items"][0]["link"].startswith("http://testserver/l/")
    assert client.get("/api/v1/shares", headers=rita).status_code == 422


def _count_queries(engine, fn) -> int:
    """How many statements fn sends to the database."""
    count = 0

    def before(*_args):
        nonlocal count
        count += 1

    event.listen(engine, "before_cursor_execute", before)
    try:
        fn()
    finally:
        event.remove(engine, "before_cursor_execute", before)
    return count


# The effects read is reused for a few seconds; held for the whole test so both counts match.
@pytest.mark.parametrize(
    "settings",
    [{**EVERY_REQUEST, "recommendation_effects_max_age": timedelta(hours=1)}],
    indirect=True,
    ids=["assets-checked-every-request"],
)
def test_queries_per_recommendation_do_not_grow_with_assets_shares_or_deals(
    client, container, sessions, auth, data
):
    headers = auth("sales")
    client.get(url(), headers=headers)  # the token's first use and the prepared index
    small = _count_queries(container.engine, lambda: client.get(url(), headers=headers))
    for n in range(60):
        insert_asset(sessions, f"more-{n}", stages=["evaluation"], author="Ada Lovelace")
    insert_deals(sessions, *[sample_deal(f"x{n}") for n in range(30)])
    for n in range(20):
        client.post(f"/api/v1/deals/x{n}/shares", json={"asset_id": f"more-{n}"}, headers=headers)
        client.post("/api/v1/deals/d1/shares", json={"asset_id": f"more-{n + 20}"}, headers=headers)
    client.get(url(), headers=headers)  # rebuilds the prepared index once: the assets changed
    large = _count_queries(container.engine, lambda: client.get(url(), headers=headers))
    assert large == small
    assert small <= 12


def test_cli_recommend_prints_a_table_or_json(runner, sessions, data):
    result = runner("recommend", "d1", "--limit", "2")
    assert result.exit_code == 0, result.output
    assert "fit" in result.stdout and "impression" in result.stdout
    as_json = runner("recommend", "d1", "--format", "json")
    body = json.loads(as_json.stdout)
    assert body["items"][0]["asset"]["id"] == "fit"
    with sessions() as session:
        sources = session.scalars(select(RecommendationImpression.source)).all()
        assert sources == ["cli", "cli"]
        assert session.scalar(select(func.count()).select_from(RecommendationItem)) == 2 + 3
    missing = runner("recommend", "nope")
    assert missing.exit_code == 1 and "no deal" in missing.stderr
    assert runner("recommend", "d1", "--limit", "0").exit_code == 2


def test_cli_recommend_cuts_no_title_or_reason_mid_word(runner, sessions, data):
    from enablement.db.models import Asset

    title = "How to judge revenue forecasting vendors: a buyer's checklist for finance leaders"
    with sessions.begin() as session:
        session.get(Asset, "fit").title = title
    result = runner("recommend", "d1", "--limit", "3")
    assert result.exit_code == 0, result.output
    printed = " ".join(result.stdout.split())
    # Every word of the title and of each reason is printed whole (cells wrap, never cut).
    for word in title.split():
        assert f" {word} " in f" {printed} ", word
    answer = json.loads(runner("recommend", "d1", "--limit", "3", "--format", "json").stdout)
    for item in answer["items"]:
        for reason in item["reasons"][1:3]:
            for word in reason.replace(";", " ").split():
                assert word in printed, word


@pytest.mark.parametrize("deal_id", ["d%00", "%ED%A0%80", "x" * 65])
def test_hostile_deal_ids_are_404_on_every_deal_route(client, auth, data, deal_id):
    assert client.get(f"/api/v1/deals/{deal_id}", headers=auth("sales")).status_code == 404
    shared = client.post(
        f"/api/v1/deals/{deal_id}/shares", json={"asset_id": "fit"}, headers=auth("sales")
    )
    assert shared.status_code == 404


@pytest.mark.parametrize(
    "settings", [EVERY_REQUEST], indirect=True, ids=["assets-checked-every-request"]
)
def test_a_retired_asset_leaves_the_recommendations(client, sessions, auth, data):
    assert "fit" in [
        i["asset"]["id"] for i in client.get(url(), headers=auth("sales")).get_json()["items"]
    ]
    response = client.patch(
        "/api/v1/assets/fit", json={"status": "retired"}, headers=auth("marketing")
    )
    assert response.status_code == 200
    after = client.get(url(), headers=auth("sales")).get_json()
    assert "fit" not in [i["asset"]["id"] for i in after["items"]]
