"""The coverage report finds every planted gap, and its HTML opens offline."""

import re
from datetime import UTC, date, datetime, timedelta

import pytest

from enablement.db.models import Asset, CrmStage, Deal, LinkView, Pipeline, Share, StageChange
from enablement.render import render
from enablement.services.reports import get_report

AS_OF = datetime(2026, 6, 30, tzinfo=UTC)
STAGES = [
    # id, label, buying stage, closed, won, source, confidence
    ("lead", "Lead", "awareness", False, False, "confirmed", 1.0),
    ("disc", "Discovery", "interest", False, False, "confirmed", 1.0),
    ("demo", "Demo", "evaluation", False, False, "confirmed", 1.0),
    ("prop", "Proposal", "closing", False, False, "suggested", 0.4),
    ("hold", "Parked with legal", None, False, False, "suggested", 0.0),
    ("ops", "Internal ops", None, False, False, "confirmed", None),
    ("won", "Won", None, True, True, "confirmed", 1.0),
]


def asset(id, stages, personas=(), industries=(), topics=(), **extra):
    return Asset(
        id=id,
        title=f"Title {id}",
        url=f"https://example.com/{id}",
        kind="article",
        author=extra.pop("author", "Grace Hopper"),
        stages=list(stages),
        personas=list(personas),
        industries=list(industries),
        topics=list(topics),
        **extra,
    )


def deal(id, stage, personas=(), industry=None, topics=()):
    d = Deal(
        id=id,
        name=id,
        pipeline_id="p",
        current_stage_id=stage,
        industry=industry,
        personas=list(personas),
        topics=list(topics),
        created_at=AS_OF - timedelta(days=30),
    )
    d.stage_history = [
        StageChange(pipeline_id="p", stage_id="lead", entered_at=AS_OF - timedelta(days=30)),
        StageChange(pipeline_id="p", stage_id=stage, entered_at=AS_OF - timedelta(days=10)),
    ]
    return d


@pytest.fixture
def planted(sessions):
    with sessions.begin() as session:
        pipeline = Pipeline(id="p", label="Sales")
        pipeline.stages = [
            CrmStage(
                id=sid,
                label=label,
                display_order=i,
                buying_stage=bs,
                is_closed=closed,
                is_won=won,
                mapping_source=source,
                mapping_confidence=conf,
            )
            for i, (sid, label, bs, closed, won, source, conf) in enumerate(STAGES)
        ]
        session.add(pipeline)
        session.flush()
        session.add_all(
            [
                asset(
                    "aw-cfo", ["awareness"], ["CFO"], ["Finance"], ["cost"], author="Ada Lovelace"
                ),
                asset("aw-cfo-2", ["awareness"], ["cfo"], ["finance"]),
                asset("in-stale", ["interest"], ["cfo"], ["finance"], review_by=date(2026, 1, 1)),
                asset("ev-retired", ["evaluation"], ["cto"], ["healthcare"], status="retired"),
                asset("ev-draft", ["evaluation"], ["cto"], ["healthcare"], status="draft"),
                asset("untagged", [], ["cfo"]),
                asset("pitchy", ["awareness"], ["cfo"], pitch_score=0.8, pitch_flag=True),
                asset("ignored", ["closing"], ["cfo"], ["finance"]),
                asset("opened", ["closing"], ["cfo"], ["finance"]),
            ]
        )
        session.add_all(
            [
                deal("d-aw", "lead", ["cfo"], "finance", ["cost"]),
                deal("d-in", "disc", ["cfo"], "finance"),
                deal("d-ev", "demo", ["cto"], "healthcare"),
                deal("d-hold", "hold", ["cfo"], "finance"),
                deal("d-won", "won", ["cto"], "retail"),
            ]
        )
        session.flush()
        share_ignored = Share(
            deal_id="d-aw", asset_id="ignored", shared_at=AS_OF - timedelta(days=5)
        )
        share_opened = Share(
            deal_id="d-aw", asset_id="opened", shared_at=AS_OF - timedelta(days=200)
        )
        session.add_all([share_ignored, share_opened])
        session.flush()
        session.add(LinkView(share_id=share_opened.id, viewed_at=AS_OF - timedelta(days=199)))


def cell(report, stage, dimension, value):
    (found,) = [
        c
        for c in report["cells"]
        if (c["stage"], c["dimension"], c["value"]) == (stage, dimension, value)
    ]
    return found


