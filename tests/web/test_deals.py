"""GET /api/v1/deals (fuzzy search, filters, paging) and GET /api/v1/deals/<id>."""

from datetime import timedelta

import pytest
from sqlalchemy import select

from enablement.db.models import Deal, LinkView, Share
from enablement.db.types import utcnow
from tests.crm_data import T0, insert_asset, insert_deals, insert_pipeline, iso, sample_deal


@pytest.fixture
def deals(sessions):
    insert_pipeline(sessions)
    insert_deals(
        sessions,
        sample_deal("d1", name="Globex renewal", company="Globex Corporation", owner_id="o1"),
        sample_deal(
            "d2",
            name="Initech expansion",
            company="Initech",
            owner_id="o2",
            history=((0, "disc"), (1, "prop")),
            created_at=iso(T0 + timedelta(days=1)),
        ),
        sample_deal(
            "d3",
            name="Umbrella pilot",
            company="Umbrella Health",
            owner_id="o1",
            history=((0, "disc"),),
            created_at=iso(T0 + timedelta(days=2)),
        ),
        sample_deal("d4", name="Globex old", company="Globex Corporation", deleted=True),
    )


def ids(response):
    assert response.status_code == 200, response.get_json()
    return [item["id"] for item in response.get_json()["items"]]


def test_the_list_is_paged_newest_first_and_leaves_out_deleted_deals(client, auth, deals):
    response = client.get("/api/v1/deals?per_page=2", headers=auth("sales"))
    body = response.get_json()
    assert ids(response) == ["d3", "d2"]
    assert (body["page"], body["per_page"], body["total"]) == (1, 2, 3)
    assert ids(client.get("/api/v1/deals?per_page=2&page=2", headers=auth("sales"))) == ["d1"]


def test_search_is_fuzzy_on_name_and_company(client, auth, deals):
    headers = auth("sales")
    assert ids(client.get("/api/v1/deals?q=globx", headers=headers)) == ["d1"]
    assert ids(client.get("/api/v1/deals?q=umbrela%20health", headers=headers)) == ["d3"]
    assert ids(client.get("/api/v1/deals?q=initech", headers=headers))[0] == "d2"
    assert ids(client.get("/api/v1/deals?q=zzzzqqq", headers=headers)) == []
    item = client.get("/api/v1/deals?q=initech", headers=headers).get_json()["items"][0]
    assert item["score"] > 70


def test_filters_by_owner_buying_stage_and_crm_stage(client, auth, deals):
    headers = auth("sales")
    assert ids(client.get("/api/v1/deals?owner_id=o1", headers=headers)) == ["d3", "d1"]
    assert ids(client.get("/api/v1/deals?stage=closing", headers=headers)) == ["d2"]
    assert ids(client.get("/api/v1/deals?stage=disc", headers=headers)) == ["d3"]
    assert ids(client.get("/api/v1/deals?stage=disc&q=umbrella", headers=headers)) == ["d3"]
    assert ids(client.get("/api/v1/deals?stage=nope", headers=headers)) == []


def test_a_list_item_carries_current_crm_and_buying_stage(client, auth, deals):
    items = client.get("/api/v1/deals?q=initech", headers=auth("sales")).get_json()["items"]
    assert items[0]["stage"] == {"id": "prop", "label": "Proposal sent"}
    assert items[0]["buying_stage"] == "closing"


@pytest.mark.parametrize(
    "query",
    ["per_page=201", "per_page=0", "page=0", "page=x", "colour=red", "q=" + "x" * 201],
)
def test_bad_query_parameters_are_422(client, auth, deals, query):
    response = client.get(f"/api/v1/deals?{query}", headers=auth("sales"))
    assert response.status_code == 422


def test_hostile_search_strings_are_just_text(client, auth, deals):
    # A NUL byte is not text the database can store: 422 (tests/web/test_hostile_input.py).
    for q in ["'; DROP TABLE deals;--", "%", "_", "<script>", "🙂" * 50]:
        response = client.get("/api/v1/deals", query_string={"q": q}, headers=auth("sales"))
        assert response.status_code == 200
    with client.application.extensions["enablement"].sessions() as session:
        assert len(session.scalars(select(Deal)).all()) == 4


