"""Point of view, not product: how much an asset's text is about the seller's own products."""

from __future__ import annotations

import re

# Language of product positioning, pricing and features (the seller's product names are added).
PITCH_TERMS: tuple[str, ...] = (
    "our platform",
    "our product",
    "our solution",
    "our software",
    "our tool",
    "our app",
    "pricing",
    "price",
    "discount",
    "free trial",
    "per seat",
    "per user",
    "subscription",
    "license",
    "licence",
    "upgrade",
    "feature",
    "features",
    "integrates with",
    "book a demo",
    "request a demo",
    "sign up",
    "buy now",
    "roi calculator",
    "onboarding",
    "dashboard",
    "add-on",
)
PITCH_THRESHOLD = 0.35

_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n+")


def _pattern(terms: tuple[str, ...]) -> re.Pattern[str] | None:
    """One case-folded pattern matching any term as a whole word; None when no term is given."""
    escaped = sorted(
        {re.escape(t.strip().lower()) for t in terms if t.strip()}, key=len, reverse=True
    )
    if not escaped:
        return None
    # NOTE: lookarounds, not \b, so names ending in a symbol ("Acme+", "C++") still match.
    return re.compile(r"(?<!\w)(?:" + "|".join(escaped) + r")(?!\w)")


def pitch_score(
    title: str, summary: str | None, body: str | None, product_names: tuple[str, ...] = ()
) -> float:
    """Share (0..1) of the text's sentences that talk about the product; the title counts double.

    A sentence naming one of the seller's products counts fully; one with only generic
    pricing/feature language counts half.
    """
    product = _pattern(product_names)
    generic = _pattern(PITCH_TERMS)
    sentences = [(title or "", 2.0)]
    for text in (summary, body):
        sentences += [(s, 1.0) for s in _SENTENCE.split(text or "") if s.strip()]
    total = weighted = 0.0
    for sentence, weight in sentences:
        lowered = sentence.lower()
        if not lowered.strip():
            continue
        total += weight
        if product is not None and product.search(lowered):
            weighted += weight
        elif generic is not None and generic.search(lowered):
            weighted += weight * 0.5
    return round(weighted / total, 3) if total else 0.0


def is_product_pitch(score: float, threshold: float = PITCH_THRESHOLD) -> bool:
    """True when the pitch score is at or above the threshold."""
    return score >= threshold


def assess_pitch(
    title: str, summary: str | None, body: str | None, product_names: tuple[str, ...] = ()
) -> tuple[float, bool]:
    """The pitch score of a text and whether it is flagged as a product pitch."""
    score = pitch_score(title, summary, body, product_names)
    return score, is_product_pitch(score)
