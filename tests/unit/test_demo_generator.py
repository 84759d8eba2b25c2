"""The demo generator is deterministic and produces realistic, internally consistent data."""

from collections import Counter, defaultdict
from datetime import UTC, datetime
from functools import cache

import pytest

from enablement.demo.dataset import generate_demo, summary_counts
from enablement.demo.library import SERIES_NAME
from enablement.demo.world import CLOSING_NEVER_FOR, PIPELINES, PRODUCT_NAMES, buying_stage_of
from enablement.domain.pov import is_product_pitch, pitch_score
from enablement.domain.stages import BUYING_STAGES, suggest_buying_stage

NOW = datetime(2026, 11, 23, tzinfo=UTC)
WON = {s.id for p in PIPELINES for s in p.stages if s.is_won}
CLOSED = {s.id for p in PIPELINES for s in p.stages if s.is_closed}


@cache
def full():
    """The default-sized dataset, built once for this module."""
    return generate_demo(NOW)


def test_the_same_seed_and_day_give_identical_data():
    first = generate_demo(NOW, seed=7, deals=150, assets=40)
    second = generate_demo(NOW, seed=7, deals=150, assets=40)
    assert first == second
    assert repr(first) == repr(second)


def test_another_seed_gives_different_data():
    assert generate_demo(NOW, seed=1, deals=50, assets=25) != generate_demo(
        NOW, seed=2, deals=50, assets=25
    )


def test_default_sizes_are_two_thousand_deals_and_three_hundred_assets():
    data = full()
    assert len(data.deals) == 2000
    assert len(data.assets) == 300
    assert len({d.id for d in data.deals}) == 2000
    assert len({a.id for a in data.assets}) == 300
    assert len({a.url for a in data.assets}) == 300
    assert len(data.owners) == 8


def test_every_history_starts_at_creation_is_ordered_and_ends_in_the_current_stage():
    for deal in full().deals:
        times = [e.entered_at for e in deal.stage_history]
        assert times[0] == deal.created_at
        assert times == sorted(times) and len(set(times)) == len(times)
        assert all(t.tzinfo is not None and t <= NOW for t in times)
        stages = [e.stage_id for e in deal.stage_history]
        # Closed stages only ever come last, and closed_at is when the deal closed.
        assert not CLOSED & set(stages[:-1])
        if stages[-1] in CLOSED:
            assert deal.closed_at == times[-1]
        else:
            assert deal.closed_at is None


def test_deals_are_a_mix_of_won_lost_and_open_with_backward_moves_and_skips():
    counts = summary_counts(full())
    assert counts["won"] > 300 and counts["lost"] > 300 and counts["open"] > 150
    order = {s.id: i for p in PIPELINES for i, s in enumerate(p.stages)}
    backward = skipped = reentered = 0
    for deal in full().deals:
        stages = [e.stage_id for e in deal.stage_history]
        steps = [order[b] - order[a] for a, b in zip(stages, stages[1:], strict=False)]
        backward += any(s < 0 for s in steps)
        skipped += any(s > 1 and b not in CLOSED for s, b in zip(steps, stages[1:], strict=True))
        reentered += len(set(stages)) < len(stages)
    assert backward > 20 and skipped > 20 and reentered > 20


def test_deals_look_like_crm_deals():
    deal = full().deals[0]
    assert " – " in deal.name and deal.name.startswith(deal.company)
    assert deal.amount > 0 and deal.currency == "USD"
    assert deal.industry and deal.personas and deal.topics
    assert {d.pipeline_id for d in full().deals} == {"default", "31468712"}


def test_shares_happen_in_open_stages_by_the_deal_owner_and_views_follow_them():
    deals = {d.id: d for d in full().deals}
    assets = {a.id: a for a in full().assets}
    for share in full().shares:
        deal = deals[share.deal_id]
        assert share.shared_by == deal.owner_id
        before = [e for e in deal.stage_history if e.entered_at <= share.shared_at]
        assert before and before[-1].stage_id not in CLOSED
        asset = assets[share.asset_id]
        assert asset.status != "draft" and asset.published_at <= share.shared_at
        assert asset.retired_at is None or share.shared_at < asset.retired_at
        assert all(share.shared_at < v <= NOW for v in share.viewed_at)
    per_deal = len(full().shares) / len(full().deals)
    assert 3 <= per_deal <= 7
    opened = sum(bool(s.viewed_at) for s in full().shares)
    assert 0.5 < opened / len(full().shares) < 0.9


