"""The asset API: create, list with filters, read, update, retire; roles and bad input."""

from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import func, select

from enablement.db.models import Asset, AssetTag, Deal, Pipeline, Share
from tests.asset_data import asset_record

URL = "/api/v1/assets"


@pytest.fixture
def create(client, auth):
    """POST an asset record as marketing; returns the response."""

    def post(i=1, **changes):
        return client.post(URL, json=asset_record(i, **changes), headers=auth("marketing"))

    return post


def count_assets(sessions) -> int:
    with sessions() as session:
        return session.scalar(select(func.count()).select_from(Asset))


def listing(client, auth, query="") -> dict:
    response = client.get(f"{URL}?{query}", headers=auth("sales"))
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def test_create_answers_201_with_the_asset_flags_and_no_warnings(create, sessions):
    response = create(review_by="2099-01-01")
    assert response.status_code == 201
    body = response.get_json()
    assert body["id"] == "asset-1"
    assert body["status"] == "approved" and body["live"] is True and body["stale"] is False
    assert body["published_at"].startswith("2025-06-01T09:00:00")
    assert body["review_by"] == "2099-01-01"
    assert body["pitch_flag"] is False and body["pitch_score"] == 0.0
    assert body["warnings"] == []
    with sessions() as session:
        tags = {(t.dimension, t.value) for t in session.scalars(select(AssetTag))}
    assert tags == {
        ("stage", "evaluation"),
        ("persona", "cfo"),
        ("industry", "manufacturing"),
        ("topic", "ai adoption"),
    }


def test_create_without_an_id_derives_one_from_the_url(create):
    first = create(id=None).get_json()
    assert first["id"].startswith("u-")


def test_create_with_a_taken_id_is_a_conflict(create, sessions):
    assert create().status_code == 201
    response = create(title="Something else entirely")
    assert response.status_code == 409
    assert response.get_json()["error"]["code"] == "conflict"
    assert count_assets(sessions) == 1


def test_create_reports_a_near_duplicate_but_still_creates(create, sessions):
    create(1)
    response = create(
        2,
        title="Field notes on buying committees, part 1!",
        url="https://INSIGHTS.example.com/notes/1/?utm_source=newsletter",
    )
    assert response.status_code == 201
    (warning,) = response.get_json()["warnings"]
    assert warning["asset_id"] == "asset-2" and warning["of"] == "asset-1"
    assert warning["reason"] == "same_url" and warning["kind"] == "near_duplicate"
    assert count_assets(sessions) == 2


def test_retired_assets_are_not_near_duplicate_candidates(create, client, auth):
    create(1)
    client.delete(f"{URL}/asset-1", headers=auth("marketing"))
    response = create(2, title="Field notes on buying committees, part 1")
    assert response.get_json()["warnings"] == []


def test_pitch_score_uses_the_configured_product_terms(create, container):
    container.settings = container.settings.with_overrides(product_terms=("Acme Cloud",))
    body = create(
        title="Acme Cloud pricing explained",
        summary="Acme Cloud has every feature. Book a demo of Acme Cloud.",
    ).get_json()
    assert body["pitch_flag"] is True and body["pitch_score"] > 0.35


def test_list_filters_by_tags_case_insensitively(create, client, auth):
    create(1, personas=["CFO"], industries=["Retail"], stages=["awareness"])
    create(2, personas=["CTO"], industries=["Manufacturing"], stages=["evaluation", "closing"])
    assert [a["id"] for a in listing(client, auth, "persona=cfo")["items"]] == ["asset-1"]
    assert [a["id"] for a in listing(client, auth, "industry=MANUFACTURING")["items"]] == [
        "asset-2"
    ]
    assert [a["id"] for a in listing(client, auth, "stage=closing")["items"]] == ["asset-2"]
    assert listing(client, auth, "stage=closing&persona=cfo")["total"] == 0
    assert [a["id"] for a in listing(client, auth, "topic=SECURITY")["items"]] == ["asset-2"]


def test_list_searches_title_summary_and_author(create, client, auth):
    create(1, title="Procurement playbook", author="Ada Lovelace", summary="x")
    create(2, title="Roadmaps", author="Grace Hopper", summary="On PROCUREMENT cycles")
    create(3, title="Other", author="Alan Turing", summary="y")
    ids = [a["id"] for a in listing(client, auth, "q=procurement")["items"]]
    assert sorted(ids) == ["asset-1", "asset-2"]
    assert [a["id"] for a in listing(client, auth, "q=turing")["items"]] == ["asset-3"]


