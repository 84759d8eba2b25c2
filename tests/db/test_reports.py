"""Reports through the service: loaded from the database, cached while their tables are unchanged."""

from datetime import timedelta

import pytest
from sqlalchemy import select, update

from enablement.db.models import Asset, Deal, LinkView, ReportCache, Share
from enablement.db.types import utcnow
from enablement.domain.timestamps import format_timestamp
from enablement.render import render
from enablement.services.assets import rescore_assets
from enablement.services.reports import effects, get_report
from tests.db.report_inputs import mark_reports
from tests.simulator import insert as insert_simulated
from tests.simulator import simulate

EFFECT_KEYS = {
    "inseparable_from",
    "joint_of",
    "asset_id",
    "title",
    "buying_stage",
    "exposed_episodes",
    "exposed_advances",
    "hazard_ratio",
    "ci_low",
    "ci_high",
    "p_value",
    "q_value",
    "median_days_exposed",
    "median_days_unexposed",
    "verdict",
    "reason",
    "diagnostics",
}


@pytest.fixture
def data(sessions):
    simulated = simulate(300, seed=3)
    insert_simulated(sessions, simulated)
    return simulated


def test_the_effectiveness_report_has_the_documented_shape(sessions, settings, data):
    report = get_report(sessions, settings, "effectiveness", data.as_of)
    assert set(report) == {"as_of", "method", "items", "recommender_impact"}
    assert [r["buying_stage"] for r in report["recommender_impact"]] == [
        "awareness",
        "interest",
        "evaluation",
        "closing",
    ]
    # Nobody asked for recommendations in this data: each row says why it has no estimate.
    assert all(
        r["verdict"] == "insufficient_data" and r["reason"] for r in report["recommender_impact"]
    )
    assert report["items"]
    assert all(set(item) == EFFECT_KEYS for item in report["items"])
    assert report["as_of"] == format_timestamp(data.as_of)
    titles = {it["asset_id"]: it["title"] for it in report["items"]}
    assert titles["a-short"] == "Piece a-short"
    for item in report["items"]:
        # Diagnostics exactly where a model was fitted.
        assert (item["diagnostics"] is None) == (item["verdict"] == "insufficient_data")
        if item["diagnostics"]:
            assert {"balance", "proportional_hazards", "e_value", "e_value_ci"} <= set(
                item["diagnostics"]
            )


def test_a_report_is_read_from_the_cache_until_the_data_change(sessions, settings, data):
    get_report(sessions, settings, "effectiveness", data.as_of)
    with sessions.begin() as session:
        session.execute(
            update(ReportCache)
            .where(ReportCache.key.like("effectiveness:%"))
            .values(payload={"as_of": "marker", "items": []})
        )
    assert get_report(sessions, settings, "effectiveness", data.as_of)["as_of"] == "marker"
    with sessions.begin() as session:
        # A Core update: the deal's updated_at still moves (onupdate), so the cache sees it.
        first = session.scalars(select(Deal.id).order_by(Deal.id).limit(1)).one()
        session.execute(update(Deal).where(Deal.id == first).values(amount=123.0))
    assert get_report(sessions, settings, "effectiveness", data.as_of)["as_of"] != "marker"


def test_the_report_for_now_is_cached_too(sessions, settings, data):
    first = get_report(sessions, settings, "cycle-time")
    second = get_report(sessions, settings, "cycle-time")
    assert first["as_of"] == second["as_of"]


def test_an_earlier_as_of_ignores_later_history(sessions, settings, data):
    early = data.as_of - timedelta(days=200)
    now = get_report(sessions, settings, "cycle-time", data.as_of)
    then = get_report(sessions, settings, "cycle-time", early)
    entered_now = sum(r["entered"] for r in now["buying_stages"])
    entered_then = sum(r["entered"] for r in then["buying_stages"])
    assert 0 < entered_then < entered_now
    assert max(r["month"] for r in then["won_cycle_by_month"]) <= early.strftime("%Y-%m")


def test_cycle_time_counts_add_up_and_quantiles_are_ordered(sessions, settings, data):
    report = get_report(sessions, settings, "cycle-time", data.as_of)
    assert [r["buying_stage"] for r in report["buying_stages"]] == [
        "awareness",
        "interest",
        "evaluation",
        "closing",
    ]
    for row in report["crm_stages"] + report["buying_stages"]:
        assert row["entered"] == row["advanced"] + row["lost"] + row["open"] + row["other"]
        if row["p75_days"] is not None:
            assert row["p25_days"] <= row["median_days"] <= row["p75_days"]
    assert {r["stage_id"] for r in report["crm_stages"]} >= {"p1-lead", "p1-disc", "p2-poc"}
    assert sum(r["won"] for r in report["won_cycle_by_month"]) > 0
    assert all(r["open"] > 0 for r in report["buying_stages"])