def test_every_planted_gap_is_found_and_nothing_else(sessions, settings, planted):
    report = get_report(sessions, settings, "coverage", AS_OF)
    gaps = {(g["stage"], g["dimension"], g["value"]) for g in report["gaps"]}
    assert gaps == {
        # interest: only a stale asset covers cfo/finance
        ("interest", "persona", "cfo"),
        ("interest", "industry", "finance"),
        # evaluation: the only cto/healthcare assets are retired or draft
        ("evaluation", "persona", "cto"),
        ("evaluation", "industry", "healthcare"),
    }


def test_cells_count_live_stale_shares_and_open_deals(sessions, settings, planted):
    report = get_report(sessions, settings, "coverage", AS_OF)
    aw = cell(report, "awareness", "persona", "cfo")
    # tags match case-insensitively; the pitch asset still counts as live content here
    assert (aw["live_assets"], aw["open_deals"], aw["status"]) == (3, 1, "ok")
    stale = cell(report, "interest", "persona", "cfo")
    assert (stale["live_assets"], stale["stale_assets"], stale["status"]) == (0, 1, "gap")
    closing = cell(report, "closing", "industry", "finance")
    assert (closing["live_assets"], closing["shares_90d"], closing["open_deals"]) == (2, 1, 0)
    topic = cell(report, "awareness", "topic", "cost")
    assert (topic["live_assets"], topic["status"]) == (1, "thin")
    stages = {s["stage"]: s for s in report["stages"]}
    assert stages["evaluation"]["status"] == "gap" and stages["awareness"]["live_assets"] == 3


def test_the_lists_name_unmapped_stages_untagged_pitch_and_unopened_assets(
    sessions, settings, planted
):
    report = get_report(sessions, settings, "coverage", AS_OF)
    unmapped = {(s["stage_id"], s["problem"], s["open_deals"]) for s in report["unmapped_stages"]}
    assert unmapped == {("hold", "unmapped", 1), ("prop", "low_confidence", 0)}
    assert {s["pipeline_label"] for s in report["unmapped_stages"]} == {"Sales"}
    assert [a["asset_id"] for a in report["untagged_assets"]] == ["untagged"]
    assert [a["asset_id"] for a in report["product_pitch_assets"]] == ["pitchy"]
    assert [a["asset_id"] for a in report["never_opened_assets"]] == ["ignored"]
    assert "aw-cfo" in {a["asset_id"] for a in report["never_shared_assets"]}
    assert "opened" not in {a["asset_id"] for a in report["never_shared_assets"]}
    voices = {a["author"]: a["stages"] for a in report["authors"]}
    assert voices["Ada Lovelace"]["awareness"] == 1
    assert voices["Grace Hopper"]["closing"] == 2


def test_the_html_export_is_self_contained_and_shows_the_gaps(sessions, settings, planted):
    report = get_report(sessions, settings, "coverage", AS_OF)
    html = render("coverage", report, "html")
    assert html.lstrip().lower().startswith("<!doctype html>")
    # Opens offline: no external URL, script, stylesheet link, import or remote font.
    assert not re.search(r"https?:|//[a-z0-9]|<script|<link|@import|url\(|src=", html, re.I)
    assert html.count(">\nGAP") + html.count(">GAP") >= 4
    assert 'class="cell gap"' in html
    assert "Parked with legal" in html
    assert '<td data-label="pipeline">Sales</td>' in html, "the pipeline by its label"


def test_html_escapes_hostile_tag_values(sessions, settings, planted):
    get_report(sessions, settings, "coverage", AS_OF)  # cached before the asset is added
    with sessions.begin() as session:
        session.add(asset("xss", ["awareness"], ["<script>alert(1)</script>"]))
    html = render("coverage", get_report(sessions, settings, "coverage", AS_OF), "html")
    assert "<script>" not in html
    assert "&lt;script&gt;" in html


def test_thin_applies_only_where_open_deals_sit(sessions, settings, planted):
    report = get_report(sessions, settings, "coverage", AS_OF)
    idle = [c for c in report["cells"] if c["open_deals"] == 0]
    assert idle, "the planted data should have cells nobody needs"
    assert {c["status"] for c in idle} == {"ok"}
    short = [
        c
        for c in report["cells"]
        if c["open_deals"] and 0 < c["live_assets"] < settings.coverage_min_assets
    ]
    assert short and {c["status"] for c in short} == {"thin"}
    assert all(s["status"] == "ok" for s in report["stages"] if s["open_deals"] == 0)
