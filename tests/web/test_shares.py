"""POST /api/v1/deals/<id>/shares: roles, live assets, backfills, idempotency, links."""

from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from enablement.db.models import Share
from enablement.domain.links import link_token, token_hash
from tests.crm_data import insert_asset, insert_deals, insert_pipeline, sample_deal

URL = "/api/v1/deals/d1/shares"


@pytest.fixture
def data(sessions):
    insert_pipeline(sessions)
    insert_deals(sessions, sample_deal("d1"), sample_deal("d2", deleted=True))
    insert_asset(sessions, "a1")
    insert_asset(sessions, "draft", status="draft")
    insert_asset(sessions, "old", status="retired", retired_at=datetime(2026, 1, 1, tzinfo=UTC))


def shares(sessions):
    with sessions() as session:
        return session.scalars(select(Share).order_by(Share.id)).all()


def test_sales_shares_a_live_asset_and_gets_a_trackable_link(
    client, sessions, token_for, settings, data
):
    headers = {"Authorization": f"Bearer {token_for('sales', 'Rita Rep', owner_id='o1')}"}
    response = client.post(URL, json={"asset_id": "a1", "channel": "email"}, headers=headers)
    assert response.status_code == 201
    body = response.get_json()
    assert set(body) == {"id", "link", "shared_at"}
    stored = shares(sessions)[0]
    token = link_token(settings.secret_key, stored.id)
    assert body["link"] == f"http://testserver/l/{token}"
    assert stored.link_token_hash == token_hash(token)
    assert token not in (stored.link_token_hash or "")
    assert (stored.shared_by, stored.channel, stored.source) == ("o1", "email", "api")
    assert stored.writeback_state is None


def test_shared_by_is_the_token_name_without_an_owner_id(client, sessions, auth, data):
    client.post(URL, json={"asset_id": "a1"}, headers=auth("marketing"))
    assert shares(sessions)[0].shared_by == "test marketing"


def test_only_an_admin_may_backfill_shared_at(client, sessions, auth, data):
    body = {"asset_id": "a1", "shared_at": "2026-01-20T10:00:00+01:00"}
    for role in ("sales", "marketing"):
        assert client.post(URL, json=body, headers=auth(role)).status_code == 403
    response = client.post(URL, json=body, headers=auth("admin"))
    assert response.status_code == 201
    assert response.get_json()["shared_at"] == "2026-01-20T09:00:00Z"
    assert shares(sessions)[0].source == "backfill"


def test_the_same_backfilled_share_twice_returns_the_existing_one(client, sessions, auth, data):
    body = {"asset_id": "a1", "shared_at": "2026-01-20T10:00:00Z"}
    first = client.post(URL, json=body, headers=auth("admin"))
    second = client.post(URL, json=body, headers=auth("admin"))
    assert (first.status_code, second.status_code) == (201, 200)
    assert first.get_json() == second.get_json()
    assert len(shares(sessions)) == 1


def test_writeback_marks_new_shares_pending(app, client, sessions, auth, data):
    container = app.extensions["enablement"]
    container.settings = container.settings.with_overrides(hubspot_writeback="notes")
    client.post(URL, json={"asset_id": "a1"}, headers=auth("sales"))
    assert shares(sessions)[0].writeback_state == "pending"


@pytest.mark.parametrize("asset_id", ["draft", "old"])
def test_an_asset_that_is_not_live_is_409(client, sessions, auth, data, asset_id):
    response = client.post(URL, json={"asset_id": asset_id}, headers=auth("sales"))
    assert response.status_code == 409
    assert shares(sessions) == []