def test_some_assets_are_never_shared_and_some_shared_ones_are_never_opened():
    shared = {s.asset_id for s in full().shares}
    assert len({a.id for a in full().assets} - shared) >= 10
    opened = Counter(s.asset_id for s in full().shares if s.viewed_at)
    never_opened = shared - set(opened)
    assert never_opened


def test_the_library_has_stale_retired_draft_untagged_and_pitch_assets():
    assets = full().assets
    statuses = Counter(a.status for a in assets)
    assert statuses["draft"] >= 3 and statuses["retired"] >= 3
    assert sum(1 for a in assets if a.review_by and a.review_by < NOW.date()) >= 10
    assert any(not a.stages for a in assets)
    assert len({a.author for a in assets}) == 12
    assert {a.kind for a in assets} >= {"article", "whitepaper", "webinar", "case_study"}
    assert {a.kind for a in assets} >= {"podcast", "video", "report", "roadmap", "framework"}


def test_pitch_assets_are_flagged_and_point_of_view_assets_are_not():
    for asset in full().assets:
        with_names = pitch_score(asset.title, asset.summary, asset.body, PRODUCT_NAMES)
        without = pitch_score(asset.title, asset.summary, asset.body)
        assert is_product_pitch(with_names) == (asset.role == "pitch"), asset.title
        assert is_product_pitch(without) == (asset.role == "pitch"), asset.title
    assert sum(a.role == "pitch" for a in full().assets) >= 10


def test_the_planted_series_is_ordered_by_one_author():
    series = sorted(
        (a for a in full().assets if a.series == SERIES_NAME), key=lambda a: a.series_order
    )
    assert [a.series_order for a in series] == [1, 2, 3, 4, 5, 6]
    assert len({a.author for a in series}) == 1
    assert [a.published_at for a in series] == sorted(a.published_at for a in series)
    # Buyers who opened one piece are often sent the next one.
    by_deal = defaultdict(set)
    for s in full().shares:
        by_deal[s.deal_id].add(s.asset_id)
    ids = [a.id for a in series]
    follow_ups = sum(
        1 for got in by_deal.values() for a, b in zip(ids, ids[1:], strict=False) if {a, b} <= got
    )
    assert follow_ups > 20


def test_content_is_skewed_to_early_stages_with_planted_gaps():
    per_stage = Counter(s for a in full().assets for s in a.stages)
    assert per_stage["awareness"] + per_stage["interest"] > 3 * (
        per_stage["evaluation"] + per_stage["closing"]
    )
    assert per_stage["closing"] > 0
    closing_personas = {p for a in full().assets if "closing" in a.stages for p in a.personas}
    assert not closing_personas & set(CLOSING_NEVER_FOR)


def test_demo_stage_labels_get_the_buying_stage_the_simulation_assumes():
    for pipeline in PIPELINES:
        for stage in pipeline.stages:
            suggestion = suggest_buying_stage(stage.label, stage.probability, stage.is_closed)
            assert suggestion.buying_stage == stage.buying_stage, stage.label
    assert buying_stage_of("default", "contractsent") == "closing"
    assert buying_stage_of("default", "nope") is None
    assert {s.buying_stage for p in PIPELINES for s in p.stages} - {None} == set(BUYING_STAGES)


def _crude_rate_ratio(data, asset_id: str, stage: str) -> float:
    """Advances per day exposed / per day unexposed in episodes of `stage` (exposure from the share on)."""
    rank = {s: i for i, s in enumerate(BUYING_STAGES)}
    shares = defaultdict(list)
    for s in data.shares:
        if s.asset_id == asset_id:
            shares[s.deal_id].append(s.shared_at)
    totals = {"exposed": [0.0, 0], "unexposed": [0.0, 0]}
    for deal in data.deals:
        history = deal.stage_history
        i = 0
        while i < len(history):
            if buying_stage_of(deal.pipeline_id, history[i].stage_id) != stage:
                i += 1
                continue
            start, j = history[i].entered_at, i + 1
            while (
                j < len(history) and buying_stage_of(deal.pipeline_id, history[j].stage_id) == stage
            ):
                j += 1
            end = history[j].entered_at if j < len(history) else NOW
            nxt = history[j].stage_id if j < len(history) else None
            after = buying_stage_of(deal.pipeline_id, nxt) if nxt else None
            advanced = nxt in WON or (after is not None and rank[after] > rank[stage])
            during = [t for t in shares[deal.id] if start <= t < end]
            split = min(during) if during else end
            totals["unexposed"][0] += (split - start).total_seconds()
            totals["exposed"][0] += (end - split).total_seconds()
            totals["exposed" if during else "unexposed"][1] += advanced
            i = j
    (te, ae), (tu, au) = totals["exposed"], totals["unexposed"]
    return (ae / te) / (au / tu)


