"""The effectiveness report under strong, step-shaped confounding by deal size (tests/effect_simulator.py)."""

import json
import math
import warnings
from functools import cache

import numpy as np
import pandas as pd
import pytest

from enablement.domain.effectiveness import compute_effectiveness, exposure_effect
from enablement.domain.effectiveness.stage_model import StageModel
from enablement.domain.episodes import build_episodes, exposures
from enablement.render import render
from tests.effect_simulator import AS_OF, NULLS, STAGE_MAP, simulate


def report_for(world, **options):
    """Episodes and the effectiveness report of a simulated world (options go to the report)."""
    episodes, _ = build_episodes(world.history, STAGE_MAP, AS_OF)
    return episodes, compute_effectiveness(episodes, world.deals, world.shares, {}, "x", **options)


@cache
def world_report(seed: int, n_deals: int = 4000):
    """Memoised world, its episodes and report."""
    world = simulate(n_deals, seed)
    return (world, *report_for(world))


def by_asset(report):
    return {it["asset_id"]: it for it in report["items"]}


@pytest.mark.parametrize("seed", [1, 2])
def test_every_planted_verdict_is_recovered_under_strong_step_confounding(seed):
    world, _, report = world_report(seed)
    got = {(it["asset_id"], it["buying_stage"]): it["verdict"] for it in report["items"]}
    assert got == world.truth
    items = by_asset(report)
    # The effective piece sent mostly to small deals is neither inflated by them nor shrunk.
    assert 1.4 < items["short-small"]["hazard_ratio"] < 2.0
    assert 0.42 < items["long"]["hazard_ratio"] < 0.65


def test_one_linear_log_amount_term_would_call_the_null_piece_sent_to_small_deals_shortens():
    # The audit's failure, reproduced: with amount as one linear term (no bins) the step-shaped
    # size effect leaks into the piece that small deals receive.
    world, _, _ = world_report(1)
    _, linear = report_for(world, max_amount_bins=1)
    assert by_asset(linear)["null-small"]["verdict"] == "shortens"
    _, _, flexible = world_report(1)
    assert by_asset(flexible)["null-small"]["verdict"] == "no_evidence"


def test_across_seeds_null_pieces_are_called_at_about_the_nominal_rate():
    nulls = false = 0
    for seed in (3, 4, 5, 6):
        world, _, report = world_report(seed, 3000)
        for it in report["items"]:
            if world.truth[(it["asset_id"], "evaluation")] == "no_evidence":
                nulls += 1
                false += it["verdict"] in ("shortens", "lengthens")
    assert nulls == 4 * (len(NULLS) + 2)
    # 5% is the nominal false discovery rate; allow sampling noise, not a systematic bias.
    assert false / nulls <= 0.08


def test_the_confounded_effect_matches_a_joint_fit_with_an_interval_no_narrower():
    from lifelines import CoxTimeVaryingFitter

    world = simulate(1500, 9)
    episodes, _ = build_episodes(world.history, STAGE_MAP, AS_OF)
    eps = episodes.reset_index(drop=True).merge(world.deals, on=["deal_id", "pipeline_id"])
    exp = exposures(eps, world.shares)
    exp = exp[exp["asset_id"] == "short-small"]
    rows = exp["episode"].to_numpy()
    t_e = exp["exposed_after_days"].to_numpy()
    model = StageModel(eps)
    fit = model.exposure_fit(rows, t_e)
    X = model.design.X
    x = pd.DataFrame(X, columns=[f"x{i}" for i in range(X.shape[1])])
    x["id"], x["start"], x["stop"] = np.arange(model.n), 0.0, model.durations
    x["event"], x["exposed"] = model.advanced.astype(int), 0
    before = x.loc[rows].assign(stop=t_e, event=0)
    after = x.loc[rows].assign(start=t_e, exposed=1)
    cp = pd.concat([x.drop(index=rows), before[before["stop"] > 0], after], ignore_index=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        joint = CoxTimeVaryingFitter().fit(
            cp, id_col="id", start_col="start", stop_col="stop", event_col="event"
        )
    assert fit.beta == pytest.approx(joint.params_["exposed"], abs=0.01)
    assert fit.se >= joint.standard_errors_["exposed"] * 0.995
    # The offset-only fit (attributes fixed) shrinks this confounded effect toward 1.
    assert abs(fit.offset_beta) < abs(fit.beta)


def test_null_pieces_compare_as_equal_in_the_descriptive_medians():
    _, _, report = world_report(1)
    items = by_asset(report)
    ratios = [
        items[a]["median_days_exposed"] / items[a]["median_days_unexposed"]
        for a in [*NULLS, "rescue"]
    ]
    assert 0.9 < float(np.mean(ratios)) < 1.1
    assert all(0.7 < r < 1.4 for r in ratios)
    short = items["short-small"]
    assert short["median_days_exposed"] < 0.7 * short["median_days_unexposed"]


def test_diagnostics_show_the_imbalance_the_ph_check_and_e_values():
    _, _, report = world_report(1)
    items = by_asset(report)
    small = items["null-small"]["diagnostics"]
    assert small["balance"]["smd_log_amount"] < -1  # sent to small deals: far from balanced
    assert small["balance"]["imbalanced"] is True
    assert small["e_value_ci"] == 1.0  # the interval holds 1: nothing to explain away
    short = items["short-small"]["diagnostics"]
    assert short["e_value"] > short["e_value_ci"] > 1
    assert 0 <= short["proportional_hazards"]["p_value"] <= 1
    json.dumps(report, allow_nan=False)
    csv = render("effectiveness", report, "csv").splitlines()
    header = csv[0].split(",")
    assert {"smd_log_amount", "smd_industry_max", "smd_owner_max", "ph_p_value", "e_value"} <= set(
        header
    )
    row = dict(
        zip(header, next(r for r in csv if r.startswith("null-small")).split(","), strict=True)
    )
    assert float(row["smd_log_amount"]) == small["balance"]["smd_log_amount"]


def test_any_time_varying_exposure_gets_the_same_adjusted_estimate():
    world, episodes, report = world_report(1)
    eps = episodes.reset_index(drop=True).merge(world.deals, on=["deal_id", "pipeline_id"])
    exp = exposures(eps, world.shares)
    exp = exp[exp["asset_id"] == "short-small"]
    start = np.full(len(eps), np.nan)
    start[exp["episode"].to_numpy()] = exp["exposed_after_days"].to_numpy()
    effect = exposure_effect(eps, start)
    item = by_asset(report)["short-small"]
    # The single-exposure model (no other pieces, no entry periods) agrees with the report's
    # joint estimate here, where no other piece is sent mostly with it: within a standard error.
    se = (math.log(item["ci_high"]) - math.log(item["ci_low"])) / (2 * 1.959964)
    assert abs(math.log(effect["hazard_ratio"]) - math.log(item["hazard_ratio"])) < se
    assert effect["verdict"] == "shortens" and "Cox" in effect["method"]
    # Never exposed (NaN), or exposed only at or after the episode's end: too few to fit.
    late = exposure_effect(eps, eps["duration_days"].to_numpy() + 1)
    assert late["exposed_episodes"] == 0 and late["verdict"] == "insufficient_data"
    assert late["hazard_ratio"] is None and late["reason"]
    with pytest.raises(ValueError):
        exposure_effect(eps, start[:-1])
