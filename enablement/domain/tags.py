"""Tags (topics, industries, personas): one display form and one compare form, for assets and deals alike."""

from __future__ import annotations

import re
from collections.abc import Iterable

_SPACES = re.compile(r"\s+")


def normalise_tag(value: str) -> str:
    """A tag's display form: trimmed, inner whitespace collapsed to one space."""
    return _SPACES.sub(" ", value.strip())


def tag_key(value: str) -> str:
    """The form tags are compared and indexed by: the display form, case-folded."""
    return normalise_tag(value).casefold()


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
TAG_PROBLEM = "Values must not contain ';' or control characters."


def tag_problem(tag: str) -> str | None:
    """Why a tag (display form) cannot be stored, or None: `;` joins tags in CSV cells."""
    return TAG_PROBLEM if ";" in tag or _CONTROL.search(tag) else None


def distinct_tags(values: Iterable[str] | None) -> tuple[str, ...]:
    """Display forms of the non-empty tags, each once (case-insensitively; first spelling wins)."""
    seen: set[str] = set()
    out: list[str] = []
    for value in values or ():
        tag = normalise_tag(str(value))
        key = tag.casefold()
        if tag and key not in seen:
            seen.add(key)
            out.append(tag)
    return tuple(out)
