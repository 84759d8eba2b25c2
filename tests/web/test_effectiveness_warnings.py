"""The effectiveness page's table warns of co-sends, inseparable pieces and entry-date imbalance."""

from flask import render_template

from enablement.domain.effectiveness import compute_effectiveness
from enablement.domain.episodes import build_episodes
from enablement.web.pages.reports import effectiveness_context
from tests.effect_simulator import AS_OF, STAGE_MAP, simulate_drift, simulate_together


def page(app, report) -> str:
    """The effectiveness page's template on one report, filled as the view fills it."""
    with app.test_request_context("/reports/effectiveness"):
        context = effectiveness_context(report, {"stage": None, "verdict": None}, "matters")
        return render_template("pages/effectiveness.html", **context, recommendations=None)


def report_of(world):
    episodes, _ = build_episodes(world.history, STAGE_MAP, AS_OF)
    return compute_effectiveness(
        episodes, world.deals, world.shares, {}, "x", published=world.published
    )


def row_of(html: str, title_start: str) -> str:
    table = html.split('id="forest-table"')[1].split("</table>")[0]
    return next(
        r for r in table.split("<tr>") if r.startswith(f'<td data-label="asset">{title_start}')
    )


def test_the_table_names_the_partner_and_the_inseparable_pair(app):
    report = report_of(simulate_together(2000, 1))
    for item in report["items"]:
        item["title"] = item["asset_id"]
    html = page(app, report)
    assert "<th>warnings</th>" in html
    assert "sent with partner in" in row_of(html, "bundled<")
    assert "inseparable from twin-b" in row_of(html, "twin-a<")
    assert "joint row: sent together" in row_of(html, "twin-a+twin-b")
    assert "sent with" not in row_of(html, "null-0<")


def test_the_table_says_when_a_piece_went_to_deals_that_entered_later(app):
    report = report_of(simulate_drift(2000, 1))
    for item in report["items"]:
        item["title"] = item["asset_id"]
    html = page(app, report)
    assert "entered the stage later than the rest" in row_of(html, "late-null<")
    assert "entered the stage later" not in row_of(html, "steady<")
