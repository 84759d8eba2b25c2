"""Buying stages and the fuzzy suggestion of a buying stage for a CRM stage label."""

from __future__ import annotations

import re
from dataclasses import dataclass

from rapidfuzz import fuzz, process, utils

BUYING_STAGES: tuple[str, ...] = ("awareness", "interest", "evaluation", "closing")

# Synonyms a CRM stage label is matched against, per buying stage.
VOCABULARY: dict[str, tuple[str, ...]] = {
    "awareness": (
        "awareness",
        "lead",
        "new lead",
        "prospect",
        "prospecting",
        "subscriber",
        "marketing qualified lead",
        "mql",
        "inbound",
        "outreach",
        "cold",
        "research",
        "problem identified",
        "target account",
        "open",
    ),
    "interest": (
        "interest",
        "appointment scheduled",
        "meeting booked",
        "first meeting",
        "discovery",
        "discovery call",
        "needs analysis",
        "qualification",
        "qualified",
        "qualified to buy",
        "sales qualified lead",
        "sql",
        "intro call",
        "exploration",
        "connected",
        "engaged",
        "initial contact",
    ),
    "evaluation": (
        "evaluation",
        "demo",
        "demo scheduled",
        "presentation scheduled",
        "proof of concept",
        "poc",
        "pilot",
        "trial",
        "technical validation",
        "solution design",
        "business case",
        "shortlist",
        "rfp",
        "vendor comparison",
        "decision maker bought in",
        "solution review",
        "value proposition",
    ),
    "closing": (
        "closing",
        "proposal",
        "proposal sent",
        "quote sent",
        "contract sent",
        "negotiation",
        "contract review",
        "legal review",
        "procurement",
        "verbal commit",
        "commit",
        "awaiting signature",
        "decision",
        "final approval",
    ),
}

# Below this the suggestion is reported as low confidence and needs a person.
LOW_CONFIDENCE = 0.75

_SYNONYMS = [(syn, stage) for stage, syns in VOCABULARY.items() for syn in syns]
_CHOICES = [syn for syn, _ in _SYNONYMS]


@dataclass(frozen=True)
class Suggestion:
    """A suggested buying stage (None: maps to no buying stage) with confidence 0..1 and why."""

    buying_stage: str | None
    confidence: float
    reason: str

    @property
    def low_confidence(self) -> bool:
        """True when a person should look at this suggestion."""
        return self.confidence < LOW_CONFIDENCE


REVIEW_PROBLEMS: tuple[str, ...] = ("unmapped", "low_confidence")


def review_problem(
    source: str | None,
    buying_stage: str | None,
    confidence: float | None,
    is_closed: bool,
    archived: bool = False,
) -> str | None:
    """Why a person should review a stage's mapping: 'unmapped', 'low_confidence' or None.

    Confirmed mappings (also a confirmed "none"), closed stages and archived stages are
    never flagged; a suggestion without a buying stage is unmapped; a suggestion below
    LOW_CONFIDENCE (or without a confidence) is low_confidence.
    """
    if source == "confirmed" or is_closed or archived:
        return None
    if buying_stage is None:
        return "unmapped"
    if confidence is None or confidence < LOW_CONFIDENCE:
        return "low_confidence"
    return None


def _normalise(label: str) -> str:
    return re.sub(r"[^a-z0-9 ]+", " ", utils.default_process(label or "")).strip()


def suggest_buying_stage(
    label: str, probability: float | None = None, is_closed: bool = False
) -> Suggestion:
    """Suggest a buying stage for a CRM stage from its label, win probability and closed flag.

    Closed stages (won or lost) map to no buying stage with full confidence. Otherwise
    the label is fuzzy-matched against the synonym vocabulary; the win probability,
    when known, breaks near-ties and lowers confidence when it disagrees with the label.
    """
    if is_closed:
        return Suggestion(None, 1.0, "closed stage: not a buying stage")
    text = _normalise(label)
    if not text:
        return _from_probability(probability, "empty label")
    scored: dict[str, float] = {}
    matched: dict[str, str] = {}
    for synonym, score, index in process.extract(
        text, _CHOICES, scorer=fuzz.WRatio, limit=len(_CHOICES), processor=None
    ):
        stage = _SYNONYMS[index][1]
        if score > scored.get(stage, -1):
            scored[stage], matched[stage] = score, synonym
    ranked = sorted(scored.items(), key=lambda kv: kv[1], reverse=True)
    (best, best_score), (_, second_score) = ranked[0], ranked[1]
    prob_stage = _stage_for_probability(probability)
    if prob_stage and best_score - second_score < 5 and scored.get(prob_stage, 0) >= best_score - 5:
        best, best_score = prob_stage, scored[prob_stage]
    confidence = best_score / 100.0
    # NOTE: a clear label beats the probability, but a close second halves the certainty.
    margin = min(1.0, (best_score - second_score) / 20.0 + 0.5)
    confidence *= margin
    reason = f"label {label!r} resembles {matched[best]!r}"
    if prob_stage and prob_stage != best:
        confidence *= 0.8
        reason += f"; probability {probability:g} suggests {prob_stage}"
    if best_score < 60 or (best_score < 75 and prob_stage and prob_stage != best):
        return _from_probability(probability, f"no synonym close to {label!r}")
    return Suggestion(best, round(min(confidence, 0.99), 3), reason)


def _stage_for_probability(probability: float | None) -> str | None:
    """Buying stage implied by a win probability (0..1), or None when unknown."""
    if probability is None:
        return None
    if probability < 0.15:
        return "awareness"
    if probability < 0.35:
        return "interest"
    if probability < 0.7:
        return "evaluation"
    return "closing"


def _from_probability(probability: float | None, why: str) -> Suggestion:
    stage = _stage_for_probability(probability)
    if stage is None:
        return Suggestion(None, 0.0, f"{why}; no probability to go on")
    return Suggestion(stage, 0.4, f"{why}; guessed from probability {probability:g}")
