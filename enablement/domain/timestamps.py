"""How the product reads and writes a moment in time: one rule for files, the API, the CLI and sync.

A timestamp is ISO 8601 with a zone (`Z` or an offset); one without a zone is an error,
never guessed. Every accepted moment lies in the range the reports can compute on
(1970-01-01 up to the end of 2100), whichever path it came in by.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

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


# The forms CRM exports write times in, zone-less: HubSpot's `2026-03-04 10:15` (and ISO
# dates), Salesforce's US-locale `3/4/2026` and `3/4/2026, 10:15 AM` (day first, `4/3/2026`,
# in locales that write it so: the importer is told, never guesses).
_EXPORT_ISO = re.compile(
    r"^(?P<y>\d{4})-(?P<m>\d{1,2})-(?P<d>\d{1,2})"
    r"(?:[Tt ](?P<H>\d{1,2}):(?P<M>\d{2})(?::(?P<S>\d{2})(?:[.,](?P<f>\d{1,6})\d*)?)?)?$"
)
_EXPORT_US = re.compile(
    r"^(?P<m>\d{1,2})/(?P<d>\d{1,2})/(?P<y>\d{4})"
    r"(?:,? +(?P<H>\d{1,2}):(?P<M>\d{2})(?::(?P<S>\d{2}))?(?: *(?P<p>[AaPp][Mm]))?)?$"
)
EXPORT_FORMATS_TEXT = (
    "YYYY-MM-DD, YYYY-MM-DD HH:MM[:SS], M/D/YYYY or M/D/YYYY h:mm AM (D/M/YYYY with day "
    "first), or ISO 8601 with a zone"
)


def time_zone(name: str) -> tzinfo:
    """The IANA time zone of that name (`Europe/Berlin`, `UTC`); else InvalidTimestamp."""
    try:
        return UTC if name.strip().upper() == "UTC" else ZoneInfo(name.strip())
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidTimestamp(
            f"unknown time zone {name[:64]!r}; use an IANA name like Europe/Berlin or UTC"
        ) from None


def slash_date_order(value: str) -> str | None:
    """What a slash date (3/4/2026) says of its file's order: "month_first" when its second
    number cannot be a month, "day_first" when its first cannot, "either" when both read
    (3/4/2026 is March 4 or April 3); None for other cells and dates like 4/4/2026."""
    match = _EXPORT_US.match(value.strip())
    if match is None:
        return None
    first, second = int(match["m"]), int(match["d"])
    if first == second:
        return None
    if first > 12 >= second:
        return "day_first"
    if second > 12 >= first:
        return "month_first"
    return "either" if first <= 12 and second <= 12 else None


def _is_date(year: str, month: str, day: str) -> bool:
    try:
        datetime(int(year), int(month), int(day))
    except ValueError:
        return False
    return True


def parse_export_time(value: str, zone: tzinfo | None, *, day_first: bool = False) -> datetime:
    """A moment from a CRM export's cell: zoned ISO 8601 by the one rule, or a zone-less
    date or time in one of EXPORT_FORMATS_TEXT read in `zone` (a date is its midnight).
    Slash dates are month first (Salesforce's US locale) unless day_first (4/3/2026 is
    March 4 then).

    Raises InvalidTimestamp saying what was expected; a zone-less time without a zone is
    an error, never guessed; a slash date that only reads in the other order says so.
    """
    text = value.strip()
    if _ISO.match(text) and _ISO.match(text)["zone"] is not None:
        return parse_timestamp(text)
    match = _EXPORT_ISO.match(text) or _EXPORT_US.match(text)
    if match is None:
        raise InvalidTimestamp(f"{text[:40]!r} is not a date (expected {EXPORT_FORMATS_TEXT})")
    parts = match.groupdict()
    if match.re is _EXPORT_US:
        order = slash_date_order(text)
        if order == ("month_first" if day_first else "day_first") and _is_date(
            parts["y"],
            parts["m"] if day_first else parts["d"],
            parts["d"] if day_first else parts["m"],
        ):
            raise InvalidTimestamp(
                f"{text[:40]!r} is not a date read "
                + (
                    "day first: the export writes the month first (leave out day first)"
                    if day_first
                    else "month first (M/D/YYYY): if the export writes the day first, "
                    "import it with day first (--day-first)"
                )
            )
        if day_first:
            parts["m"], parts["d"] = parts["d"], parts["m"]
    hour = int(parts["H"] or 0)
    if parts.get("p"):
        if not 1 <= hour <= 12:
            raise InvalidTimestamp(f"{text[:40]!r} is not a valid time (an AM/PM hour is 1 to 12)")
        hour = hour % 12 + (12 if parts["p"].lower() == "pm" else 0)
    try:
        naive = datetime(
            int(parts["y"]),
            int(parts["m"]),
            int(parts["d"]),
            hour,
            int(parts["M"] or 0),
            int(parts["S"] or 0),
            int((parts.get("f") or "0").ljust(6, "0")),
        )
    except ValueError:
        raise InvalidTimestamp(
            f"{text[:40]!r} is not a date (expected {EXPORT_FORMATS_TEXT})"
        ) from None
    if zone is None:
        raise InvalidTimestamp(
            f"{text[:40]!r} has no time zone; give the zone the export was written in "
            "(--timezone Europe/Berlin, or UTC)"
        )
    return in_range(naive.replace(tzinfo=zone))


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
