"""What input the database can store: no NUL byte, no lone UTF-16 surrogate, bounded depth and numbers.

One rule for every path (JSON bodies, query strings, path ids, headers, JSONL and CSV files):
PostgreSQL refuses NUL in text and UTF-8 cannot encode a lone surrogate, so either would
surface as a 500 deep in a write; here they become a clear error at the edge.
"""

from __future__ import annotations

import math

MAX_DEPTH = 32
# The widest integer column is BIGINT; anything beyond cannot be stored or compared in SQL.
MAX_INTEGER = 2**63 - 1


def refuse_json_constant(name: str):
    """json.loads' parse_constant: NaN, Infinity and -Infinity are not JSON, whatever Python allows."""
    raise ValueError(f"{name} is not a JSON number")


def text_problem(text: str) -> str | None:
    """Why the database cannot store this text, or None when it can."""
    if "\x00" in text:
        return "contains a NUL byte (\\u0000), which cannot be stored"
    if text.isascii():
        return None
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        return (
            f"contains a lone UTF-16 surrogate at character {e.start}, which is not valid Unicode"
        )
    return None


def storable_text(text: str) -> str:
    """The text with what cannot be stored (NUL, lone surrogates) replaced by U+FFFD; storable text unchanged."""
    if text_problem(text) is None:
        return text
    text = text.replace("\x00", "\ufffd")
    return "".join("\ufffd" if "\ud800" <= c <= "\udfff" else c for c in text)


def value_problem(value: object) -> tuple[str, str] | None:
    """(path, reason) of the first part of a parsed JSON value that cannot be stored, else None.

    Walks without recursion, so a hostile depth costs a loop, never a RecursionError.
    """
    stack: list[tuple[object, str, int]] = [(value, "", 0)]
    while stack:
        item, path, depth = stack.pop()
        reason = _scalar_problem(item)
        if reason is None and isinstance(item, (dict, list)):
            if depth >= MAX_DEPTH:
                reason = f"nested deeper than {MAX_DEPTH} levels"
            elif isinstance(item, dict):
                for key, child in item.items():
                    key_reason = text_problem(key) if isinstance(key, str) else None
                    if key_reason:
                        return _join(path, "(a key)"), key_reason
                    stack.append((child, _join(path, str(key)[:60]), depth + 1))
            else:
                for index, child in enumerate(item):
                    stack.append((child, _join(path, str(index)), depth + 1))
        if reason:
            return path or "(the value)", reason
    return None


def _scalar_problem(item: object) -> str | None:
    """Why one scalar cannot be stored (None for containers and storable scalars)."""
    if isinstance(item, str):
        return text_problem(item)
    if isinstance(item, bool):
        return None
    if isinstance(item, int) and not -MAX_INTEGER <= item <= MAX_INTEGER:
        return "a number out of range"
    if isinstance(item, float) and not math.isfinite(item):
        return "not a finite number"
    return None


def _join(path: str, part: str) -> str:
    """A dotted path to a nested field (records.3.title)."""
    return f"{path}.{part}" if path else part