@pytest.mark.parametrize(
    "url,asset_id",
    [
        (URL, "nope"),
        ("/api/v1/deals/nope/shares", "a1"),
        ("/api/v1/deals/d2/shares", "a1"),  # deleted deal
    ],
)
def test_an_unknown_deal_or_asset_is_404(client, auth, data, url, asset_id):
    assert client.post(url, json={"asset_id": asset_id}, headers=auth("sales")).status_code == 404


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"asset_id": ""},
        {"asset_id": 5},
        {"asset_id": "a" * 65},
        {"asset_id": "a1", "extra": True},
        {"asset_id": "a1", "channel": "e\nmail"},
        {"asset_id": "a1", "channel": "<script>alert(1)</script>"},
        {"asset_id": "a1", "channel": "x" * 33},
        {"asset_id": "a1", "shared_at": "2026-01-20T10:00:00"},
        {"asset_id": "a1", "shared_at": "yesterday"},
        ["a1"],
        "a1",
    ],
)
def test_bad_bodies_are_422_and_store_nothing(client, sessions, auth, data, body):
    response = client.post(URL, json=body, headers=auth("admin"))
    assert response.status_code == 422
    assert response.get_json()["error"]["code"] == "invalid_input"
    assert shares(sessions) == []


def test_malformed_json_is_400(client, auth, data):
    headers = {**auth("sales"), "Content-Type": "application/json"}
    assert client.post(URL, data='{"asset_id": ', headers=headers).status_code == 400


def test_another_content_type_is_415(client, auth, data):
    headers = {**auth("sales"), "Content-Type": "text/plain"}
    assert client.post(URL, data='{"asset_id": "a1"}', headers=headers).status_code == 415


def test_an_oversized_body_is_413(client, auth, data):
    body = '{"asset_id": "' + "a" * (6 * 1024 * 1024) + '"}'
    headers = {**auth("sales"), "Content-Type": "application/json"}
    assert client.post(URL, data=body, headers=headers).status_code == 413


def test_sharing_needs_a_valid_token(client, sessions, data):
    assert client.post(URL, json={"asset_id": "a1"}).status_code == 401
    bad = {"Authorization": "Bearer enb_wrong"}
    assert client.post(URL, json={"asset_id": "a1"}, headers=bad).status_code == 401
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(Share)) == 0


