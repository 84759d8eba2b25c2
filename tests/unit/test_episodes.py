"""Stage episodes from stage history and the stage map: advances, censoring, re-entries."""

from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from enablement.domain.episodes import MIN_DAYS, build_episodes, exposures

T0 = datetime(2026, 1, 1, tzinfo=UTC)
AS_OF = T0 + timedelta(days=100)

STAGES = pd.DataFrame(
    [
        ("p", "lead", "awareness", False, False, 0),
        ("p", "mql", "awareness", False, False, 1),
        ("p", "disc", "interest", False, False, 2),
        ("p", "hold", None, False, False, 3),
        ("p", "demo", "evaluation", False, False, 4),
        ("p", "prop", "closing", False, False, 5),
        ("p", "won", None, True, True, 6),
        ("p", "lost", None, True, False, 7),
    ],
    columns=["pipeline_id", "stage_id", "buying_stage", "is_closed", "is_won", "display_order"],
)


def history(*steps, deal="d1"):
    """Rows (stage, day) for one deal."""
    return pd.DataFrame(
        [(deal, "p", stage, T0 + timedelta(days=day)) for stage, day in steps],
        columns=["deal_id", "pipeline_id", "stage_id", "entered_at"],
    )


def episodes_of(*steps, as_of=AS_OF):
    ep, _ = build_episodes(history(*steps), STAGES, as_of)
    return [(r.buying_stage, round(r.duration_days, 3), r.outcome) for r in ep.itertuples()]


def test_a_deal_moving_forward_to_won_advances_from_every_stage():
    got = episodes_of(("lead", 0), ("disc", 10), ("demo", 15), ("prop", 30), ("won", 32))
    assert got == [
        ("awareness", 10, "advanced"),
        ("interest", 5, "advanced"),
        ("evaluation", 15, "advanced"),
        ("closing", 2, "advanced"),
    ]


def test_moves_between_crm_stages_of_the_same_buying_stage_continue_the_episode():
    got = episodes_of(("lead", 0), ("mql", 4), ("lead", 6), ("disc", 9))
    assert got[0] == ("awareness", 9, "advanced")


def test_a_skipped_stage_is_an_advance_from_the_stage_left():
    got = episodes_of(("lead", 0), ("prop", 7), ("won", 9))
    assert got == [("awareness", 7, "advanced"), ("closing", 2, "advanced")]


def test_a_backward_move_ends_the_episode_censored_and_a_reentry_starts_a_new_one():
    got = episodes_of(("disc", 0), ("demo", 5), ("disc", 8), ("demo", 20), ("won", 26))
    assert got == [
        ("interest", 5, "advanced"),
        ("evaluation", 3, "backward"),
        ("interest", 12, "advanced"),
        ("evaluation", 6, "advanced"),
    ]


def test_an_unmapped_stage_ends_the_episode_censored_not_advanced():
    got = episodes_of(("disc", 0), ("hold", 4), ("demo", 10), ("lost", 12))
    assert got == [("interest", 4, "unmapped"), ("evaluation", 2, "lost")]


def test_a_stage_missing_from_the_map_counts_as_unmapped():
    got = episodes_of(("disc", 0), ("mystery", 3))
    assert got == [("interest", 3, "unmapped")]


def test_a_lost_deal_ends_censored_as_lost():
    assert episodes_of(("lead", 0), ("lost", 20)) == [("awareness", 20, "lost")]


def test_an_open_deal_is_censored_at_as_of_and_later_history_is_ignored():
    got = episodes_of(("lead", 0), ("disc", 90), ("demo", 150))
    assert got == [("awareness", 90, "advanced"), ("interest", 10, "open")]


def test_a_deal_entering_after_as_of_has_no_episode():
    assert episodes_of(("lead", 101)) == []


def test_a_reopened_deal_after_a_loss_starts_a_new_episode():
    got = episodes_of(("lead", 0), ("lost", 5), ("disc", 40), ("won", 50))
    assert got == [("awareness", 5, "lost"), ("interest", 10, "advanced")]


def test_two_entries_at_the_same_instant_give_a_minimal_positive_duration():
    got = episodes_of(("lead", 0), ("disc", 0), ("demo", 3))
    assert got[0] == ("awareness", round(MIN_DAYS, 3), "advanced")


def test_crm_stage_episodes_advance_by_display_order_and_censor_backward_moves():
    _, crm = build_episodes(
        history(("lead", 0), ("demo", 4), ("disc", 6), ("prop", 9), ("lost", 10)), STAGES, AS_OF
    )
    got = [(r.stage_id, round(r.duration_days, 3), r.outcome) for r in crm.itertuples()]
    assert got == [
        ("lead", 4, "advanced"),
        ("demo", 2, "backward"),
        ("disc", 3, "advanced"),
        ("prop", 1, "lost"),
    ]


def test_history_out_of_order_in_input_is_sorted_by_time():
    shuffled = history(("won", 30), ("lead", 0), ("disc", 10))
    ep, _ = build_episodes(shuffled, STAGES, AS_OF)
    assert list(ep["outcome"]) == ["advanced", "advanced"]
    assert list(ep["duration_days"]) == pytest.approx([10, 20])


def test_exposure_counts_only_shares_during_the_episode_and_the_first_of_repeats():
    ep, _ = build_episodes(history(("lead", 0), ("disc", 10), ("won", 20)), STAGES, AS_OF)
    shares = pd.DataFrame(
        [
            ("d1", "before", T0 - timedelta(days=1)),
            ("d1", "a", T0 + timedelta(days=12)),
            ("d1", "a", T0 + timedelta(days=15)),
            ("d1", "at-end", T0 + timedelta(days=20)),
            ("d1", "boundary", T0 + timedelta(days=10)),
            ("other", "a", T0 + timedelta(days=12)),
        ],
        columns=["deal_id", "asset_id", "shared_at"],
    )
    got = sorted(
        (int(r.episode), r.asset_id, round(r.exposed_after_days, 3))
        for r in exposures(ep, shares).itertuples()
    )
    # The share at the instant the deal enters interest belongs to interest, not awareness.
    assert got == [(1, "a", 2.0), (1, "boundary", 0.0)]
