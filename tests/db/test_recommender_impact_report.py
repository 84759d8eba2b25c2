"""The effectiveness report's recommender-impact rows, from impressions stored in the database."""

from datetime import timedelta

import pytest
from sqlalchemy import insert, select

from enablement.db.models import RecommendationImpression, ReportCache
from enablement.domain.recommend import in_holdout
from enablement.services.reports import get_report
from tests.simulator import insert as insert_simulated
from tests.simulator import simulate


@pytest.fixture
def data(sessions):
    simulated = simulate(300, seed=3)
    insert_simulated(sessions, simulated)
    return simulated


def ask_for_recommendations(sessions, data, holdout: float, deals=slice(None)) -> int:
    """Store one recommendation answer a minute after each deal (of a slice) entered its first stage."""
    first = data.history.sort_values("entered_at").groupby("deal_id")["entered_at"].first()
    rows = [
        {
            "id": f"imp-{deal_id}",
            "deal_id": deal_id,
            "buying_stage": None,
            "holdout": in_holdout(deal_id, holdout),
            "source": "api",
            "created_at": (entered + timedelta(minutes=1)).to_pydatetime(),
        }
        for deal_id, entered in list(first.items())[deals]
    ]
    with sessions.begin() as session:
        session.execute(insert(RecommendationImpression), rows)
    return len(rows)


def impact(report) -> dict:
    """Totals over the stages' recommender-impact rows."""
    rows = report["recommender_impact"]
    return {key: sum(r[key] for r in rows) for key in ("recommended_episodes", "holdout_episodes")}


def test_impressions_make_the_two_groups_of_the_recommender_impact(sessions, settings, data):
    asked = ask_for_recommendations(sessions, data, holdout=0.4)
    totals = impact(get_report(sessions, settings, "effectiveness", data.as_of))
    # Every deal was asked about once, in its first episode: one followed episode per deal.
    assert totals["recommended_episodes"] + totals["holdout_episodes"] == asked
    held = sum(in_holdout(d, 0.4) for d in data.deals["deal_id"])
    assert totals["holdout_episodes"] == held > 0


def test_without_a_holdout_every_row_says_the_holdout_group_is_missing(sessions, settings, data):
    ask_for_recommendations(sessions, data, holdout=0.0)
    rows = get_report(sessions, settings, "effectiveness", data.as_of)["recommender_impact"]
    assert sum(r["recommended_episodes"] for r in rows) > 0
    assert all(r["holdout_episodes"] == 0 and r["hazard_ratio"] is None for r in rows)
    assert all("holdout group" in r["reason"] for r in rows if r["recommended_episodes"])


def test_a_new_impression_refreshes_the_impact_but_keeps_the_per_asset_effects(
    sessions, settings, data
):
    ask_for_recommendations(sessions, data, holdout=0.4, deals=slice(0, 100))
    before = get_report(sessions, settings, "effectiveness", data.as_of)
    kept = cached_at(sessions, "effectiveness:%")
    ask_for_recommendations(sessions, data, holdout=0.4, deals=slice(100, 101))
    after = get_report(sessions, settings, "effectiveness", data.as_of)
    assert sum(impact(after).values()) == sum(impact(before).values()) + 1
    assert after["items"] == before["items"]
    assert cached_at(sessions, "effectiveness:%") == kept  # not recomputed
    assert cached_at(sessions, "recommender-impact:%") > kept


def cached_at(sessions, key_pattern: str):
    """When the one cached report part matching the pattern was stored."""
    with sessions() as session:
        return session.scalars(
            select(ReportCache.created_at).where(ReportCache.key.like(key_pattern))
        ).one()