def test_concurrent_identical_backfills_store_one_share(app, settings, sessions, data):
    import threading

    from enablement.services.shares import create_share

    if settings.is_sqlite:
        pytest.skip("concurrent writers are a PostgreSQL (scale-out) concern")
    when = datetime(2026, 1, 20, 10, tzinfo=UTC)
    barrier, results, errors = threading.Barrier(6), [], []

    def share():
        barrier.wait()
        try:
            results.append(
                create_share(
                    sessions,
                    settings,
                    "d1",
                    "a1",
                    actor="token:1",
                    shared_by="x",
                    shared_at=when,
                    may_backfill=True,
                )
            )
        except Exception as e:  # noqa: BLE001 - collected and asserted below
            errors.append(e)

    threads = [threading.Thread(target=share) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len({r[0]["id"] for r in results}) == 1
    assert sum(created for _, created in results) == 1
    assert len(shares(sessions)) == 1


def _bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def _mine(client, headers) -> list[tuple[str, str]]:
    body = client.get("/api/v1/shares?mine=true", headers=headers).get_json()
    assert body["total"] == len(body["items"])
    return [(s["deal_id"], s["asset_id"]) for s in body["items"]]


def test_two_team_tokens_with_the_same_name_have_their_own_shares(
    client, sessions, token_for, data
):
    alex, other_alex = (_bearer(token_for("sales", "Alex")) for _ in range(2))
    first = client.post(URL, json={"asset_id": "a1"}, headers=alex)
    # Not a repeat of the first share: another token, though named alike, within the window.
    second = client.post(URL, json={"asset_id": "a1"}, headers=other_alex)
    assert (first.status_code, second.status_code) == (201, 201)
    assert first.get_json()["id"] != second.get_json()["id"]
    assert client.post(URL, json={"asset_id": "a1"}, headers=alex).get_json() == first.get_json()
    with sessions() as session:
        ids = {s.id for s in session.scalars(select(Share))}
    assert len(ids) == 2
    assert _mine(client, alex) == [("d1", "a1")]
    assert (
        client.get("/api/v1/shares?mine=true", headers=alex).get_json()["items"][0]["id"]
        == first.get_json()["id"]
    )
    # Display is unchanged: both read "Alex".
    assert [s.shared_by for s in shares(sessions)] == ["Alex", "Alex"]


def test_a_team_token_named_like_an_owner_id_sees_none_of_that_owners_shares(
    client, token_for, data
):
    owner = _bearer(token_for("sales", "Rita", owner_id="o1"))
    impostor = _bearer(token_for("sales", "o1"))
    assert client.post(URL, json={"asset_id": "a1"}, headers=owner).status_code == 201
    assert _mine(client, impostor) == []
    assert client.post(URL, json={"asset_id": "a1"}, headers=impostor).status_code == 201
    assert _mine(client, owner) == [("d1", "a1")]
    assert len(_mine(client, impostor)) == 1


def test_an_owner_bound_token_sees_its_owners_shares_made_by_any_of_its_tokens(
    client, token_for, data
):
    laptop = _bearer(token_for("sales", "Rita laptop", owner_id="o1"))
    phone = _bearer(token_for("sales", "Rita phone", owner_id="o1"))
    someone_else = _bearer(token_for("sales", "Sam", owner_id="o2"))
    shared = client.post(URL, json={"asset_id": "a1"}, headers=laptop)
    # The owner is the person: a repeat from the phone within the window is the same share.
    again = client.post(URL, json={"asset_id": "a1"}, headers=phone)
    assert (shared.status_code, again.status_code) == (201, 200)
    assert again.get_json() == shared.get_json()
    assert _mine(client, phone) == _mine(client, laptop) == [("d1", "a1")]
    assert _mine(client, someone_else) == []


def test_tokens_named_like_an_owner_or_an_actor_never_reach_that_owners_shares_or_links(
    client, sessions, settings, token_for
):
    from enablement.services.demo import load_demo

    load_demo(sessions, settings, deals=60, assets=20, seed=3)
    with sessions() as session:
        owner_id, count = session.execute(
            select(Share.shared_by, func.count())
            .where(Share.actor.like("owner:%"))
            .group_by(Share.shared_by)
            .order_by(func.count().desc())
        ).first()
        deal_id, asset_id = session.execute(
            select(Share.deal_id, Share.asset_id).where(Share.actor == f"owner:{owner_id}")
        ).first()
    assert count > 0
    owner = _bearer(token_for("sales", "Rita", owner_id=owner_id))
    owners_view = client.get("/api/v1/shares?mine=true&per_page=200", headers=owner).get_json()
    assert owners_view["total"] == count
    owners_links = {s["link"] for s in owners_view["items"]}
    fresh = client.post(
        f"/api/v1/deals/{deal_id}/shares", json={"asset_id": asset_id}, headers=owner
    )
    assert fresh.status_code == 201
    owners_links.add(fresh.get_json()["link"])
    for name in (owner_id, f"owner:{owner_id}", " " + owner_id, "token:1"):
        for _ in range(2):  # two tokens of the same name: neither reaches the other's either
            impostor = _bearer(token_for("sales", name))
            answer = client.get("/api/v1/shares?mine=true&per_page=200", headers=impostor)
            assert answer.get_json()["total"] == 0
            # Within the repeat window of the owner's share: a share of its own, never the owner's.
            again = client.post(
                f"/api/v1/deals/{deal_id}/shares", json={"asset_id": asset_id}, headers=impostor
            )
            assert again.status_code == 201
            assert again.get_json()["link"] not in owners_links
            assert [
                s["link"]
                for s in client.get("/api/v1/shares?mine=true", headers=impostor).get_json()[
                    "items"
                ]
            ] == [again.get_json()["link"]]
