"""Cells of CRM exports: times in the vendors' forms by the one timestamp rule, formatted amounts."""

from datetime import UTC, datetime

import pytest

from enablement.domain.amounts import InvalidAmount, parse_export_amount
from enablement.domain.timestamps import (
    InvalidTimestamp,
    parse_export_time,
    slash_date_order,
    time_zone,
)

BERLIN = time_zone("Europe/Berlin")


@pytest.mark.parametrize(
    ("cell", "expected"),
    [
        ("2026-03-04 10:15", datetime(2026, 3, 4, 9, 15, tzinfo=UTC)),
        ("2026-03-04", datetime(2026, 3, 3, 23, 0, tzinfo=UTC)),
        ("3/4/2026", datetime(2026, 3, 3, 23, 0, tzinfo=UTC)),
        ("3/4/2026, 10:15 PM", datetime(2026, 3, 4, 21, 15, tzinfo=UTC)),
        ("12/1/2026 12:05 AM", datetime(2026, 11, 30, 23, 5, tzinfo=UTC)),
        ("2026-07-01 10:00", datetime(2026, 7, 1, 8, 0, tzinfo=UTC)),  # summer time
        ("2026-03-04T10:15:00Z", datetime(2026, 3, 4, 10, 15, tzinfo=UTC)),  # a zone wins
    ],
)
def test_export_times_are_read_in_the_given_zone(cell, expected):
    assert parse_export_time(cell, BERLIN) == expected


@pytest.mark.parametrize(
    ("cell", "says"),
    [
        ("31/02/2026", "'31/02/2026' is not a date (expected YYYY-MM-DD"),
        ("2026-02-31", "is not a date"),
        ("13:00 3/4/2026", "is not a date"),
        ("3/4/2026 13:00 PM", "an AM/PM hour is 1 to 12"),
        ("1969-12-31", "between 1970 and 2100"),
    ],
)
def test_bad_export_times_say_what_was_expected(cell, says):
    with pytest.raises(InvalidTimestamp, match=None) as raised:
        parse_export_time(cell, BERLIN)
    assert says in str(raised.value)


def test_a_zone_less_time_without_a_zone_is_an_error_never_a_guess():
    with pytest.raises(InvalidTimestamp, match="has no time zone"):
        parse_export_time("2026-03-04 10:15", None)


def test_an_unknown_zone_is_named():
    with pytest.raises(InvalidTimestamp, match="unknown time zone 'Mars/Olympus'"):
        time_zone("Mars/Olympus")


@pytest.mark.parametrize(
    ("cell", "expected"),
    [
        ("", (None, None)),
        ("  ", (None, None)),
        ("48000", (48000.0, None)),
        ("48,000.00", (48000.0, None)),
        ("$48,000.00", (48000.0, None)),
        ("USD 48,000.00", (48000.0, "USD")),
        ("48.000,50 €", (48000.5, "EUR")),
        ("£1,250.50", (1250.5, "GBP")),
        ("48\u00a0000,00 EUR", (48000.0, "EUR")),
        ("0", (0.0, None)),
    ],
)
def test_amounts_as_exports_write_them(cell, expected):
    assert parse_export_amount(cell) == expected


@pytest.mark.parametrize(
    "cell", ["-0", "-5", "(5)", "١٢٣", "1_000", "1e308", "12,34,5", "EUR 10 USD", "ten"]
)
def test_what_is_not_an_amount_is_refused_with_its_value(cell):
    with pytest.raises(InvalidAmount) as raised:
        parse_export_amount(cell)
    assert repr(cell) in str(raised.value)


@pytest.mark.parametrize(
    ("cell", "order"),
    [
        ("3/4/2026", "either"),
        ("4/4/2026", None),
        ("6/30/2026", "month_first"),
        ("30/6/2026, 10:15 AM", "day_first"),
        ("2026-03-04", None),
        ("31/31/2026", None),
    ],
)
def test_a_slash_date_says_what_it_can_of_its_files_order(cell, order):
    assert slash_date_order(cell) == order


def test_day_first_reads_a_slash_date_the_other_way_and_leaves_iso_alone():
    assert parse_export_time("4/3/2026", UTC, day_first=True) == datetime(2026, 3, 4, tzinfo=UTC)
    assert parse_export_time("30/6/2026 4:30 PM", UTC, day_first=True) == datetime(
        2026, 6, 30, 16, 30, tzinfo=UTC
    )
    assert parse_export_time("2026-03-04", UTC, day_first=True) == datetime(2026, 3, 4, tzinfo=UTC)


@pytest.mark.parametrize(
    ("cell", "day_first", "says"),
    [
        ("30/6/2026", False, "is not a date read month first (M/D/YYYY): if the export writes"),
        ("6/30/2026", True, "is not a date read day first: the export writes the month first"),
        ("31/2/2026", False, "is not a date (expected"),  # no order makes February 31
        ("2/31/2026", True, "is not a date (expected"),
    ],
)
def test_a_date_that_reads_only_the_other_way_says_so(cell, day_first, says):
    with pytest.raises(InvalidTimestamp) as raised:
        parse_export_time(cell, UTC, day_first=day_first)
    assert says in str(raised.value)
