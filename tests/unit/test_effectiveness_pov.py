"""Point-of-view check: the product-pitch score the reports and ranking use."""

import pytest

from enablement.domain.pov import PITCH_THRESHOLD, is_product_pitch, pitch_score


def test_a_text_about_the_sellers_product_scores_high_and_is_flagged():
    score = pitch_score(
        "Acme Cloud in ten minutes",
        "Acme Cloud connects your data. Acme Cloud is the answer.",
        None,
        ("Acme Cloud",),
    )
    assert score == 1.0
    assert is_product_pitch(score)


def test_a_point_of_view_piece_scores_zero():
    score = pitch_score(
        "Why forecasts fail",
        "Boards distrust forecasts. Here is a framework to judge them.",
        "Most teams measure effort, not results.",
        ("Acme Cloud",),
    )
    assert score == 0.0
    assert not is_product_pitch(score)


def test_generic_pricing_language_counts_half_and_the_title_counts_double():
    # Title (weight 2) names pricing: 2 * 0.5 = 1 of a total weight 2 + 2 sentences = 4.
    score = pitch_score("Pricing explained", "Budgets are tight. Teams are small.", None)
    assert score == pytest.approx(0.25)


def test_product_names_match_whole_words_case_insensitively_even_with_symbols():
    assert pitch_score("Try ACME+ today", None, None, ("Acme+",)) == 1.0
    assert pitch_score("Acmeplus is unrelated", None, None, ("Acme",)) == 0.0


def test_blank_product_terms_match_nothing():
    assert pitch_score("Why forecasts fail", "Boards care.", None, (" ", "")) == 0.0


def test_empty_text_scores_zero():
    assert pitch_score("", None, None, ("Acme",)) == 0.0


def test_the_flag_starts_at_the_threshold():
    assert is_product_pitch(PITCH_THRESHOLD)
    assert not is_product_pitch(PITCH_THRESHOLD - 0.001)
