"""The pages in a real browser: sign in, find and open a deal, share and follow the link,
create an asset with an error then fix it, import a file with a bad line, open each report."""

from __future__ import annotations

import re

from sqlalchemy import func, select

from enablement.db.models import Asset, LinkView, Share

BUYER_AGENT = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0 Safari/537.36"
)


def sign_in(watch, token: str) -> None:
    """Sign in through the form."""
    page = watch.page
    page.goto("/signin")
    watch.shot("signin")
    page.fill("#token", token)
    page.click("button[type=submit]")
    page.wait_for_load_state()


def test_a_rep_goes_from_deal_to_sent_link(watched, server, browser):
    page = watched.page
    sign_in(watched, server["tokens"]["sales"].token)
    assert page.url.endswith("/deals")
    rows = page.locator("#deal-list tbody tr")
    assert rows.count() > 0
    watched.shot("deals")
    # Fuzzy search: a deal's company with a typo still finds it first.
    company = rows.first.locator("td").nth(1).inner_text().strip()
    typo = company[:-2] + company[-1] if len(company) > 4 else company
    page.fill("input[name=q]", typo)
    page.click("form.filters button")
    page.wait_for_load_state()
    assert company in page.locator("#deal-list tbody tr").first.inner_text()
    watched.shot("deal-search")
    page.locator("#deal-list tbody tr a").first.click()
    page.wait_for_load_state()
    assert page.locator("h2", has_text="Stage timeline").count() == 1
    assert page.locator(".timeline li").count() >= 1
    recs = page.locator("#recommendations .rec")
    assert recs.count() > 0
    assert recs.first.locator(".reasons li").count() > 0
    watched.shot("deal")
    recs.first.locator("button", has_text="Share with buyer").click()
    page.wait_for_load_state()
    link = page.input_value("#share-link")
    assert re.search(r"/l/[A-Za-z0-9_\-.]+$", link), link
    page.click("button[data-copy=share-link]")
    watched.shot("deal-shared")
    # The buyer opens the link in their own (not headless-looking) browser; the asset's site is
    # answered by a stub, since the tests run offline.
    container = server["container"]
    with container.sessions() as s:
        before = s.scalar(select(func.count()).select_from(LinkView))
    buyer = browser.new_context(user_agent=BUYER_AGENT)
    redirects = []

    def follow(route):
        """Let the request reach our server, note where it redirects, stub the asset's site."""
        answer = route.fetch(max_redirects=0)
        redirects.append((answer.status, answer.headers.get("location")))
        route.fulfill(status=200, content_type="text/html", body="<p>the asset</p>")

    buyer.route(link, follow)
    buyer_page = buyer.new_page()
    buyer_page.goto(link)
    assert buyer_page.inner_text("p") == "the asset"
    assert redirects and redirects[0][0] == 302 and redirects[0][1].startswith("http")
    buyer.close()
    with container.sessions() as s:
        assert s.scalar(select(func.count()).select_from(LinkView)) == before + 1
        share = s.scalars(select(Share).order_by(Share.id.desc())).first()
        assert share.impression_id is not None
    page.reload()
    assert "opened 1×" in page.locator("#shares").inner_text()
    # A deal that is not there is an HTML error page, not JSON.
    watched.expect_status(404)
    page.goto("/deals/99999999999999")
    assert "404" in page.locator("h1").inner_text()
    watched.shot("error-404")


def test_the_start_page_leads_to_sign_in(watched):
    page = watched.page
    page.goto("/")
    watched.shot("start")
    page.click("text=Sign in >> nth=-1")
    assert page.url.endswith("/signin")