def test_deleted_deals_are_left_out(sessions, settings, data):
    before = get_report(sessions, settings, "cycle-time", data.as_of)
    with sessions.begin() as session:
        session.execute(update(Deal).values(deleted_at=data.as_of))
    after = get_report(sessions, settings, "cycle-time", data.as_of)
    assert sum(r["entered"] for r in before["buying_stages"]) > 0
    assert sum(r["entered"] for r in after["buying_stages"]) == 0
    assert after["won_cycle_by_month"] == []


def test_effects_read_the_cached_report_and_never_compute(sessions, settings, data):
    assert effects(sessions) == {}
    with sessions.begin() as session:
        assert session.scalars(select(ReportCache.key)).all() == []
    get_report(sessions, settings, "effectiveness", data.as_of)
    effect = effects(sessions)[("a-short", "evaluation")]
    assert effect["exposed_episodes"] > 0
    assert ("a-short", "awareness") not in effects(sessions)


def test_every_report_renders_as_csv_and_table(sessions, settings, data):
    for kind in ("coverage", "cycle-time", "effectiveness"):
        report = get_report(sessions, settings, kind, data.as_of)
        csv_text = render(kind, report, "csv")
        assert csv_text.count("\n") >= 2
        assert "nan" not in csv_text.lower().split(",")
        assert render(kind, report, "table").startswith(csv_text.split(",")[0])


def test_rescoring_assets_flags_product_pitches_and_refreshes_coverage(sessions, settings):
    with sessions.begin() as session:
        session.add_all(
            [
                Asset(
                    id="pitch",
                    title="Why Acme Cloud is the answer",
                    url="https://example.com/p",
                    kind="article",
                    author="A",
                    summary="Acme Cloud pricing starts per seat. Book a demo of Acme Cloud today.",
                ),
                Asset(
                    id="pov",
                    title="Five questions boards ask about supply risk",
                    url="https://example.com/q",
                    kind="article",
                    author="B",
                    summary="Boards care about resilience. Here is how to frame the debate.",
                ),
            ]
        )
    assert get_report(sessions, settings, "coverage")["product_pitch_assets"] == []
    terms = settings.with_overrides(product_terms=("Acme Cloud",))
    assert rescore_assets(sessions, terms) == 2
    with sessions.begin() as session:
        flags = dict(session.execute(select(Asset.id, Asset.pitch_flag)).all())
    assert flags == {"pitch": True, "pov": False}
    pitches = get_report(sessions, settings, "coverage")["product_pitch_assets"]
    assert [a["asset_id"] for a in pitches] == ["pitch"]
    assert rescore_assets(sessions, terms) == 0


def test_effects_prefer_the_report_for_now_over_an_older_as_of(sessions, settings, data):
    get_report(sessions, settings, "effectiveness", data.as_of - timedelta(days=200))
    early = effects(sessions)[("a-short", "evaluation")]
    get_report(sessions, settings, "effectiveness")
    now = effects(sessions)[("a-short", "evaluation")]
    assert now["exposed_episodes"] > early["exposed_episodes"]


def test_every_report_on_an_empty_database_is_empty_not_an_error(sessions, settings):
    effectiveness = get_report(sessions, settings, "effectiveness")
    assert effectiveness["items"] == []
    cycle = get_report(sessions, settings, "cycle-time")
    assert cycle["crm_stages"] == [] and cycle["won_cycle_by_month"] == []
    assert all(r["entered"] == 0 and r["median_days"] is None for r in cycle["buying_stages"])
    coverage = get_report(sessions, settings, "coverage")
    assert coverage["cells"] == [] and coverage["gaps"] == []
    for kind, report in (("coverage", coverage), ("cycle-time", cycle)):
        assert render(kind, report, "csv").count("\n") == 1 + (4 if kind == "cycle-time" else 0)


def test_a_changed_coverage_minimum_is_not_answered_from_the_cache(sessions, settings, data):
    from dataclasses import replace

    first = get_report(sessions, settings, "coverage", data.as_of)
    stricter = get_report(
        sessions, replace(settings, coverage_min_assets=50), "coverage", data.as_of
    )
    assert first["min_assets"] == settings.coverage_min_assets
    assert stricter["min_assets"] == 50


def test_a_buyer_view_refreshes_coverage_but_keeps_the_other_reports_cached(
    sessions, settings, data
):
    for kind in ("coverage", "effectiveness", "cycle-time"):
        get_report(sessions, settings, kind, data.as_of)
    with sessions.begin() as session:
        session.execute(mark_reports(update(ReportCache)))
        share_id = session.scalars(select(Share.id).limit(1)).one()
        session.add(LinkView(share_id=share_id, viewed_at=utcnow()))
    assert get_report(sessions, settings, "effectiveness", data.as_of)["as_of"] == "marker"
    assert get_report(sessions, settings, "cycle-time", data.as_of)["as_of"] == "marker"
    assert get_report(sessions, settings, "coverage", data.as_of)["as_of"] != "marker"
