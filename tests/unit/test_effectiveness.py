"""The effectiveness report recovers planted effects where the naive comparison fails."""

import json
import math
import warnings
from functools import cache

import numpy as np
import pandas as pd
import pytest

from enablement.domain.effectiveness import compute_effectiveness
from enablement.domain.effectiveness.stage_model import StageModel
from enablement.domain.effectiveness.verdicts import VERDICTS, bh_q_values, verdict
from enablement.domain.episodes import build_episodes, exposures
from tests.naive_methods import naive_verdicts
from tests.simulator import simulate


@cache
def simulated(seed: int):
    data = simulate(3000, seed=seed)
    episodes, _ = build_episodes(data.history, data.stage_map, data.as_of)
    report = compute_effectiveness(
        episodes,
        data.deals,
        data.shares,
        dict(zip(data.assets.asset_id, data.assets.title, strict=True)),
        "x",
    )
    return data, episodes, report


def by_key(report):
    return {(it["asset_id"], it["buying_stage"]): it for it in report["items"]}


@pytest.mark.parametrize("seed", [7, 11])
def test_the_report_recovers_every_planted_verdict(seed):
    data, _, report = simulated(seed)
    items = by_key(report)
    got = {key: items[key]["verdict"] for key in data.truth}
    assert got == data.truth


def test_the_naive_comparison_gets_the_confounded_and_late_pieces_wrong():
    data, episodes, report = simulated(7)
    naive = naive_verdicts(episodes, data.shares)
    # Shared mostly to small, fast deals: naive credits it; the adjusted model does not.
    assert naive[("a-small", "interest")] == "shortens"
    assert by_key(report)[("a-small", "interest")]["verdict"] == "no_evidence"
    # Shared only to deals stalled for weeks: naive blames it; time-varying exposure does not.
    assert naive[("a-rescue", "interest")] == "lengthens"
    assert by_key(report)[("a-rescue", "interest")]["verdict"] == "no_evidence"


def test_the_hazard_ratios_land_near_the_planted_ones():
    _, _, report = simulated(7)
    items = by_key(report)
    assert items[("a-short", "evaluation")]["hazard_ratio"] == pytest.approx(2.5, rel=0.2)
    assert items[("a-long", "evaluation")]["hazard_ratio"] == pytest.approx(0.4, rel=0.2)
    short = items[("a-short", "evaluation")]
    assert short["median_days_exposed"] < short["median_days_unexposed"]