def test_a_marketer_creates_an_asset_after_fixing_an_error(watched, server):
    page = watched.page
    sign_in(watched, server["tokens"]["marketing"].token)
    page.goto("/assets")
    assert page.locator("#asset-list tbody tr").count() > 0
    watched.shot("assets")
    page.click("text=New asset")
    page.fill("#f-title", "<script>alert(1)</script> The hidden cost of waiting")
    page.fill("#f-url", "not a url")
    page.select_option("#f-kind", "article")
    page.fill("#f-author", "Dana Whitfield")
    page.check("input[name=stages][value=evaluation]")
    page.fill("#f-personas", "CFO; Head of Operations")
    watched.expect_status(422)
    page.click("text=Create asset")
    page.wait_for_load_state()
    assert page.locator("#url-error").is_visible()
    assert page.input_value("#f-title").startswith("<script>")
    watched.shot("asset-form-error")
    page.fill("#f-url", "https://example.com/hidden-cost")
    page.click("text=Create asset")
    page.wait_for_load_state()
    assert "Created" in page.locator(".notice").first.inner_text()
    # Escaped everywhere: the title is text on the page, and no dialog ever opened.
    assert page.locator("#asset-list").inner_text().count("<script>alert(1)</script>") == 1
    with server["container"].sessions() as s:
        assert (
            s.scalar(
                select(func.count()).select_from(Asset).where(Asset.author == "Dana Whitfield")
            )
            == 1
        )


def test_an_import_with_a_bad_line_lists_it(watched, server):
    page = watched.page
    sign_in(watched, server["tokens"]["marketing"].token)
    page.goto("/assets/import")
    csv = (
        "title,url,kind,author,stages\n"
        "Board-ready risk memo,https://example.com/memo,article,Ada Osei,closing\n"
        "Broken line,ftp://example.com/x,article,Ada Osei,closing\n"
    )
    page.set_input_files(
        "input[type=file]",
        files=[{"name": "assets.csv", "mimeType": "text/csv", "buffer": csv.encode()}],
    )
    watched.expect_status(422)
    page.click("main form button.primary")
    page.wait_for_load_state()
    errors = page.locator("#import-errors .import-error")
    assert errors.count() == 1
    assert errors.first.locator("td").first.inner_text().strip() == "3"
    watched.shot("asset-import-errors")


REPORTS = (
    ("/reports/coverage", "report-coverage", "td.cell"),
    ("/reports/effectiveness", "report-effectiveness", "#forest svg.chart-wide [data-mark=effect]"),
    ("/reports/cycle-time", "report-cycle-time", "#cycle-buying svg.chart-wide [data-mark=bar]"),
    ("/reports/adoption", "report-adoption", "#adoption-shares svg.chart-wide [data-mark=bar]"),
    ("/stage-map", "stage-map", "#stage-map tbody tr"),
)


def test_every_report_draws_its_marks(watched, server):
    page = watched.page
    sign_in(watched, server["tokens"]["admin"].token)
    from enablement.render import coverage_context
    from enablement.services.adoption import adoption_by_rep
    from enablement.services.reports import get_report
    from enablement.web.pages.reports import PLOT_ROWS

    container = server["container"]
    coverage = coverage_context(get_report(container.sessions, container.settings, "coverage"))
    effect = get_report(container.sessions, container.settings, "effectiveness")
    cycle = get_report(container.sessions, container.settings, "cycle-time")
    expected = {
        "/reports/coverage": sum(
            len(m["values"]) * len(coverage["stages"]) for m in coverage["matrices"]
        ),
        # The plot draws the first PLOT_ROWS rows; the table lists them all.
        "/reports/effectiveness": min(
            PLOT_ROWS,
            sum(
                1
                for r in effect["items"]
                if r["verdict"] != "insufficient_data" and r["hazard_ratio"] is not None
            ),
        ),
        "/reports/cycle-time": sum(
            1 for r in cycle["buying_stages"] if r["median_days"] is not None
        ),
        "/reports/adoption": len(adoption_by_rep(container.sessions)),
        "/stage-map": None,
    }
    for path, name, selector in REPORTS:
        page.goto(path)
        page.wait_for_load_state()
        count = page.locator(selector).count()
        assert count > 0, path
        if expected[path] is not None:
            assert count == expected[path], path
        watched.shot(name)
    page.goto("/reports/effectiveness")
    assert "folded away" in page.locator("#insufficient summary").inner_text()
    assert page.locator("#impact-table tbody tr").count() >= 1
