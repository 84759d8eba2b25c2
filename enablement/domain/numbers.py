"""The one rule for numbers people and systems send: deal amounts and numeric ids.

Every path reads them here (webhooks, the HubSpot sync, deal files, the API, the command
line). Python's own int() and float() are too generous for input: they read "1_000",
Arabic-Indic and full-width digits, "1e308", "-0", "nan" and " 12 ", none of which a CRM or
a spreadsheet means as an amount or an id. Here a number is plain ASCII: digits, at most one
decimal point, no sign, no exponent, no separator, within a stated range.
"""

from __future__ import annotations

import math
import re

# Amounts: no CRM deal is worth a quadrillion; past this, a value is a typo or an attack (and
# a float stops holding cents exactly from about 2**53).
MAX_AMOUNT = 10**15
# CRM ids (HubSpot object, portal, subscription and event ids) are positive 64-bit integers.
MAX_CRM_ID = 2**63 - 1
# INTEGER primary keys (tokens, shares): an id past this names no row, and PostgreSQL rejects it.
MAX_ROW_ID = 2**31 - 1

_AMOUNT_TEXT = re.compile(r"[0-9]{1,16}(?:\.[0-9]{1,10})?", re.ASCII)
_ID_TEXT = re.compile(r"[0-9]{1,19}", re.ASCII)


def read_amount(value: object) -> float | None:
    """A deal amount as a float of at least 0 and at most MAX_AMOUNT; None for no amount.

    Accepts a JSON number or text of plain ASCII digits with an optional decimal part
    ("1250", "1250.50"). Raises ValueError with the reason for anything else: a sign
    (also "-0"), an exponent, "1_000", non-ASCII digits, NaN or infinity, an out-of-range value.
    """
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise ValueError("an amount must be a number, not true or false")
    if isinstance(value, int):
        number = float(value) if 0 <= value <= MAX_AMOUNT else math.inf
    elif isinstance(value, float):
        if math.isnan(value) or math.copysign(1.0, value) < 0 and value == 0:
            raise ValueError("an amount must be a plain number of at least 0 (not -0 or NaN)")
        number = value
    elif isinstance(value, str):
        text = value.strip()
        if not _AMOUNT_TEXT.fullmatch(text):
            raise ValueError(
                "an amount must be plain digits with an optional decimal point (1250 or 1250.50): "
                "no sign, exponent, separators or non-ASCII digits"
            )
        number = float(text)
    else:
        raise ValueError("an amount must be a number")
    if not 0 <= number <= MAX_AMOUNT:
        raise ValueError(f"an amount must be between 0 and {MAX_AMOUNT:,}")
    return number + 0.0  # NOTE: + 0.0 turns a stray -0.0 into 0.0


def amount_problem(value: object) -> str | None:
    """Why this is not an amount (read_amount's reason), or None when it is one."""
    try:
        read_amount(value)
    except ValueError as e:
        return str(e)
    return None


def read_id(value: object, maximum: int = MAX_CRM_ID) -> int:
    """A numeric id from 1 to `maximum` (a JSON integer or plain ASCII digits, no leading zero).

    Raises ValueError with the reason: "007" and "7" would otherwise be two deals, "-0" deal 0.
    """
    if isinstance(value, bool):
        raise ValueError("must be a numeric id, not true or false")
    if isinstance(value, int):
        number = value
    elif isinstance(value, str) and _ID_TEXT.fullmatch(text := value.strip()):
        if text.startswith("0"):
            raise ValueError("must be a numeric id without a leading 0")
        number = int(text)
    else:
        raise ValueError(_id_range(maximum))
    if not 1 <= number <= maximum:
        raise ValueError(_id_range(maximum))
    return number


def id_text(value: object, maximum: int = MAX_CRM_ID) -> str:
    """A numeric id (read_id's rule) as the canonical text the product stores ("42")."""
    return str(read_id(value, maximum))


def _id_range(maximum: int) -> str:
    return f"must be a numeric id: a whole number from 1 to {maximum} in plain digits"