def test_planted_effects_show_in_the_data():
    data = full()
    effects = {p.asset_id: p for p in data.planted}
    assert sorted(p.hazard_ratio for p in data.planted) == [0.5, 1.0, 1.9, 2.2]
    for effect in effects.values():
        ratio = _crude_rate_ratio(data, effect.asset_id, effect.buying_stage)
        if effect.hazard_ratio > 1:
            assert ratio > 1.4, effect
        elif effect.hazard_ratio < 1:
            assert ratio < 0.75, effect
        else:
            assert 0.8 < ratio < 1.6, effect


def _report_frames(data):
    """The demo as the effectiveness report reads it after a load (the suggested stage map)."""
    import pandas as pd

    stage_map = pd.DataFrame(
        [
            {
                "pipeline_id": p.id,
                "stage_id": s.id,
                "label": s.label,
                "display_order": i,
                "buying_stage": suggestion.buying_stage,
                "is_closed": s.is_closed,
                "is_won": s.is_won,
                "mapping_source": "suggested",
                "mapping_confidence": suggestion.confidence,
            }
            for p in PIPELINES
            for i, s in enumerate(p.stages)
            for suggestion in [suggest_buying_stage(s.label, s.probability, s.is_closed)]
        ]
    )
    history = pd.DataFrame(
        [
            (d.id, d.pipeline_id, e.stage_id, e.entered_at)
            for d in data.deals
            for e in d.stage_history
        ],
        columns=["deal_id", "pipeline_id", "stage_id", "entered_at"],
    )
    deals = pd.DataFrame(
        [(d.id, d.pipeline_id, d.amount, d.industry, d.owner_id) for d in data.deals],
        columns=["deal_id", "pipeline_id", "amount", "industry", "owner_id"],
    )
    shares = pd.DataFrame(
        [(s.deal_id, s.asset_id, s.shared_at, s.shared_by) for s in data.shares],
        columns=["deal_id", "asset_id", "shared_at", "shared_by"],
    )
    return stage_map, history, deals, shares


def test_the_effectiveness_report_finds_the_four_planted_effects():
    from enablement.domain.effectiveness import compute_effectiveness
    from enablement.domain.episodes import build_episodes

    data = full()
    stage_map, history, deals, shares = _report_frames(data)
    episodes, _ = build_episodes(history, stage_map, NOW)
    titles = {a.id: a.title for a in data.assets}
    report = compute_effectiveness(episodes, deals, shares, titles, NOW.isoformat())
    verdicts = {(it["asset_id"], it["buying_stage"]): it["verdict"] for it in report["items"]}
    expected = {
        (p.asset_id, p.buying_stage): "shortens"
        if p.hazard_ratio > 1
        else "lengthens"
        if p.hazard_ratio < 1
        else "no_evidence"
        for p in data.planted
    }
    assert {key: verdicts.get(key) for key in expected} == expected


def test_small_datasets_still_hold_every_kind_of_special_asset():
    data = generate_demo(NOW, deals=5, assets=20)
    roles = Counter(a.role for a in data.assets)
    assert len(data.assets) == 20 and len(data.deals) == 5
    assert roles["series"] == 6 and roles["planted"] == 3 and roles["pitch"] >= 2
    assert roles["draft"] and roles["retired"] and roles["stale"]


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="aware"):
        generate_demo(datetime(2026, 1, 1), deals=5, assets=20)  # noqa: DTZ001 - the point
    with pytest.raises(ValueError, match="at least"):
        generate_demo(NOW, deals=5, assets=19)
    with pytest.raises(ValueError, match="at least one deal"):
        generate_demo(NOW, deals=0, assets=20)


@pytest.mark.parametrize("assets", [300, 2000])
def test_demo_titles_read_like_titles(assets):
    import re

    titles = [a.title for a in generate_demo(NOW, deals=20, assets=assets).assets]
    assert not [t for t in titles if re.search(r"\b[Aa] [aeioAEIO]", t)]
    assert not [t for t in titles if "(part " in t]
    if assets == 2000:
        assert any(t.endswith("(2nd edition)") for t in titles)