def test_search_treats_like_wildcards_and_sql_as_plain_text(create, client, auth, sessions):
    create(1, title="100% of buyers")
    create(2, title="Buyers in 2025")
    assert [a["id"] for a in listing(client, auth, "q=100%25")["items"]] == ["asset-1"]
    assert listing(client, auth, "q=_")["total"] == 0
    hostile = listing(client, auth, "q=%27%3B%20DROP%20TABLE%20assets%3B%20--")
    assert hostile["total"] == 0
    assert count_assets(sessions) == 2


def test_status_filters_live_stale_draft_and_retired(create, client, auth):
    yesterday = (date.today() - timedelta(days=2)).isoformat()
    create(1)
    create(2, review_by=yesterday)
    create(3, status="draft")
    create(4)
    client.delete(f"{URL}/asset-4", headers=auth("marketing"))

    def ids(query):
        return sorted(a["id"] for a in listing(client, auth, query)["items"])

    assert ids("") == ["asset-1", "asset-2", "asset-3"]
    assert ids("status=live") == ["asset-1"]
    assert ids("status=stale") == ["asset-2"]
    assert ids("status=approved") == ["asset-1", "asset-2"]
    assert ids("status=draft") == ["asset-3"]
    assert ids("status=retired") == ["asset-4"]
    assert ids("status=all") == ["asset-1", "asset-2", "asset-3", "asset-4"]
    stale = client.get(f"{URL}/asset-2", headers=auth("sales")).get_json()
    assert stale["stale"] is True and stale["live"] is False


def test_list_is_paged(create, client, auth):
    for i in range(5):
        create(i)
    page = listing(client, auth, "page=2&per_page=2")
    assert page["page"] == 2 and page["per_page"] == 2 and page["total"] == 5
    assert len(page["items"]) == 2
    assert "body" not in page["items"][0]


@pytest.mark.parametrize(
    "query",
    ["per_page=201", "page=0", "stage=discovery", "status=gone", "colour=red", "q=" + "x" * 201],
)
def test_bad_list_queries_answer_422(client, auth, query):
    response = client.get(f"{URL}?{query}", headers=auth("sales"))
    assert response.status_code == 422
    assert response.get_json()["error"]["code"] == "invalid_input"


def test_get_answers_the_asset_with_its_body_and_404_for_an_unknown_id(create, client, auth):
    create(body="The full text.")
    assert client.get(f"{URL}/asset-1", headers=auth("sales")).get_json()["body"] == (
        "The full text."
    )
    response = client.get(f"{URL}/nope", headers=auth("sales"))
    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == "not_found"


def test_patch_changes_fields_and_keeps_the_tag_index_in_sync(create, client, auth, sessions):
    create(personas=["CFO"])
    response = client.patch(
        f"{URL}/asset-1",
        json={"personas": ["Head of Procurement"], "review_by": None, "summary": "New"},
        headers=auth("marketing"),
    )
    assert response.status_code == 200
    assert response.get_json()["personas"] == ["Head of Procurement"]
    assert response.get_json()["summary"] == "New"
    assert listing(client, auth, "persona=cfo")["total"] == 0
    assert listing(client, auth, "persona=head%20of%20procurement")["total"] == 1
    with sessions() as session:
        personas = session.scalars(select(AssetTag.value).where(AssetTag.dimension == "persona"))
        assert list(personas) == ["head of procurement"]


def test_patch_to_retired_sets_retired_at_and_back_to_approved_clears_it(create, client, auth):
    create()
    retired = client.patch(f"{URL}/asset-1", json={"status": "retired"}, headers=auth("marketing"))
    assert retired.get_json()["retired_at"] is not None
    revived = client.patch(f"{URL}/asset-1", json={"status": "approved"}, headers=auth("marketing"))
    assert revived.get_json()["retired_at"] is None and revived.get_json()["live"] is True


@pytest.mark.parametrize(
    "body",
    [
        {"id": "other"},
        {"colour": "red"},
        {"title": None},
        {"title": ""},
        {"url": "javascript:alert(1)"},
        {"stages": ["discovery"]},
        {"series_order": "two"},
        {"published_at": "2025-01-01T10:00:00"},
    ],
)
def test_bad_patches_answer_422_and_change_nothing(create, client, auth, body):
    create()
    response = client.patch(f"{URL}/asset-1", json=body, headers=auth("marketing"))
    assert response.status_code == 422
    after = client.get(f"{URL}/asset-1", headers=auth("sales")).get_json()
    assert after["title"] == asset_record()["title"] and after["url"] == asset_record()["url"]


