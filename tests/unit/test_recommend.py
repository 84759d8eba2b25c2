"""The ranking rules of domain/recommend.py: each component moves the rank the way it should."""

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from enablement.domain.recommend import (
    AssetFacts,
    DealFacts,
    SentFacts,
    in_holdout,
    is_named_author,
    recommend_assets,
)

NOW = datetime(2026, 6, 1, tzinfo=UTC)
DEAL = DealFacts("d1", "Acme renewal", "evaluation", industry="Manufacturing", personas=("CFO",))


def asset(asset_id, **changes) -> AssetFacts:
    """An evaluation asset by a named author, published a month ago, with no context match."""
    base = AssetFacts(
        id=asset_id,
        title=f"Notes {asset_id}",
        url=f"https://x.example/{asset_id}",
        kind="article",
        author="Grace Hopper",
        stages=("evaluation",),
        published_at=NOW - timedelta(days=30),
    )
    return replace(base, **changes)


def ids(answer) -> list[str]:
    return [item["asset"]["id"] for item in answer["items"]]


def rank(assets, deal=DEAL, sent=(), effects=None, limit=5):
    return recommend_assets(deal, assets, list(sent), effects or {}, NOW, limit)


def test_stage_fit_puts_the_deals_stage_first_and_adjacent_only_as_fallback():
    assets = [
        asset("adjacent", stages=("interest",)),
        asset("here"),
        asset("far", stages=("awareness",)),
    ]
    answer = rank(assets)
    assert ids(answer) == ["here", "adjacent"]  # awareness is two stages away: never
    assert answer["items"][0]["components"]["stage"] == 1.0
    assert answer["items"][1]["components"]["stage"] == 0.5
    assert any("next to evaluation" in r for r in answer["items"][1]["reasons"])
    # Enough pieces for the stage: no fallback at all.
    assert ids(rank(assets, limit=1)) == ["here"]


def test_context_fit_ranks_the_matching_industry_and_persona_higher():
    plain, fitting = asset("a"), asset("b", industries=("manufacturing",), personas=("cfo",))
    answer = rank([plain, fitting])
    assert ids(answer) == ["b", "a"]
    assert answer["items"][0]["components"]["context"] > answer["items"][1]["components"]["context"]
    assert any("manufacturing" in r for r in answer["items"][0]["reasons"])


def test_context_fit_is_fuzzy_over_title_and_summary():
    typo = asset("b", summary="A playbook for manufacturng CFOs")
    assert ids(rank([asset("a"), typo])) == ["b", "a"]


def test_evidence_shortens_ranks_higher_and_is_shrunk_when_thin():
    effects = {
        ("strong", "evaluation"): {
            "verdict": "shortens",
            "hazard_ratio": 2.0,
            "ci_low": 1.6,
            "ci_high": 2.5,
        },
        ("wide", "evaluation"): {
            "verdict": "no_evidence",
            "hazard_ratio": 2.0,
            "ci_low": 0.5,
            "ci_high": 8.0,
        },
        ("slow", "evaluation"): {
            "verdict": "lengthens",
            "hazard_ratio": 0.5,
            "ci_low": 0.4,
            "ci_high": 0.6,
        },
        ("thin", "evaluation"): {"verdict": "insufficient_data", "hazard_ratio": None},
    }
    answer = rank([asset(x) for x in ("slow", "thin", "wide", "strong")], effects=effects, limit=4)
    evidence = {i["asset"]["id"]: i["components"]["evidence"] for i in answer["items"]}
    assert evidence["thin"] == 0.5  # insufficient data is neutral
    assert evidence["strong"] > evidence["wide"] > 0.5 > evidence["slow"]
    assert ids(answer)[0] == "strong" and ids(answer)[-1] == "slow"


def test_engagement_prefers_pieces_buyers_open():
    opened = asset("b", shares=10, opened_shares=8)
    ignored = asset("a", shares=10, opened_shares=1)
    answer = rank([ignored, opened])
    assert ids(answer) == ["b", "a"]
    assert any("opened it 8 of 10" in r for r in answer["items"][0]["reasons"])


def test_freshness_prefers_newer_pieces():
    old = asset("a", published_at=NOW - timedelta(days=900))
    assert ids(rank([old, asset("b")])) == ["b", "a"]


def test_novelty_never_resuggests_and_the_next_piece_of_an_opened_series_ranks_high():
    series = [asset(f"ep{n}", series="Season 1", series_order=n) for n in (1, 2, 3)]
    others = [asset("a-plain")]
    sent = [SentFacts("ep1", "Season 1", 1, opened=True)]
    answer = rank(series + others, sent=sent)
    assert "ep1" not in ids(answer)
    assert ids(answer)[0] == "ep2"
    assert answer["items"][0]["components"]["novelty"] == 1.0
    assert any("Season 1" in r for r in answer["items"][0]["reasons"])
    # Not opened: no series boost.
    unopened = rank(series + others, sent=[SentFacts("ep1", "Season 1", 1, opened=False)])
    assert ids(unopened)[0] == "a-plain"


