"""GET /l/<token>: redirect to the asset's own URL, count human views only, never redirect elsewhere."""

import pytest
from sqlalchemy import func, select

from enablement.db.models import Asset, LinkView
from tests.crm_data import insert_asset, insert_deals, insert_pipeline, sample_deal

BROWSER = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/124.0 Safari/537.36"
)
ASSET_URL = "https://content.example/why-pilots-fail?utm_source=x"


@pytest.fixture
def link(client, sessions, auth):
    insert_pipeline(sessions)
    insert_deals(sessions, sample_deal("d1"))
    insert_asset(sessions, "a1", url=ASSET_URL)
    response = client.post(
        "/api/v1/deals/d1/shares", json={"asset_id": "a1"}, headers=auth("sales")
    )
    return response.get_json()["link"].removeprefix("http://testserver")


def views(sessions) -> int:
    with sessions() as session:
        return session.scalar(select(func.count()).select_from(LinkView))


def test_a_link_redirects_to_the_asset_and_records_a_view(client, sessions, link):
    response = client.get(link, headers={"User-Agent": BROWSER})
    assert response.status_code == 302
    assert response.headers["Location"] == ASSET_URL
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert views(sessions) == 1
    with sessions() as session:
        assert session.scalars(select(LinkView)).one().user_agent == BROWSER


def test_each_open_counts(client, sessions, link):
    for _ in range(3):
        client.get(link, headers={"User-Agent": BROWSER})
    assert views(sessions) == 3


@pytest.mark.parametrize(
    "agent",
    [
        "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)",
        "LinkedInBot/1.0 (compatible; Mozilla/5.0; Apache-HttpClient +http://www.linkedin.com)",
        "facebookexternalhit/1.1",
        "WhatsApp/2.23.20.0",
        "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
        "curl/8.5.0",
        "",
    ],
)
def test_bots_and_previews_are_redirected_but_not_counted(client, sessions, link, agent):
    response = client.get(link, headers={"User-Agent": agent})
    assert response.status_code == 302
    assert response.headers["Location"] == ASSET_URL
    assert views(sessions) == 0


def test_a_head_request_is_not_counted(client, sessions, link):
    response = client.head(link, headers={"User-Agent": BROWSER})
    assert response.status_code == 302
    assert views(sessions) == 0


@pytest.mark.parametrize(
    "suffix",
    [
        "?next=https://evil.example",
        "?url=https://evil.example&redirect=//evil.example",
        "?Location=https://evil.example",
    ],
)
def test_query_strings_never_change_the_target(client, link, suffix):
    response = client.get(link + suffix, headers={"User-Agent": BROWSER})
    assert response.status_code == 302
    assert response.headers["Location"] == ASSET_URL


@pytest.mark.parametrize(
    "path",
    [
        "/l/AAAAAAAAAAAAAAAAAAAAAA",  # the right shape, no such share
        "/l/..%2F..%2F",
        "/l/../api/v1/deals",
        "/l/" + "a" * 5000,
        "/l/%00",
        "/l/https:%2F%2Fevil.example",
        "/l/",
    ],
)
def test_unknown_and_malformed_tokens_are_404(client, sessions, link, path):
    response = client.get(path, headers={"User-Agent": BROWSER})
    assert response.status_code == 404
    assert "Location" not in response.headers
    assert views(sessions) == 0


def test_a_tampered_token_is_404(client, link):
    token = link.rsplit("/", 1)[1]
    tampered = token[:-1] + ("A" if token[-1] != "A" else "B")
    assert client.get(f"/l/{tampered}", headers={"User-Agent": BROWSER}).status_code == 404


def test_a_link_whose_asset_url_is_not_http_is_404(client, sessions, link):
    with sessions.begin() as session:
        session.get(Asset, "a1").url = "javascript:alert(1)"
    assert client.get(link, headers={"User-Agent": BROWSER}).status_code == 404


def test_a_link_to_a_retired_asset_still_opens(client, sessions, link):
    with sessions.begin() as session:
        session.get(Asset, "a1").status = "retired"
    response = client.get(link, headers={"User-Agent": BROWSER})
    assert response.headers["Location"] == ASSET_URL


def test_an_imported_share_has_a_working_link(client, runner, sessions, tmp_path, settings):
    from enablement.db.models import Share
    from enablement.domain.links import link_token

    insert_pipeline(sessions)
    insert_deals(sessions, sample_deal("d1"))
    insert_asset(sessions, "a1", url=ASSET_URL)
    path = tmp_path / "s.jsonl"
    path.write_text('{"deal_id": "d1", "asset_id": "a1", "shared_at": "2026-02-01T10:00:00Z"}\n')
    assert runner("import", "shares", str(path)).exit_code == 0
    with sessions() as session:
        share_id = session.scalars(select(Share.id)).one()
    token = link_token(settings.secret_key, share_id)
    response = client.get(f"/l/{token}", headers={"User-Agent": BROWSER})
    assert response.headers["Location"] == ASSET_URL
    assert views(sessions) == 1
