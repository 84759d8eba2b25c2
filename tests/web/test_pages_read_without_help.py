"""Findings of a new user on the pages (issue "pages people read without help"), one test each."""

from __future__ import annotations

import re

import pytest

from enablement.services.assets import create_asset, get_asset
from tests.web.test_pages import csrf_of, sign_in

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture
def marketing(client, token_for):
    """A client signed in as marketing."""
    assert sign_in(client, token_for("marketing")).status_code == 302
    return client


@pytest.fixture
def asset(container):
    """One live asset."""
    return create_asset(
        container.sessions,
        container.settings,
        {
            "title": "Why pipelines stall",
            "url": "https://example.com/stall",
            "kind": "article",
            "author": "Ada Lovelace",
            "personas": ["CFO"],
        },
    )


def edit_form(client, asset_id: str) -> dict:
    """The edit form's fields as a browser would send them unchanged."""
    html = client.get(f"/assets/{asset_id}/edit").text
    fields = dict(
        re.findall(r'<input id="f-[^"]+" name="([^"]+)" type="[^"]+" value="([^"]*)"', html)
    )
    return {**fields, "csrf_token": csrf_of(html), "kind": "article", "status": "approved"}


def test_clearing_title_and_author_is_refused_beside_the_fields_not_saved(
    marketing, asset, container
):
    data = {**edit_form(marketing, asset["id"]), "title": "", "author": ""}
    answer = marketing.post(f"/assets/{asset['id']}/edit", data=data)
    assert answer.status_code == 422
    assert 'id="title-error"' in answer.text and 'id="author-error"' in answer.text
    assert "Saved" not in answer.text
    kept = get_asset(container.sessions, asset["id"])
    assert (kept["title"], kept["author"]) == ("Why pipelines stall", "Ada Lovelace")


def test_a_duplicate_warning_names_the_other_piece_with_a_link(marketing, asset):
    form = marketing.get("/assets/new").text
    data = {
        "csrf_token": csrf_of(form),
        "title": "Pipelines: why they stall",
        "url": "https://www.example.com/stall?utm_source=x",
        "kind": "article",
        "author": "Grace Hopper",
    }
    assert marketing.post("/assets/new", data=data).status_code == 302
    page = marketing.get("/assets").text
    notice = re.search(r'<p class="notice duplicate">(.*?)</p>', page, re.S)
    assert notice, page
    assert f'href="/assets/{asset["id"]}/edit"' in notice.group(1)
    assert "“Why pipelines stall”" in notice.group(1) and "has the same URL" in notice.group(1)
    assert "{" not in page.split("<main>")[1].split("</main>")[0]  # no dict shown


def test_list_fields_use_the_csv_separator_and_say_so(marketing, asset, container):
    html = marketing.get(f"/assets/{asset['id']}/edit").text
    assert "Comma-separated" not in html and "Separate several with ;" in html
    data = {**edit_form(marketing, asset["id"]), "personas": "CFO; Head of Operations"}
    assert marketing.post(f"/assets/{asset['id']}/edit", data=data).status_code == 302
    assert get_asset(container.sessions, asset["id"])["personas"] == ["CFO", "Head of Operations"]
    assert 'value="CFO; Head of Operations"' in marketing.get(f"/assets/{asset['id']}/edit").text


def test_a_review_by_date_in_the_past_warns_that_the_piece_is_stale(marketing, asset):
    data = {**edit_form(marketing, asset["id"]), "review_by": "2020-01-31"}
    saved = marketing.post(f"/assets/{asset['id']}/edit", data=data, follow_redirects=True)
    assert saved.status_code == 200
    assert re.search(
        r'class="notice warning"[^>]*>The review-by date 2020-01-31 is already past', saved.text
    )
    assert 'id="review-by-past"' in saved.text