def test_voice_prefers_named_authors_and_pitches_are_never_offered_early():
    team = asset("a", author="Marketing Team")
    assert ids(rank([team, asset("b")])) == ["b", "a"]
    pitch = asset(
        "p", stages=("interest", "evaluation"), pitch_flag=True, industries=("manufacturing",)
    )
    interest = replace(DEAL, buying_stage="interest")
    assert "p" not in ids(rank([pitch, asset("b", stages=("interest",))], deal=interest))
    # Also not as a fallback from the stage next door.
    assert "p" not in ids(rank([replace(pitch, stages=("evaluation",))], deal=interest))
    later = rank([pitch, asset("b")])
    assert ids(later) == ["b", "p"]
    assert later["items"][1]["components"]["voice"] == 0.0
    assert (
        is_named_author("Grace Hopper")
        and not is_named_author("Acme Inc")
        and not is_named_author("Grace")
    )


def test_every_item_has_score_components_and_reasons():
    answer = rank([asset("a")])
    (item,) = answer["items"]
    assert 0.0 <= item["score"] <= 1.0
    assert set(item["components"]) == {
        "stage",
        "context",
        "evidence",
        "engagement",
        "freshness",
        "novelty",
        "voice",
    }
    assert item["reasons"] and all(isinstance(r, str) for r in item["reasons"])


def test_one_slot_in_five_goes_to_a_promising_piece_with_little_evidence():
    proven = {
        (f"p{n}", "evaluation"): {
            "verdict": "shortens",
            "hazard_ratio": 2.0,
            "ci_low": 1.8,
            "ci_high": 2.2,
        }
        for n in range(12)
    }
    assets = [asset(f"p{n}") for n in range(12)] + [asset("new")]
    answer = rank(assets, effects=proven, limit=5)
    flags = [i["exploration"] for i in answer["items"]]
    assert flags == [False, False, False, False, True]
    assert ids(answer)[4] == "new"
    assert sum(flags) <= len(flags) // 5
    ten = rank(assets + [asset("new2")], effects=proven, limit=10)
    assert sum(i["exploration"] for i in ten["items"]) == 2
    assert [i["rank"] for i in ten["items"]] == list(range(1, 11))
    # Fewer than five slots: no exploration.
    assert not any(i["exploration"] for i in rank(assets, effects=proven, limit=4)["items"])


def test_ranking_is_deterministic_and_ties_go_by_id():
    assets = [asset(x) for x in ("c", "a", "b")]
    first = rank(assets)
    assert first == rank(list(reversed(assets)))
    assert ids(first) == ["a", "b", "c"]


def test_bounded_search_gives_the_same_top_as_scoring_everything():
    many = [
        asset(
            f"a{n:03d}",
            published_at=NOW - timedelta(days=n * 7),
            shares=n % 7,
            opened_shares=n % 3,
            industries=("manufacturing",) if n % 11 == 0 else (),
            # Some titles share words with the deal's name, some are short: the name's bound.
            title=f"Acme renewal playbook {n}"
            if n % 13 == 0
            else (f"Re {n}" if n % 17 == 0 else f"Notes {n}"),
        )
        for n in range(300)
    ]
    top = rank(many, limit=10)
    full = rank(many, limit=300)
    plain = [i for i in full["items"] if not i["exploration"]]
    assert ids(top)[:8] == [i["asset"]["id"] for i in plain[:8]]


def test_closed_deals_get_an_answer_that_says_so():
    answer = rank([asset("a")], deal=replace(DEAL, closed=True))
    assert answer["closed"] is True and answer["items"] == [] and "closed" in answer["message"]


def test_unmapped_stage_gets_no_items_and_a_reason():
    answer = rank([asset("a")], deal=replace(DEAL, buying_stage=None))
    assert answer["items"] == [] and "not mapped" in answer["message"]


def test_holdout_is_stable_and_close_to_its_fraction():
    deals = [f"deal-{n}" for n in range(4000)]
    chosen = [d for d in deals if in_holdout(d, 0.2)]
    assert chosen == [d for d in deals if in_holdout(d, 0.2)]
    assert 0.17 < len(chosen) / len(deals) < 0.23
    assert not any(in_holdout(d, 0.0) for d in deals) and all(in_holdout(d, 1.0) for d in deals)
    # A bigger fraction keeps everyone already held out.
    assert set(chosen) <= {d for d in deals if in_holdout(d, 0.3)}
    held = recommend_assets(replace(DEAL, id=chosen[0]), [asset("a")], [], {}, NOW, 5, 0.2)
    assert held["holdout"] is True and held["items"] == []
