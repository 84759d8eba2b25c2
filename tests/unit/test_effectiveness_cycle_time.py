"""Cycle time: Kaplan-Meier days per stage with open deals censored, and won cycles by month."""

from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from enablement.domain.cycle_time import compute_cycle_time
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
