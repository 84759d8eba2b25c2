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