def joint_lifelines_fit(model, rows, t_e):
    """The same model fitted jointly by lifelines on (start, stop] rows: log HR and SE of exposure."""
    from lifelines import CoxTimeVaryingFitter

    X = model.design.X
    x = pd.DataFrame(X, columns=[f"x{i}" for i in range(X.shape[1])])
    x["id"] = np.arange(model.n)
    x["start"], x["stop"] = 0.0, model.durations
    x["event"], x["exposed"] = model.advanced.astype(int), 0
    exposed = x.loc[rows].copy()
    before = exposed.assign(stop=t_e, event=0)
    after = exposed.assign(start=t_e, exposed=1)
    cp = pd.concat([x.drop(index=rows), before[before["stop"] > 0], after], ignore_index=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        joint = CoxTimeVaryingFitter().fit(
            cp, id_col="id", start_col="start", stop_col="stop", event_col="event"
        )
    return joint.params_["exposed"], joint.standard_errors_["exposed"]


@pytest.mark.parametrize(("asset", "stage"), [("a-short", "evaluation"), ("a-small", "interest")])
def test_the_estimate_matches_a_joint_time_varying_fit_and_its_interval_is_not_narrower(
    asset, stage
):
    data, episodes, _ = simulated(7)
    eps = episodes.reset_index(drop=True).merge(
        data.deals[["deal_id", "amount", "industry", "owner_id"]], on="deal_id", how="left"
    )
    sub = eps[eps["buying_stage"] == stage].reset_index()
    exp = exposures(eps, data.shares)
    exp = exp[exp["asset_id"] == asset].set_index("episode")["exposed_after_days"]
    rows = sub.index[sub["index"].isin(exp.index)].to_numpy()
    t_e = exp.loc[sub.loc[rows, "index"]].to_numpy()
    model = StageModel(sub)
    assert model.note is None
    fit = model.exposure_fit(rows, t_e)
    beta, se = joint_lifelines_fit(model, rows, t_e)
    assert fit.beta == pytest.approx(beta, abs=0.005)
    assert fit.se >= se * 0.995
    assert fit.se == pytest.approx(se, rel=0.02)


def test_insufficient_pairs_are_null_with_a_reason_and_no_number_is_nan():
    _, _, report = simulated(7)
    rare = by_key(report)[("a-rare", "evaluation")]
    assert rare["hazard_ratio"] is None and rare["q_value"] is None
    assert "exposed episodes" in rare["reason"]
    json.dumps(report, allow_nan=False)  # raises on NaN or infinity
    assert "Cox" in report["method"] and "Benjamini-Hochberg" in report["method"]
    assert "every fitted piece" in report["method"] and "stage-entry period" in report["method"]
    assert rare["diagnostics"] is None


def test_q_values_are_never_below_their_p_values():
    _, _, report = simulated(7)
    tested = [it for it in report["items"] if it["p_value"] is not None]
    assert tested
    assert all(it["q_value"] >= it["p_value"] - 1e-9 for it in tested)


def stage_frame(durations, advanced):
    """A minimal stage of episodes with no usable deal attributes."""
    n = len(durations)
    return pd.DataFrame(
        {
            "duration_days": np.asarray(durations, dtype=float),
            "advanced": np.asarray(advanced, dtype=bool),
            "amount": [None] * n,
            "industry": [None] * n,
            "pipeline_id": ["p"] * n,
            "owner_id": [None] * n,
        }
    )


def test_an_exposure_whose_every_episode_advances_at_once_is_null_not_a_crash():
    model = StageModel(stage_frame([1.0, 2.0, 3.0, 4.0, 5.0, 6.0], [True] * 6))
    # Exposed only in the last instant of the earliest-advancing episodes: the estimate runs away.
    fit = model.exposure_fit(np.array([0, 1]), np.array([0.5, 1.5]))
    assert fit.beta is None and "converge" in fit.reason


def test_an_exposure_with_no_advances_in_the_stage_is_null_with_a_reason():
    model = StageModel(stage_frame([1.0, 2.0], [False, False]))
    fit = model.exposure_fit(np.array([0]), np.array([0.0]))
    assert fit.beta is None and fit.reason


def test_a_report_with_no_shares_has_no_items():
    data, episodes, _ = simulated(7)
    report = compute_effectiveness(episodes, data.deals, data.shares.iloc[:0], {}, "x")
    assert report["items"] == []


@pytest.mark.parametrize(
    ("q", "low", "high", "expected"),
    [
        (0.01, 1.2, 2.0, "shortens"),
        (0.01, 0.3, 0.8, "lengthens"),
        (0.2, 1.1, 2.0, "no_evidence"),
        (0.05, 1.0, 2.0, "no_evidence"),
        (0.05, 1.01, 2.0, "shortens"),
        (None, None, None, "no_evidence"),
    ],
)
def test_the_verdict_follows_the_product_definition(q, low, high, expected):
    assert verdict(q, low, high) == expected


def test_every_verdict_the_report_gives_is_listed_once_and_has_a_chart_style():
    from enablement.charts import VERDICT_STYLE

    _, _, report = simulated(7)
    given = {it["verdict"] for it in report["items"]}
    assert given == set(VERDICTS) and len(VERDICTS) == 4
    # The page draws each verdict with its own marker: no verdict without one, no stray style.
    assert set(VERDICT_STYLE) == set(VERDICTS)


def test_deal_attributes_that_are_missing_do_not_break_the_adjustment():
    data, episodes, _ = simulated(7)
    deals = data.deals.copy()
    deals.loc[deals.index % 3 == 0, "amount"] = None
    deals.loc[deals.index % 5 == 0, "industry"] = None
    report = compute_effectiveness(episodes, deals, data.shares, {}, "x")
    item = by_key(report)[("a-short", "evaluation")]
    assert item["verdict"] == "shortens"
    assert all(
        it["hazard_ratio"] is None or math.isfinite(it["hazard_ratio"]) for it in report["items"]
    )


def test_bh_q_values_match_statsmodels():
    from statsmodels.stats.multitest import multipletests

    rng = np.random.default_rng(1)
    for n in (1, 2, 17, 400):
        p = rng.random(n) ** 3
        p[: n // 3] = p[0]  # ties
        assert np.allclose(bh_q_values(p), multipletests(p, method="fdr_bh")[1])


def test_exposures_match_a_plain_join_of_shares_to_episodes():
    data, episodes, _ = simulated(7)
    extra = pd.DataFrame(  # a share of a deal with no episode, and one at an episode's end
        {
            "deal_id": ["nobody", episodes["deal_id"].iloc[0]],
            "asset_id": ["a-short", "a-null"],
            "shared_at": [
                pd.Timestamp("2026-01-01", tz="UTC"),
                pd.to_datetime(episodes["end"].iloc[0] * 86_400, unit="s", utc=True),
            ],
        }
    )
    shares = pd.concat([data.shares[["deal_id", "asset_id", "shared_at"]], extra])
    got = exposures(episodes, shares)
    eps = episodes.reset_index(drop=True).assign(episode=lambda e: np.arange(len(e)))
    joined = shares.assign(t=shares["shared_at"].astype("int64").to_numpy() / 86_400e9).merge(
        eps[["episode", "deal_id", "start", "end"]], on="deal_id"
    )
    joined = joined[(joined["t"] >= joined["start"]) & (joined["t"] < joined["end"])]
    expected = (
        joined.assign(exposed_after_days=joined["t"] - joined["start"])
        .groupby(["episode", "asset_id"], as_index=False)["exposed_after_days"]
        .min()
    )
    got = got.sort_values(["episode", "asset_id"]).reset_index(drop=True)
    assert len(got) == len(expected) > 0
    assert (got["episode"].to_numpy() == expected["episode"].to_numpy()).all()
    assert (got["asset_id"].to_numpy() == expected["asset_id"].to_numpy()).all()
    assert np.allclose(got["exposed_after_days"], expected["exposed_after_days"])


def test_absurd_amounts_and_odd_categories_leave_every_number_finite():
    data, episodes, _ = simulated(7)
    deals = data.deals.copy()
    deals["amount"] = deals["amount"].astype(object)
    deals.loc[deals.index % 7 == 0, "amount"] = 1e300
    deals.loc[deals.index % 11 == 0, "amount"] = -5.0
    deals.loc[deals.index % 13 == 0, "amount"] = float("inf")
    deals.loc[deals.index % 17 == 0, "amount"] = "not a number"
    deals.loc[deals.index % 5 == 0, "industry"] = "nul\x00byte"
    deals = pd.concat([deals, deals.iloc[:50]])  # duplicated deal rows
    report = compute_effectiveness(episodes, deals, data.shares, {}, "x")
    json.dumps(report, allow_nan=False)
    assert by_key(report)[("a-short", "evaluation")]["verdict"] == "shortens"
    assert by_key(report)[("a-long", "evaluation")]["verdict"] == "lengthens"
