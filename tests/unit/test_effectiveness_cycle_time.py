"""Cycle time: Kaplan-Meier days per stage with open deals censored, and won cycles by month."""

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from enablement.domain.cycle_time import compute_cycle_time, km_quantiles
from enablement.domain.episodes import build_episodes, to_days

T0 = datetime(2026, 1, 1, tzinfo=UTC)
AS_OF = T0 + timedelta(days=120)
STAGES = pd.DataFrame(
    [
        ("p", "lead", "Lead", "awareness", False, False, 0),
        ("p", "demo", "Demo", "evaluation", False, False, 1),
        ("p", "won", "Won", None, True, True, 2),
        ("p", "lost", "Lost", None, True, False, 3),
    ],
    columns=[
        "pipeline_id",
        "stage_id",
        "label",
        "buying_stage",
        "is_closed",
        "is_won",
        "display_order",
    ],
)


def test_open_episodes_are_censored_not_dropped_or_counted_as_done():
    # Five advanced after 10 days; five still open after 100 days.
    durations = np.array([10.0] * 5 + [100.0] * 5)
    events = np.array([True] * 5 + [False] * 5)
    q = km_quantiles(durations, events)
    # Half advanced by day 10; the other half never reached 75%: unknown, not invented.
    assert q["median_days"] == pytest.approx(10.0)
    assert q["p75_days"] is None
    assert km_quantiles(durations[:5], events[:5])["p75_days"] == pytest.approx(10.0)


def test_no_advances_give_null_quantiles():
    assert km_quantiles(np.array([5.0, 6.0]), np.array([False, False])) == {
        "median_days": None,
        "p25_days": None,
        "p75_days": None,
    }


def frame(rows):
    return pd.DataFrame(
        [(d, "p", s, T0 + timedelta(days=day)) for d, s, day in rows],
        columns=["deal_id", "pipeline_id", "stage_id", "entered_at"],
    )


def test_the_report_counts_advanced_lost_and_open_and_won_cycles_by_creation_month():
    history = frame(
        [
            ("a", "lead", 0),
            ("a", "demo", 10),
            ("a", "won", 30),
            ("b", "lead", 0),
            ("b", "lost", 5),
            ("c", "lead", 40),
            ("c", "demo", 50),
            ("d", "lead", 41),
        ]
    )
    deals = pd.DataFrame(
        {
            "deal_id": ["a", "b", "c", "d"],
            "created_at": [T0, T0, T0 + timedelta(days=40), T0 + timedelta(days=41)],
        }
    )
    episodes, crm = build_episodes(history, STAGES, AS_OF)
    report = compute_cycle_time(
        episodes, crm, STAGES, deals, history, AS_OF.isoformat(), float(to_days(AS_OF)[0])
    )
    lead = report["crm_stages"][0]
    assert (lead["stage_id"], lead["entered"], lead["advanced"], lead["lost"], lead["open"]) == (
        "lead",
        4,
        2,
        1,
        1,
    )
    evaluation = report["buying_stages"][2]
    assert (evaluation["entered"], evaluation["advanced"], evaluation["open"]) == (2, 1, 1)
    months = {m["month"]: m for m in report["won_cycle_by_month"]}
    assert months["2026-01"]["won"] == 1 and months["2026-01"]["median_days"] == 30
    assert months["2026-02"]["won"] == 0 and months["2026-02"]["open"] == 2
    assert months["2026-02"]["median_days"] is None


def test_cumulative_incidence_matches_lifelines_aalen_johansen():
    import warnings

    from lifelines import AalenJohansenFitter

    from enablement.domain.cycle_time import cumulative_incidence

    rng = np.random.default_rng(4)
    n = 400
    # NOTE: no tied times: lifelines breaks ties by random jitter, which moves its curve.
    durations = rng.exponential(30, n) + 0.1
    outcome = rng.choice(np.array(["advanced", "lost", "open", "backward"], dtype=object), n)
    times, adv, lost = cumulative_incidence(durations, outcome == "advanced", outcome == "lost")
    codes = np.select([outcome == "advanced", outcome == "lost"], [1, 2], 0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for code, ours in ((1, adv), (2, lost)):
            fitter = AalenJohansenFitter(calculate_variance=False, seed=0)
            fitter.fit(durations, codes, event_of_interest=code)
            theirs = fitter.cumulative_density_.iloc[:, 0]
            for t in (5.0, 20.0, 60.0):
                value = float(theirs[theirs.index <= t].iloc[-1])
                assert ours[np.searchsorted(times, t, side="right") - 1] == pytest.approx(
                    value, abs=1e-9
                )
    # Incidence of advancing plus losing never exceeds 1, and advancing alone stays below KM's 1 - S.
    assert (adv + lost <= 1 + 1e-12).all()


def test_the_km_median_is_labelled_and_the_competing_risk_view_sits_beside_it():
    # Ten episodes: three advance (days 5, 6, 7), five are lost early (days 1-3), two stay open.
    history = frame(
        [(f"a{i}", "lead", 0) for i in range(3)]
        + [(f"a{i}", "demo", 5 + i) for i in range(3)]
        + [(f"l{i}", "lead", 0) for i in range(5)]
        + [(f"l{i}", "lost", 1 + i % 3) for i in range(5)]
        + [(f"o{i}", "lead", 0) for i in range(2)]
    )
    deals = pd.DataFrame({"deal_id": sorted(set(history["deal_id"])), "created_at": T0})
    episodes, crm = build_episodes(history, STAGES, AS_OF)
    report = compute_cycle_time(
        episodes, crm, STAGES, deals, history, AS_OF.isoformat(), float(to_days(AS_OF)[0])
    )
    awareness = report["buying_stages"][0]
    # Kaplan-Meier treats the lost deals as if they might still advance: median day 7.
    assert awareness["median_days"] == pytest.approx(7.0)
    # Only 3 of 10 had actually advanced by then; 5 of 10 were lost within 30 days.
    assert awareness["advanced_at_median"] == pytest.approx(0.3)
    assert awareness["lost_30d"] == pytest.approx(0.5)
    assert awareness["advanced_30d"] == pytest.approx(0.3)
    assert awareness["cif_median_days"] is None  # half never actually advance
    assert "had no deal been lost" in report["method"] and "Aalen-Johansen" in report["method"]
