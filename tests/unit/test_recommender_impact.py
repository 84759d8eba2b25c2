"""The recommender's own effect: recommended group versus holdout, followed from the first request."""

import numpy as np
import pandas as pd
import pytest

from enablement.domain.effectiveness import recommender_impact
from enablement.domain.episodes import DAY_NS, build_episodes
from enablement.domain.recommend import in_holdout
from enablement.simulation import advance_time
from tests.effect_simulator import (
    AS_OF,
    INDUSTRIES,
    LOSS_RATE,
    OWNERS,
    STAGE_MAP,
    TIER_CUTS,
    TIERS,
)


def recommender_world(effect: float, holdout: float, n_deals: int = 3000, seed: int = 3):
    """Deals in one stage; reps ask for recommendations once, late for stalled deals.

    A request comes at a random day in the first 30 (if the deal is still in the stage), so
    the deals asked about are the slower ones on both sides; after it, recommended deals
    advance `effect` times as fast, holdout deals as before. Deal size drives speed in steps.
    """
    rng = np.random.default_rng(seed)
    z = rng.normal(0, 1, n_deals)
    tier = np.searchsorted(TIER_CUTS, z)
    industry = rng.choice(list(INDUSTRIES), n_deals)
    owner = rng.choice(list(OWNERS), n_deals)
    rate = (
        (1 / 40)
        * np.array(TIERS)[tier]
        * np.array([INDUSTRIES[i] for i in industry])
        * np.array([OWNERS[o] for o in owner])
    )
    as_of = AS_OF.timestamp() / 86400
    entered = as_of - rng.uniform(40, 400, n_deals)
    ids = [f"d{k:06d}" for k in range(n_deals)]
    held = np.array([in_holdout(i, holdout) for i in ids])
    hist, requests = [], []
    for k in range(n_deals):
        asked = float(rng.uniform(0, 30))
        hr = 1.0 if held[k] else effect
        advance = advance_time(rng.exponential(1.0), rate[k], [(asked, hr)])
        lost = rng.exponential(1 / LOSS_RATE)
        end = min(advance, lost, as_of - entered[k])
        hist.append((ids[k], "eval", entered[k]))
        if end < as_of - entered[k]:
            hist.append((ids[k], "won" if advance <= lost else "lost", entered[k] + end))
        if asked < end:
            requests.append((ids[k], entered[k] + asked, bool(held[k])))
    history = pd.DataFrame(hist, columns=["deal_id", "stage_id", "t"])
    history = history.assign(
        pipeline_id="p", entered_at=pd.to_datetime(history.pop("t") * DAY_NS, utc=True)
    )
    impressions = pd.DataFrame(requests, columns=["deal_id", "t", "holdout"])
    impressions["shown_at"] = pd.to_datetime(impressions.pop("t") * DAY_NS, utc=True)
    deals = pd.DataFrame(
        {
            "deal_id": ids,
            "pipeline_id": "p",
            "amount": np.round(np.exp(10 + z), 2),
            "industry": industry,
            "owner_id": owner,
        }
    )
    episodes, _ = build_episodes(history, STAGE_MAP, AS_OF)
    return episodes, deals, impressions


def evaluation_row(effect, holdout, **kwargs):
    """The evaluation stage's recommender-impact row of a simulated world."""
    rows = recommender_impact(*recommender_world(effect, holdout, **kwargs))
    assert [r["buying_stage"] for r in rows] == ["awareness", "interest", "evaluation", "closing"]
    return rows[2]


@pytest.mark.parametrize("seed", [3, 4])
def test_a_recommender_that_does_nothing_is_not_credited(seed):
    row = evaluation_row(1.0, 0.3, seed=seed)
    assert row["verdict"] == "no_evidence", row
    assert row["ci_low"] < 1 < row["ci_high"]
    assert (
        row["holdout_episodes"] > 300 and row["recommended_episodes"] > 2 * row["holdout_episodes"]
    )


