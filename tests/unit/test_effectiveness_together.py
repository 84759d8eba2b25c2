"""Pieces sent together and a cycle that speeds up over the year (tests/effect_simulator.py).

Each situation is shown to fool the per-piece model (exposure_effect: one exposure, no other
pieces, no calendar), so these tests fail without mutual adjustment and entry-period strata.
"""

import json
import warnings
from functools import cache

import numpy as np
import pandas as pd
import pytest

from enablement.domain.effectiveness import compute_effectiveness, exposure_effect
from enablement.domain.episodes import build_episodes, exposures
from enablement.domain.survival.joint_cox import JointCox
from enablement.render import render
from tests.effect_simulator import AS_OF, FEW_NULLS, STAGE_MAP, simulate_drift, simulate_together


@cache
def world_report(kind: str, seed: int, **options):
    """Memoised world, its episodes and report (its published dates passed)."""
    world = (simulate_together if kind == "together" else simulate_drift)(4000, seed)
    episodes, _ = build_episodes(world.history, STAGE_MAP, AS_OF)
    report = compute_effectiveness(
        episodes, world.deals, world.shares, {}, "x", published=world.published, **options
    )
    return world, episodes, report


def by_asset(report):
    return {it["asset_id"]: it for it in report["items"]}


def per_piece(world, episodes, asset):
    """The per-piece model's answer for one asset (exposure_effect on its exposures alone)."""
    eps = episodes.reset_index(drop=True).merge(world.deals, on=["deal_id", "pipeline_id"])
    exp = exposures(eps, world.shares)
    exp = exp[exp["asset_id"] == asset]
    start = np.full(len(eps), np.nan)
    start[exp["episode"].to_numpy()] = exp["exposed_after_days"].to_numpy()
    return exposure_effect(eps, start)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_null_piece_sent_with_an_effective_one_is_not_credited_and_the_partner_still_is(seed):
    world, episodes, report = world_report("together", seed)
    # Teeth: on its own the bundled null piece borrows its partner's effect.
    naive = per_piece(world, episodes, "bundled")
    assert naive["verdict"] == "shortens" and naive["ci_low"] > 1
    items = by_asset(report)
    assert items["bundled"]["verdict"] == "no_evidence"
    assert 0.85 < items["bundled"]["hazard_ratio"] < 1.15
    assert items["partner"]["verdict"] == "shortens"
    assert 1.4 < items["partner"]["hazard_ratio"] < 2.0
    co = items["bundled"]["diagnostics"]["co_send"]
    assert co["partners"][0]["asset_id"] == "partner" and co["partners"][0]["share"] > 0.7
    assert co["flag"] is True
    got = {(it["asset_id"], it["buying_stage"]): it["verdict"] for it in report["items"]}
    assert got == world.truth


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_pieces_always_sent_together_get_a_joint_row_and_neither_is_credited(seed):
    _, _, report = world_report("together", seed)
    items = by_asset(report)
    assert items["twin-a"]["inseparable_from"] == ["twin-b"]
    assert items["twin-b"]["inseparable_from"] == ["twin-a"]
    assert {items["twin-a"]["verdict"], items["twin-b"]["verdict"]} == {"no_evidence"}
    assert "inseparable from twin-b" in items["twin-a"]["reason"]
    joint = items["twin-a+twin-b"]
    assert joint["joint_of"] == ["twin-a", "twin-b"]
    assert joint["verdict"] == "shortens" and 1.2 < joint["hazard_ratio"] < 1.8
    # The joint row's interval is the joint model's: narrower than either twin's alone.
    width = np.log(joint["ci_high"]) - np.log(joint["ci_low"])
    assert width < np.log(items["twin-a"]["ci_high"]) - np.log(items["twin-a"]["ci_low"])
    assert joint["q_value"] is not None and joint["exposed_episodes"] > 500


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_late_published_null_piece_is_not_credited_with_the_cycle_speeding_up(seed):
    world, episodes, report = world_report("drift", seed)
    naive = per_piece(world, episodes, "late-null")
    assert naive["verdict"] == "shortens" and naive["hazard_ratio"] > 1.1
    items = by_asset(report)
    assert items["late-null"]["verdict"] == "no_evidence"
    assert 0.85 < items["late-null"]["hazard_ratio"] < 1.15
    assert items["steady"]["verdict"] == "shortens"
    # The diagnostics warn: the late piece's deals entered the stage much later than the rest.
    balance = items["late-null"]["diagnostics"]["balance"]
    assert balance["smd_entry_date"] > 1 and balance["imbalanced"] is True
    calendar = items["late-null"]["diagnostics"]["calendar"]
    assert calendar["entry_periods"] > 1
    published = pd.Timestamp(world.published["late-null"]).date().isoformat()
    assert published in calendar["period_edges"]
    got = {(it["asset_id"], it["buying_stage"]): it["verdict"] for it in report["items"]}
    assert got == world.truth


