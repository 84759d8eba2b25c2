"""Every page on a phone (390 px) and a laptop (1366 px): no sideways scroll, legible charts.

A page fails when the document is wider than the viewport, or when a chart's text is drawn
smaller than MIN_TEXT_PX on screen. A full-page screenshot of each page at each width is saved
under artifacts/screenshots/ (tests/browser/conftest.py).
"""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from enablement.db.models import Asset, Deal, Share
from tests.browser.conftest import PageWatch
from tests.browser.test_pages_in_browser import sign_in

WIDTHS = (390, 1366)
MIN_TEXT_PX = 10

# (path or a key resolved below, screenshot name, role signed in as; None: signed out)
PAGES = (
    ("/", "start", None),
    ("/signin", "signin", None),
    ("/deals", "deals", "sales"),
    ("{deal}", "deal", "admin"),
    ("/assets", "assets", "marketing"),
    ("/assets/new", "asset-new", "marketing"),
    ("{asset_edit}", "asset-edit", "marketing"),
    ("/assets/import", "asset-import", "marketing"),
    ("/reports/coverage", "report-coverage", "marketing"),
    ("/reports/effectiveness", "report-effectiveness", "marketing"),
    ("/reports/cycle-time", "report-cycle-time", "marketing"),
    ("/reports/adoption", "report-adoption", "marketing"),
    ("/stage-map", "stage-map", "admin"),
    ("/deals/99999999999999", "error-404", "sales"),
)

# The widest element and its width, for the failure message.
OVERFLOW = """() => {
  const width = document.documentElement.clientWidth;
  let worst = null;
  for (const el of document.body.querySelectorAll('*')) {
    const r = el.getBoundingClientRect();
    if (r.width && r.right > width + 1 && (!worst || r.right > worst.right)) {
      worst = {tag: el.tagName, cls: el.className && el.className.baseVal !== undefined
        ? el.className.baseVal : el.className, id: el.id, right: Math.round(r.right)};
    }
  }
  return {scroll: document.documentElement.scrollWidth, width, worst};
}"""

# Each visible chart text with its size on screen (the font size times the SVG's scale) and
# whether it lies inside the chart's drawing (a label past the edge is cut off on screen).
CHART_TEXT = """() => [...document.querySelectorAll('svg.chart')]
  .filter(svg => svg.getBoundingClientRect().width > 0)
  .flatMap(svg => [...svg.querySelectorAll('text')].map(t => {
    const box = t.getBBox(), view = svg.viewBox.baseVal;
    return {
      text: t.textContent.trim().slice(0, 60),
      px: parseFloat(getComputedStyle(t).fontSize) * t.getScreenCTM().a,
      inside: box.x >= -0.5 && box.x + box.width <= view.width + 0.5,
    };
  }))"""


@pytest.fixture(scope="module")
def paths(server):
    """The paths of pages that need an id: a deal with shares, an asset to edit."""
    with server["container"].sessions() as s:
        deal_id = s.scalar(select(Share.deal_id).order_by(Share.id))
        asset_id = s.scalar(select(Asset.id).order_by(Asset.id))
        assert s.get(Deal, deal_id) is not None
    return {"deal": f"/deals/{deal_id}", "asset_edit": f"/assets/{asset_id}/edit"}


@pytest.fixture(scope="module")
def signed_in(browser, server):
    """A signed-in browser context per role (and one signed out), shared by the module."""
    contexts = {}

    def context_for(role: str | None):
        if role not in contexts:
            context = browser.new_context(base_url=server["base"])
            if role is not None:
                sign_in(PageWatch(context.new_page()), server["tokens"][role].token)
            contexts[role] = context
        return contexts[role]

    yield context_for
    for context in contexts.values():
        context.close()


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize(("path", "name", "role"), PAGES, ids=[p[1] for p in PAGES])
def test_the_page_fits_the_screen_and_its_charts_are_legible(
    signed_in, paths, path, name, role, width
):
    page = signed_in(role).new_page()
    page.set_viewport_size({"width": width, "height": 900})
    watch = PageWatch(page)
    if name == "error-404":
        watch.expect_status(404)
    page.goto(path.format(**paths))
    page.wait_for_load_state()
    watch.shot(f"{name}-{width}")
    overflow = page.evaluate(OVERFLOW)
    assert overflow["scroll"] <= overflow["width"], (
        f"{name} at {width}px scrolls sideways: {overflow}"
    )
    texts = page.evaluate(CHART_TEXT)
    small = [t for t in texts if t["px"] < MIN_TEXT_PX]
    assert small == [], f"{name} at {width}px: chart text under {MIN_TEXT_PX}px: {small[:5]}"
    cut = [t["text"] for t in texts if not t["inside"]]
    assert cut == [], f"{name} at {width}px: chart text cut at the edge: {cut[:5]}"
    assert watch.errors == []
    page.close()


@pytest.mark.parametrize("width", WIDTHS)
def test_every_report_chart_is_drawn_at_both_widths(signed_in, width):
    page = signed_in("marketing").new_page()
    page.set_viewport_size({"width": width, "height": 900})
    for path in ("/reports/effectiveness", "/reports/cycle-time", "/reports/adoption"):
        page.goto(path)
        visible = page.evaluate(
            "() => [...document.querySelectorAll('svg.chart')]"
            ".filter(s => s.getBoundingClientRect().width > 0).length"
        )
        assert visible >= 1, f"{path} at {width}px draws no chart"
    page.close()


def test_the_forest_plot_is_bounded_and_cuts_no_title(signed_in):
    page = signed_in("marketing").new_page()
    page.set_viewport_size({"width": 1366, "height": 900})
    page.goto("/reports/effectiveness")
    box = page.locator("#forest svg.chart-wide").bounding_box()
    assert box is not None and box["height"] < 1400, box
    labels = page.evaluate(
        "() => [...document.querySelectorAll('#forest svg.chart-wide g.mark')].map(g => ["
        "g.querySelector('title').textContent,"
        "[...g.querySelectorAll('tspan')].map(t => t.textContent).join(' ')])"
    )
    assert labels
    for title, label in labels:
        name, stage = re.match(r"(.*) \((\w+)\): hazard ratio", title).groups()
        assert " ".join(label.split()) == " ".join(f"{name} · {stage}".split())
    page.close()


def test_the_deal_page_names_who_shared_and_shows_readable_times(signed_in, paths, browser, server):
    page = signed_in("admin").new_page()
    page.goto(paths["deal"])
    by = [t.strip() for t in page.locator("#shares td[data-label=by]").all_inner_texts()]
    assert by and not any(re.fullmatch(r"\d+", b) for b in by), by
    times = page.locator("#shares time")
    assert times.count() >= 1
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", times.first.get_attribute("datetime"))
    assert "T" not in times.first.inner_text() and times.first.get_attribute("title").endswith(
        "UTC"
    )
    page.close()
    # Without JavaScript the same time reads in UTC, not as raw ISO.
    context = browser.new_context(base_url=server["base"], java_script_enabled=False)
    plain = context.new_page()
    sign_in(PageWatch(plain), server["tokens"]["admin"].token)
    plain.goto(paths["deal"])
    text = plain.locator("#shares time").first.inner_text()
    assert re.fullmatch(r"\d{1,2} [A-Z][a-z]{2} \d{4}, \d\d:\d\d UTC", text), text
    context.close()