def test_patch_of_an_unknown_asset_is_404(client, auth):
    response = client.patch(f"{URL}/nope", json={"title": "x"}, headers=auth("marketing"))
    assert response.status_code == 404


def test_delete_retires_and_keeps_the_share_history(create, client, auth, sessions):
    create()
    now = datetime.now(UTC)
    with sessions.begin() as session:
        session.add(Pipeline(id="p", label="Sales"))
        session.flush()
        session.add(Deal(id="d1", name="Deal", pipeline_id="p", created_at=now))
        session.flush()
        session.add(Share(deal_id="d1", asset_id="asset-1", shared_at=now))
    response = client.delete(f"{URL}/asset-1", headers=auth("marketing"))
    assert response.status_code == 200
    body = response.get_json()
    assert body["status"] == "retired" and body["retired_at"] is not None and body["live"] is False
    again = client.delete(f"{URL}/asset-1", headers=auth("marketing")).get_json()
    assert again["retired_at"] == body["retired_at"]
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(Share)) == 1
        assert session.get(Asset, "asset-1").status == "retired"
    assert client.delete(f"{URL}/nope", headers=auth("marketing")).status_code == 404


def test_sales_can_read_but_not_write(create, client, auth, sessions):
    create()
    assert client.get(URL, headers=auth("sales")).status_code == 200
    assert client.get(f"{URL}/asset-1", headers=auth("sales")).status_code == 200
    sales = auth("sales")
    assert client.post(URL, json=asset_record(2), headers=sales).status_code == 403
    assert client.patch(f"{URL}/asset-1", json={"title": "x"}, headers=sales).status_code == 403
    assert client.delete(f"{URL}/asset-1", headers=sales).status_code == 403
    assert count_assets(sessions) == 1
    assert client.get(f"{URL}/asset-1", headers=sales).get_json()["status"] == "approved"


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": "x"}])
def test_missing_or_wrong_tokens_answer_401(client, headers):
    assert client.get(URL, headers=headers).status_code == 401
    assert client.post(URL, json=asset_record(), headers=headers).status_code == 401


def test_malformed_json_answers_400(client, auth, sessions):
    response = client.post(
        URL, data='{"title": ', content_type="application/json", headers=auth("marketing")
    )
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "bad_request"
    assert count_assets(sessions) == 0


def test_a_body_that_is_not_json_answers_415(client, auth, sessions):
    response = client.post(URL, data="title=x", headers=auth("marketing"))
    assert response.status_code == 415
    assert count_assets(sessions) == 0


def test_an_oversized_body_answers_413_and_creates_nothing(client, auth, sessions, settings):
    record = asset_record(body="x" * (settings.max_body_bytes + 10))
    response = client.post(URL, json=record, headers=auth("marketing"))
    assert response.status_code == 413
    assert response.get_json()["error"]["code"] == "payload_too_large"
    assert count_assets(sessions) == 0


@pytest.mark.parametrize(
    "changes",
    [
        {"colour": "red"},
        {"title": 5},
        {"topics": "security"},
        {"published_at": "2025-06-01T09:00:00"},
        {"review_by": "2025-06-01T09:00:00Z"},
        {"url": "javascript:alert(document.cookie)"},
        {"url": "data:text/html;base64,PHNjcmlwdD4="},
        {"url": "ftp://files.example.com/a.pdf"},
        {"url": "/relative"},
        {"title": "nul\x00byte"},
        {"title": "t" * 501},
        {"personas": [f"p{i}" for i in range(51)]},
        {"kind": "tweet"},
        {"id": "../../etc/passwd"},
    ],
)
def test_invalid_asset_bodies_answer_422_and_create_nothing(create, sessions, changes):
    response = create(**changes)
    assert response.status_code == 422, response.get_json()
    assert response.get_json()["error"]["code"] == "invalid_input"
    assert count_assets(sessions) == 0


def test_a_json_array_as_a_create_body_answers_422(client, auth):
    response = client.post(URL, json=[asset_record()], headers=auth("marketing"))
    assert response.status_code == 422


def test_html_and_sql_in_text_come_back_as_data(create, client, auth, sessions):
    title = "<script>alert('x')</script> Robert'); DROP TABLE assets;--"
    create(title=title, author="<img src=x onerror=alert(1)>")
    response = client.get(f"{URL}/asset-1", headers=auth("sales"))
    assert response.mimetype == "application/json"
    assert response.get_json()["title"] == title
    assert response.get_json()["author"] == "<img src=x onerror=alert(1)>"
    assert count_assets(sessions) == 1