def test_a_deal_shows_history_with_labels_and_buying_stages(client, auth, deals):
    response = client.get("/api/v1/deals/d2", headers=auth("sales"))
    assert response.status_code == 200
    body = response.get_json()
    assert body["stage"] == {"id": "prop", "label": "Proposal sent"}
    assert body["buying_stage"] == "closing"
    assert body["pipeline"] == {"id": "p1", "label": "Sales"}
    assert [(h["stage_id"], h["label"], h["buying_stage"]) for h in body["stage_history"]] == [
        ("disc", "Discovery call", "interest"),
        ("prop", "Proposal sent", "closing"),
    ]
    assert body["stage_history"][0]["entered_at"] == "2026-01-05T09:00:00Z"
    assert body["personas"] == ["cfo"]
    assert body["shares"] == []


def test_a_deal_shows_its_shares_with_asset_titles_and_view_counts(client, auth, sessions, deals):
    insert_asset(sessions, "a1", title="Why pilots fail")
    with sessions.begin() as session:
        share = Share(deal_id="d1", asset_id="a1", shared_at=utcnow(), shared_by="o1")
        session.add(share)
        session.flush()
        session.add_all([LinkView(share_id=share.id, viewed_at=utcnow()) for _ in range(3)])
    body = client.get("/api/v1/deals/d1", headers=auth("sales")).get_json()
    assert len(body["shares"]) == 1
    shared = body["shares"][0]
    assert (shared["asset_title"], shared["views"], shared["shared_by"]) == (
        "Why pilots fail",
        3,
        "o1",
    )
    assert shared["link"].startswith("http://testserver/l/")


def test_a_deleted_deal_still_shows_with_its_deletion_time(client, auth, deals):
    body = client.get("/api/v1/deals/d4", headers=auth("sales")).get_json()
    assert body["deleted_at"] is not None


@pytest.mark.parametrize("deal_id", ["nope", "..%2F..%2Fetc", "x" * 300, "%3Cscript%3E"])
def test_an_unknown_deal_is_404(client, auth, deals, deal_id):
    response = client.get(f"/api/v1/deals/{deal_id}", headers=auth("sales"))
    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == "not_found"


@pytest.mark.parametrize("path", ["/api/v1/deals", "/api/v1/deals/d1"])
def test_deals_need_a_valid_token(client, deals, path):
    assert client.get(path).status_code == 401
    assert client.get(path, headers={"Authorization": "Bearer enb_wrong"}).status_code == 401
    assert client.get(path, headers={"Authorization": "Basic abc"}).status_code == 401


@pytest.mark.parametrize("role", ["sales", "marketing", "admin"])
def test_every_role_may_read_deals(client, auth, deals, role):
    assert client.get("/api/v1/deals/d1", headers=auth(role)).status_code == 200


def test_search_sees_renames_deletions_and_stage_map_changes_at_once(client, auth, sessions, deals):
    headers = auth("admin")
    assert ids(client.get("/api/v1/deals?q=initech", headers=headers))[0] == "d2"
    insert_deals(sessions, sample_deal("d3", name="Soylent rollout", company="Soylent"))
    assert ids(client.get("/api/v1/deals?q=soylent", headers=headers)) == ["d3"]
    # Deleted in the CRM: a deals file (or a sync) delivers the deal archived.
    insert_deals(
        sessions, sample_deal("d3", name="Soylent rollout", company="Soylent", deleted=True)
    )
    assert ids(client.get("/api/v1/deals?q=soylent", headers=headers)) == []
    assert ids(client.get("/api/v1/deals?q=initech&stage=closing", headers=headers)) == ["d2"]
    client.put("/api/v1/stage-map/p1/prop", json={"buying_stage": "evaluation"}, headers=headers)
    assert ids(client.get("/api/v1/deals?q=initech&stage=closing", headers=headers)) == []
    assert ids(client.get("/api/v1/deals?q=initech&stage=evaluation", headers=headers)) == ["d2"]
    assert ids(client.get("/api/v1/deals?q=initech&owner_id=o1", headers=headers)) == []
