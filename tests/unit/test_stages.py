"""Suggesting a buying stage from a CRM stage's label, probability and closed flag."""

import pytest

from enablement.domain.stages import LOW_CONFIDENCE, suggest_buying_stage


@pytest.mark.parametrize(
    ("label", "probability", "expected"),
    [
        ("Appointment scheduled", 0.2, "interest"),
        ("Discovery call", None, "interest"),
        ("Needs analysis", None, "interest"),
        ("Presentation scheduled", 0.6, "evaluation"),
        ("Demo / proof of concept", None, "evaluation"),
        ("Proposal sent", None, "closing"),
        ("Negotiation", None, "closing"),
        ("Contract sent", 0.9, "closing"),
        ("New lead", 0.05, "awareness"),
    ],
)
def test_common_labels_are_suggested_with_confidence(label, probability, expected):
    suggestion = suggest_buying_stage(label, probability)
    assert suggestion.buying_stage == expected
    assert suggestion.confidence >= LOW_CONFIDENCE


def test_closed_stages_map_to_no_buying_stage():
    suggestion = suggest_buying_stage("Closed won", 1.0, is_closed=True)
    assert suggestion.buying_stage is None
    assert suggestion.confidence == 1.0


def test_unknown_label_without_probability_is_unmapped_with_zero_confidence():
    suggestion = suggest_buying_stage("Xyzzy", None)
    assert suggestion.buying_stage is None
    assert suggestion.confidence == 0.0
    assert suggestion.low_confidence


def test_unknown_label_falls_back_to_probability_with_low_confidence():
    suggestion = suggest_buying_stage("Stage 3", 0.5)
    assert suggestion.buying_stage == "evaluation"
    assert suggestion.low_confidence
    assert "probability" in suggestion.reason