def test_without_entry_periods_the_joint_model_is_fooled_by_the_drift_too():
    # The calendar strata are what fix it: one period (max_periods=1) calls the late null fast.
    for seed in (1, 2):
        _, _, flat = world_report("drift", seed, max_periods=1)
        assert by_asset(flat)["late-null"]["verdict"] == "shortens"


def test_across_seeds_null_pieces_are_called_at_or_below_the_false_discovery_rate():
    nulls = false = 0
    for kind in ("together", "drift"):
        for seed in (4, 5, 6, 7):
            world, _, report = world_report(kind, seed)
            for it in report["items"]:
                if world.truth[(it["asset_id"], "evaluation")] == "no_evidence":
                    nulls += 1
                    false += it["verdict"] in ("shortens", "lengthens")
    assert nulls == 4 * (len(FEW_NULLS) + 3) + 4 * (len(FEW_NULLS) + 1)
    assert false / nulls <= 0.05


def test_the_csv_carries_the_co_send_and_entry_date_warnings():
    _, _, report = world_report("together", 1)
    json.dumps(report, allow_nan=False)
    csv = render("effectiveness", report, "csv").splitlines()
    header = csv[0].split(",")
    assert {"co_send_share", "co_send_partner", "co_send_flag", "smd_entry_date"} <= set(header)
    assert {"inseparable_from", "entry_periods"} <= set(header)
    row = dict(
        zip(header, next(r for r in csv if r.startswith("bundled,")).split(","), strict=True)
    )
    assert row["co_send_partner"] == "partner" and row["co_send_flag"] == "True"
    twin = dict(
        zip(header, next(r for r in csv if r.startswith("twin-a,")).split(","), strict=True)
    )
    assert twin["inseparable_from"] == "twin-b"


def test_the_joint_model_matches_lifelines_with_every_exposure_and_strata():
    from lifelines import CoxTimeVaryingFitter

    rng = np.random.default_rng(3)
    n = 1500
    X = rng.normal(size=(n, 2))
    strata = rng.integers(0, 3, n)
    durations = rng.exponential(30, n) + 0.01
    advanced = rng.random(n) < 0.7
    ep, term, start = [], [], []
    for i in range(n):
        for a in range(3):
            if rng.random() < 0.3:
                ep.append(i)
                term.append(a)
                start.append(float(rng.uniform(0, durations[i])) if rng.random() < 0.7 else 0.0)
    model = JointCox(
        X, durations, advanced, strata, np.array(ep), np.array(term), np.array(start), 3
    )
    fit = model.fit()
    z = np.zeros((len(model.row_ep), 3))
    z[model.nz_row, model.nz_term] = 1
    cp = pd.DataFrame(
        {
            "id": model.row_ep,
            "start": model.start,
            "stop": model.stop,
            "event": model.event.astype(int),
            "x0": X[model.row_ep, 0],
            "x1": X[model.row_ep, 1],
            "s": strata[model.row_ep],
            **{f"z{a}": z[:, a] for a in range(3)},
        }
    )
    # The counting-process rows are the episodes split at each exposure, as lifelines wants them.
    assert len(cp) == n + sum(1 for s in start if s > 0)  # continuous times: all distinct
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = CoxTimeVaryingFitter().fit(
            cp, id_col="id", start_col="start", stop_col="stop", event_col="event", strata=["s"]
        )
    assert np.allclose(fit.beta, ref.params_[["z0", "z1", "z2"]].to_numpy(), atol=1e-4)
    se = np.sqrt(np.diag(fit.cov))
    assert np.allclose(se, ref.standard_errors_[["z0", "z1", "z2"]].to_numpy(), rtol=1e-3)
    assert all(p is None or 0 <= p <= 1 for p in fit.ph_p_value)
