"""Amounts as CRM exports write them: `$48,000.00`, `USD 48,000.00`, `48.000,50 €`, blank.

NOTE: the one place where a formatted amount becomes a number; the product's own files and
the API carry plain JSON numbers. ASCII digits only, never negative (not even -0), finite
and below MAX_AMOUNT, so a formatted amount obeys the same range as any other.
"""

from __future__ import annotations

import re

MAX_AMOUNT = 1e15
# Symbols whose currency is certain; `$` alone is not (USD, CAD, AUD...), so it gives none.
SYMBOLS = {"€": "EUR", "£": "GBP", "¥": "JPY", "US$": "USD", "$": None}
_SPACES = re.compile(r"[\s\u00a0\u202f]+")
_CODE = re.compile(r"^(?:(?P<pre>[A-Z]{3}) ?)?(?P<num>[^A-Z]*?)(?: ?(?P<post>[A-Z]{3}))?$")
_THOUSANDS_COMMA = re.compile(r"^\d{1,3}(?:,\d{3})+(?:\.\d+)?$")
_THOUSANDS_DOT = re.compile(r"^\d{1,3}(?:\.\d{3})+(?:,\d+)?$")
_PLAIN = re.compile(r"^\d+(?:[.,]\d+)?$")
EXPECTED = "a number like 48000, 48,000.00, $48,000.00 or EUR 48.000,00"


class InvalidAmount(ValueError):
    """A cell that is not an amount (the message says what was expected)."""


def parse_export_amount(text: str) -> tuple[float | None, str | None]:
    """(amount, ISO currency or None) from an export's cell; a blank cell is (None, None)."""
    cell = _SPACES.sub(" ", text).strip()
    if not cell:
        return None, None
    shown = repr(text.strip()[:40])
    currency = None
    for symbol, code in sorted(SYMBOLS.items(), key=lambda kv: -len(kv[0])):
        if cell.startswith(symbol) or cell.endswith(symbol):
            cell = cell[len(symbol) :] if cell.startswith(symbol) else cell[: -len(symbol)]
            currency = code
            break
    match = _CODE.match(cell.strip())
    if match is None or (match["pre"] and match["post"]):
        raise InvalidAmount(f"{shown} is not an amount (expected {EXPECTED})")
    code = match["pre"] or match["post"]
    if code:
        if currency is not None and currency != code:
            raise InvalidAmount(f"{shown} names two currencies")
        currency = code
    number = match["num"].strip().replace(" ", "")
    if number.startswith("-") or number.startswith("(") or number.endswith("-"):
        raise InvalidAmount(f"{shown} is negative; an amount is at least 0")
    if not number.isascii():
        raise InvalidAmount(f"{shown} is not an amount (digits 0-9 only)")
    if _THOUSANDS_COMMA.match(number):
        plain = number.replace(",", "")
    elif _THOUSANDS_DOT.match(number) and (number.count(".") > 1 or "," in number):
        plain = number.replace(".", "").replace(",", ".")
    elif _PLAIN.match(number):
        plain = number.replace(",", ".")
    else:
        raise InvalidAmount(f"{shown} is not an amount (expected {EXPECTED})")
    value = float(plain)
    if not value < MAX_AMOUNT:
        raise InvalidAmount(f"{shown} is too large (at most {MAX_AMOUNT:.0e})")
    return value, currency
