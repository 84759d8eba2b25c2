"""How the product reads and writes a moment in time: one rule for files, the API, the CLI and sync.

A timestamp is ISO 8601 with a zone (`Z` or an offset); one without a zone is an error,
never guessed. Every accepted moment lies in the range the reports can compute on
(1970-01-01 up to the end of 2100), whichever path it came in by.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime

EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
# Exclusive end: the last moment of the year 2100 is the latest one accepted.
END = datetime(2101, 1, 1, tzinfo=UTC)
RANGE_TEXT = "between 1970 and 2100"

# Date, 'T' or a space, hh:mm[:ss[.fraction]], then a zone: Z or +hh[:mm] / -hh[:mm].
_ISO = re.compile(
    r"^(?P<body>\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(?::\d{2}(?:[.,]\d{1,9})?)?)"
    r"(?P<zone>[Zz]|[+-]\d{2}(?::?\d{2})?)?$"
)
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
EXAMPLE = "2026-01-05T09:00:00Z"


class InvalidTimestamp(ValueError):
    """A value that is not a zoned ISO 8601 timestamp in the allowed range (the message says why)."""


def parse_timestamp(value: object) -> datetime:
    """An aware UTC datetime from ISO 8601 text with a zone, or from an aware datetime.

    Raises InvalidTimestamp (a ValueError) for anything else: no zone, not ISO 8601,
    a non-string, or a moment outside 1970-2100.
    """
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise InvalidTimestamp(
                f"the timestamp has no zone; add Z or an offset (like {EXAMPLE})"
            )
        return in_range(value)
    if not isinstance(value, str):
        raise InvalidTimestamp(f"not an ISO 8601 timestamp with a zone (like {EXAMPLE})")
    text = value.strip()
    match = _ISO.match(text) if len(text) <= 64 else None
    if match is None:
        raise InvalidTimestamp(f"not an ISO 8601 timestamp with a zone (like {EXAMPLE})")
    if match["zone"] is None:
        raise InvalidTimestamp("the timestamp has no zone; add Z or an offset like +01:00")
    zone = "+00:00" if match["zone"] in "Zz" else match["zone"]
    body = match["body"].replace("t", "T").replace(",", ".")
    try:
        parsed = datetime.fromisoformat(body + zone)
    except ValueError:
        raise InvalidTimestamp(f"not a valid date or time: {text[:40]!r}") from None
    return in_range(parsed)


def in_range(moment: datetime) -> datetime:
    """The aware moment in UTC when it lies in 1970-2100; else InvalidTimestamp."""
    try:
        utc = moment.astimezone(UTC)
    except (OverflowError, ValueError):
        raise InvalidTimestamp(f"the timestamp must lie {RANGE_TEXT}") from None
    if not EARLIEST <= utc < END:
        raise InvalidTimestamp(f"the timestamp must lie {RANGE_TEXT}")
    return utc


def parse_date(value: object) -> date:
    """A calendar date from YYYY-MM-DD (or a date), in 1970-2100; else InvalidTimestamp."""
    if isinstance(value, date) and not isinstance(value, datetime):
        parsed = value
    elif isinstance(value, str) and _DATE.match(value.strip()):
        try:
            parsed = date.fromisoformat(value.strip())
        except ValueError:
            raise InvalidTimestamp("not a valid date (YYYY-MM-DD)") from None
    else:
        raise InvalidTimestamp("not a valid date (YYYY-MM-DD)")
    if not EARLIEST.date() <= parsed < END.date():
        raise InvalidTimestamp(f"the date must lie {RANGE_TEXT}")
    return parsed


def format_timestamp(moment: datetime | None, *, whole_seconds: bool = False) -> str | None:
    """UTC ISO 8601 with a trailing Z (what every export writes); None stays None.

    whole_seconds drops fractions for people to read (tables, listings, the HTML page);
    files and the API keep them, because a share's shared_at is part of its identity.
    """
    if moment is None:
        return None
    if moment.tzinfo is None:
        # NOTE: storage keeps naive UTC; a naive value read back from it is UTC.
        moment = moment.replace(tzinfo=UTC)
    if whole_seconds:
        moment = moment.replace(microsecond=0)
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def format_for_people(value: datetime | str | None) -> str | None:
    """A timestamp (or the ISO text of one) as people read it: UTC, whole seconds, Z."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return value
    return format_timestamp(value, whole_seconds=True)


_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def format_readable(value: datetime | str | None) -> str | None:
    """A timestamp as a sentence reads it, in UTC: '14 Nov 2026, 20:08 UTC' (no locale needed)."""
    iso = format_for_people(value)
    if iso is None:
        return None
    try:
        moment = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    except ValueError:
        return iso
    return f"{moment.day} {_MONTHS[moment.month - 1]} {moment.year}, {moment:%H:%M} UTC"