def test_a_recommender_that_speeds_deals_up_is_found_with_its_size():
    row = evaluation_row(1.6, 0.3)
    assert row["verdict"] == "shortens", row
    assert row["ci_low"] < 1.6 < row["ci_high"]
    assert "holdout" in row["method"] and row["diagnostics"] is not None


def test_without_a_holdout_the_impact_cannot_be_estimated_and_says_why():
    row = evaluation_row(1.6, 0.0, n_deals=600)
    assert row["verdict"] == "insufficient_data"
    assert row["hazard_ratio"] is None and row["ci_low"] is None
    assert row["holdout_episodes"] == 0
    assert "holdout group" in row["reason"]


def test_stages_nobody_asked_about_are_rows_with_a_reason_not_errors():
    episodes, deals, impressions = recommender_world(1.0, 0.3, n_deals=300)
    rows = recommender_impact(episodes, deals, impressions.iloc[:0])
    assert all(r["verdict"] == "insufficient_data" and r["reason"] for r in rows)
    assert all(r["recommended_episodes"] == 0 for r in rows)


def test_impact_rows_follow_the_verdict_and_stage_filters_and_no_asset_filter():
    from enablement.domain.report_filters import EffectFilter, filter_effectiveness

    rows = [
        {"buying_stage": s, "verdict": v}
        for s, v in (("interest", "insufficient_data"), ("evaluation", "shortens"))
    ]
    report = {"items": [], "recommender_impact": rows}
    assert filter_effectiveness(report, EffectFilter())["recommender_impact"] == rows
    kept = filter_effectiveness(report, EffectFilter(stage="Evaluation"))["recommender_impact"]
    assert kept == rows[1:]
    kept = filter_effectiveness(report, EffectFilter(verdict="shortens"))["recommender_impact"]
    assert kept == rows[1:]
    assert filter_effectiveness(report, EffectFilter(asset="a1"))["recommender_impact"] == []


def test_the_csv_carries_the_impact_as_rows_without_an_asset():
    import csv
    import io

    from enablement.render import render

    episodes, deals, impressions = recommender_world(1.6, 0.3, n_deals=1500)
    report = {
        "as_of": "x",
        "items": [],
        "recommender_impact": recommender_impact(episodes, deals, impressions),
    }
    rows = list(csv.DictReader(io.StringIO(render("effectiveness", report, "csv"))))
    assert [r["buying_stage"] for r in rows] == ["awareness", "interest", "evaluation", "closing"]
    evaluation = rows[2]
    assert evaluation["asset_id"] == "" and evaluation["title"].startswith("Recommender impact")
    assert evaluation["verdict"] == "shortens" and float(evaluation["hazard_ratio"]) > 1
    assert "holdout episodes" in evaluation["reason"]


def test_nudged_and_asked_impressions_get_rows_of_their_own_beside_the_overall_one():
    episodes, deals, impressions = recommender_world(1.6, 0.3, n_deals=1500)
    alone = recommender_impact(episodes, deals, impressions)
    assert {r["trigger"] for r in alone} == {"any"}  # nobody nudged yet: no split
    nudged = impressions["deal_id"].str[-1].isin(list("02468"))
    impressions["source"] = np.where(nudged, "nudge", "api")
    rows = recommender_impact(episodes, deals, impressions)
    by = {(r["trigger"], r["buying_stage"]): r for r in rows}
    assert [r["trigger"] for r in rows] == ["any"] * 4 + ["asked"] * 4 + ["nudged"] * 4
    for field in ("recommended_episodes", "holdout_episodes"):
        parts = by[("asked", "evaluation")][field] + by[("nudged", "evaluation")][field]
        assert parts == by[("any", "evaluation")][field] > 0
    held_nudges = impressions[nudged & impressions["holdout"]]["deal_id"].nunique()
    assert by[("nudged", "evaluation")]["holdout_episodes"] == held_nudges
    assert by[("nudged", "evaluation")]["verdict"] in ("shortens", "no_evidence")
    assert by[("any", "evaluation")]["verdict"] == "shortens"
