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


@pytest.fixture
def demo(sessions, settings):
    """A small demo dataset (two pipelines, shares by owners)."""
    from enablement.services.demo import load_demo

    load_demo(sessions, settings, deals=120, assets=40, seed=7)


def test_cycle_time_is_shown_per_pipeline_by_name_with_the_30_and_90_day_figures(
    marketing, demo, container
):
    from enablement.services.stage_map import pipeline_names

    html = marketing.get("/reports/cycle-time").text
    names = pipeline_names(container.sessions)
    assert len(names) >= 2
    for name in names.values():
        assert f"Pipeline “{name}”: by CRM stage" in html
    assert "advanced / lost by 30 days" in html and "advanced / lost by 90 days" in html
    assert re.search(r'data-label="advanced / lost by 90 days">\d+% / \d+%</td>', html)


def test_the_effectiveness_page_says_what_each_label_means_for_its_row(marketing, demo):
    html = marketing.get("/reports/effectiveness").text
    table = html.split('id="forest-table"')[1].split("</table>")[0]
    rows = re.findall(r"<tr><td data-label=\"asset\">.*?</tr>", table, re.S)
    assert rows
    for row in rows:
        meaning = re.search(r'class="meaning"[^>]*>(.*?)</td>', row, re.S).group(1)
        if "verdict-no_evidence" in row:
            low, high = map(float, re.search(r"(\d+\.\d\d)–(\d+\.\d\d)", row).groups())
            if low > 1 or high < 1:  # the interval leaves out 1, yet no evidence: say why
                assert "false-discovery correction" in meaning and "by chance" in meaning
            else:
                assert "includes 1" in meaning
        else:
            assert "after the false-discovery correction" in meaning
    assert "false-discovery correction" in html.split('id="labels-explained"')[1][:900]


def test_the_effectiveness_page_puts_clear_verdicts_first_and_filters(marketing, demo):
    html = marketing.get("/reports/effectiveness").text
    table = html.split('id="forest-table"')[1].split("</table>")[0]
    verdicts = re.findall(r'class="verdict verdict-(\w+)"', table)
    clear = [v != "no_evidence" for v in verdicts]
    assert clear == sorted(clear, reverse=True)  # every clear verdict before any no-evidence row
    only = marketing.get("/reports/effectiveness?verdict=no_evidence&sort=title").text
    table = only.split('id="forest-table"')[1].split("</table>")[0]
    assert set(re.findall(r'class="verdict verdict-(\w+)"', table)) <= {"no_evidence"}
    titles = re.findall(r'<td data-label="asset">(.*?)</td>', table)
    assert titles == sorted(titles, key=str.lower)
    assert marketing.get("/reports/effectiveness?sort=nonsense").status_code == 422


def test_recommender_impact_says_what_it_needs_without_a_holdout(marketing, demo):
    html = marketing.get("/reports/effectiveness").text
    hint = re.search(r'id="impact-needs">(.*?)</p>', html, re.S)
    assert hint and "RECOMMENDATION_HOLDOUT" in hint.group(1) and "episodes" in hint.group(1)


def test_the_deal_page_names_the_rep_who_shared(client, token_for, demo, container):
    from sqlalchemy import select

    from enablement.db.models import Owner, Share

    with container.sessions() as s:
        share = s.scalars(select(Share).where(Share.shared_by.is_not(None))).first()
        owner = s.get(Owner, share.shared_by)
    assert owner is not None
    assert sign_in(client, token_for("admin")).status_code == 302
    html = client.get(f"/deals/{share.deal_id}").text
    cells = re.findall(r'<td data-label="by">(.*?)</td>', html)
    assert f"{owner.first_name} {owner.last_name}".strip() in cells
    assert share.shared_by not in cells


def test_times_are_time_elements_with_readable_utc_text(client, token_for, demo):
    assert sign_in(client, token_for("sales")).status_code == 302
    html = client.get("/deals").text
    stamps = re.findall(r'<time datetime="([^"]+)">([^<]+)</time>', html)
    assert stamps
    for iso, text in stamps:
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", iso)
        assert re.fullmatch(r"\d{1,2} [A-Z][a-z]{2} \d{4}, \d\d:\d\d UTC", text)


def test_an_import_page_names_possible_duplicates_with_links(marketing, asset):
    import io

    form = marketing.get("/assets/import").text
    content = (
        b"title,url,kind,author\nWhy Pipelines Stall,https://example.org/b,article,Grace Hopper\n"
    )
    answer = marketing.post(
        "/assets/import",
        data={"csrf_token": csrf_of(form), "file": (io.BytesIO(content), "assets.csv")},
        content_type="multipart/form-data",
    )
    assert answer.status_code == 200, answer.text
    assert 'id="import-duplicates"' in answer.text, answer.text.split("<main>")[1]
    section = answer.text.split('id="import-duplicates"')[1].split("</section>")[0]
    assert "“Why Pipelines Stall” has a title very like" in section
    assert f'<a href="/assets/{asset["id"]}/edit">“Why pipelines stall”</a>' in section
