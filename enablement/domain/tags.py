"""Tags (topics, industries, personas): one display form and one compare form, for assets and deals alike.

The compare form is also what titles are compared by (near-duplicates): text that looks the
same must compare the same. So both forms are NFKC (full-width "ＣＦＯ" is "CFO", a decomposed
"é" the composed one), without format characters (zero-width spaces, bidirectional isolates,
soft hyphens: invisible, so never meant), and the compare form is case-folded once, with
words that mix scripts ("СFO": a Cyrillic С before Latin letters) read as the Latin letters
they imitate.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

_SPACES = re.compile(r"\s+")
_WORD = re.compile(r"\w+")

# NOTE: the Cyrillic and Greek letters that look like Latin ones (lower case: the compare form
# is case-folded first). A small table of the common look-alikes, not Unicode's full list of
# confusables; it is applied only inside a word that mixes scripts, so real Cyrillic or Greek
# words keep their letters.
_LOOK_ALIKES = str.maketrans(
    {
        # Cyrillic
        "а": "a", "в": "b", "с": "c", "ԁ": "d", "е": "e", "һ": "h", "і": "i", "ј": "j",
        "к": "k", "м": "m", "н": "h", "о": "o", "р": "p", "ԛ": "q", "ѕ": "s", "т": "t",
        "у": "y", "ԝ": "w", "х": "x", "ү": "y", "ӏ": "l",
        # Greek
        "α": "a", "β": "b", "ε": "e", "η": "n", "ι": "i", "κ": "k", "μ": "u", "ν": "v",
        "ο": "o", "ρ": "p", "τ": "t", "υ": "u", "χ": "x", "ζ": "z",
    }
)  # fmt: skip


def normalise_tag(value: str) -> str:
    """A tag's display form: NFKC, format characters removed, trimmed, inner whitespace one space."""
    return _SPACES.sub(" ", visible_text(value).strip())


def visible_text(value: str) -> str:
    """Text as it reads: NFKC, without format characters (zero-width, bidi controls, soft hyphen)."""
    text = unicodedata.normalize("NFKC", value)
    if text.isascii():
        return text
    return "".join(c for c in text if unicodedata.category(c) != "Cf")


def compare_text(value: str) -> str:
    """The form text is compared by: visible, case-folded once, mixed-script words read as Latin."""
    text = unicodedata.normalize("NFKC", normalise_tag(value).casefold())
    if text.isascii():
        return text
    return _WORD.sub(_unmix, text)


def tag_key(value: str) -> str:
    """The form tags are compared and indexed by (compare_text)."""
    return compare_text(value)


def mixes_scripts(value: str) -> bool:
    """True when a word of the text mixes letters of several scripts (a look-alike: "СFO")."""
    text = visible_text(value)
    return not text.isascii() and any(_mixed(word) for word in _WORD.findall(text))


_LOOK_ALIKE_SCRIPTS = frozenset({"LATIN", "CYRILLIC", "GREEK"})


def _mixed(word: str) -> bool:
    """True for a word of Latin letters with Cyrillic or Greek ones among them.

    Only these scripts: their letters imitate each other. (Japanese mixes kana and kanji in
    one word as a matter of course.)
    """
    scripts = {
        unicodedata.name(c, "UNKNOWN").split(" ", 1)[0] for c in word if c.isalpha()
    } & _LOOK_ALIKE_SCRIPTS
    return "LATIN" in scripts and len(scripts) > 1


def _unmix(match: re.Match) -> str:
    word = match.group(0)
    return word.translate(_LOOK_ALIKES) if _mixed(word) else word


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
TAG_PROBLEM = "Values must not contain ';' or control characters."


def tag_problem(tag: str) -> str | None:
    """Why a tag (display form) cannot be stored, or None: `;` joins tags in CSV cells."""
    return TAG_PROBLEM if ";" in tag or _CONTROL.search(tag) else None


def distinct_tags(values: Iterable[str] | None) -> tuple[str, ...]:
    """Display forms of the non-empty tags, each once (by tag_key; the first spelling wins)."""
    seen: set[str] = set()
    out: list[str] = []
    for value in values or ():
        tag = normalise_tag(str(value))
        key = tag_key(tag)
        if tag and key not in seen:
            seen.add(key)
            out.append(tag)
    return tuple(out)
