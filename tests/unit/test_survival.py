"""The survival estimators (Kaplan-Meier, Aalen-Johansen) agree with lifelines, censoring respected."""

import warnings

import numpy as np
import pytest

from enablement.domain.survival.competing_risks import cumulative_incidence
from enablement.domain.survival.kaplan_meier import km_median, km_quantiles, weighted_km_median


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


def lifelines_quantiles(durations, events, weights=None) -> dict:
    """The same three quantiles from lifelines' KaplanMeierFitter (None where not reached)."""
    from lifelines import KaplanMeierFitter

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fitter = KaplanMeierFitter().fit(durations, events, weights=weights)
        values = {
            key: float(fitter.percentile(level))
            for key, level in (("p25_days", 0.75), ("median_days", 0.5), ("p75_days", 0.25))
        }
    return {k: round(v, 2) if np.isfinite(v) else None for k, v in values.items()}


@pytest.mark.parametrize("seed", range(6))
def test_km_quantiles_match_lifelines_with_censoring_and_ties(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(30, 600))
    # Whole days (many ties, as stage episodes have) or continuous days; up to 70% censored.
    durations = rng.exponential(rng.uniform(5, 60), n) + 0.5
    if seed % 2:
        durations = np.ceil(durations)
    events = rng.random(n) > rng.uniform(0.0, 0.7)
    assert km_quantiles(durations, events) == lifelines_quantiles(durations, events)


def test_follow_up_too_short_for_half_leaves_the_median_unknown_as_lifelines_does():
    # Everyone still open at day 30 is censored there; about 40% advance by then.
    rng = np.random.default_rng(9)
    true_days = rng.exponential(60, 300) + 0.1
    durations, events = np.minimum(true_days, 30.0), true_days < 30.0
    ours, theirs = km_quantiles(durations, events), lifelines_quantiles(durations, events)
    assert ours["median_days"] is None and ours["p75_days"] is None
    assert theirs["median_days"] is None and theirs["p75_days"] is None
    # No censoring before day 30, so the curve is exactly 3/4 after the 75th of 300 advances:
    # that day is the first quartile. lifelines' running sum of logs rounds just above 3/4 there
    # and answers the next advance's day instead.
    assert ours["p25_days"] == round(float(np.sort(durations[events])[74]), 2)
    assert theirs["p25_days"] == round(float(np.sort(durations[events])[75]), 2)


def test_the_weighted_median_matches_lifelines_case_weights():
    rng = np.random.default_rng(3)
    durations = np.ceil(rng.exponential(25, 250))
    events = rng.random(250) < 0.8
    weights = rng.uniform(0.2, 3.0, 250)
    ours = weighted_km_median(durations, events, weights)
    assert ours == lifelines_quantiles(durations, events, weights)["median_days"]
    # Zero weights drop an episode; whole weights repeat it.
    repeat = np.repeat(np.arange(250), 2)
    assert weighted_km_median(durations, events, np.full(250, 2.0)) == km_median(
        durations[repeat], events[repeat]
    )
    assert weighted_km_median(durations, events, np.zeros(250)) is None


def test_a_curve_exactly_at_one_half_takes_that_day():
    # 1 - 1/10, then 8/9 ... : after five distinct advances the product is 1/2 up to rounding.
    durations = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 9.0, 9.0, 9.0, 9.0, 9.0])
    events = np.array([True] * 5 + [False] * 5)
    assert km_median(durations, events) == 5.0


def test_cumulative_incidence_matches_lifelines_aalen_johansen():
    from lifelines import AalenJohansenFitter

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
