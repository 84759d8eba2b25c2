"""The one timestamp rule: zoned ISO 8601 in 1970-2100, whatever the path."""

from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from enablement.domain.timestamps import (
    InvalidTimestamp,
    format_timestamp,
    in_range,
    parse_date,
    parse_timestamp,
)


@pytest.mark.parametrize(
    "text",
    [
        "2026-01-05T09:00:00Z",
        "2026-01-05T09:00:00+00:00",
        "2026-01-05 09:00:00+00:00",
        "2026-01-05T10:00:00+01:00",
        "2026-01-05T10:00:00+0100",
        "2026-01-05T09:00Z",
        "2026-01-05t09:00:00z",
        "  2026-01-05T09:00:00Z ",
        "2026-01-05T09:00:00.000Z",
    ],
)
def test_every_zoned_iso_form_reads_as_the_same_utc_moment(text):
    assert parse_timestamp(text) == datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def test_fractions_are_kept_to_the_microsecond():
    assert parse_timestamp("2026-01-05T09:00:00.1234567Z").microsecond == 123456
    assert parse_timestamp("2026-01-05T09:00:00,5Z").microsecond == 500000


@pytest.mark.parametrize("text", ["2026-01-05T09:00:00", "2026-01-05 09:00"])
def test_a_timestamp_without_a_zone_is_an_error_that_says_so(text):
    with pytest.raises(InvalidTimestamp, match="no zone"):
        parse_timestamp(text)


@pytest.mark.parametrize(
    "value",
    [
        "",
        "yesterday",
        "2026-01-05",
        "2026-13-05T09:00:00Z",
        "2026-02-30T09:00:00Z",
        "2026-01-05T25:00:00Z",
        "20260105T090000Z",
        "2026-W01-1T09:00Z",
        "2026-01-05T09:00:00Z\x00",
        "2026-01-05T09:00:00\ud800Z",
        "2026-01-05T09:00:00+25:00",
        "9" * 10_000,
        1767603600,
        1767603600.0,
        None,
        True,
        ["2026-01-05T09:00:00Z"],
        {"at": "2026-01-05T09:00:00Z"},
    ],
)
def test_anything_else_is_an_invalid_timestamp(value):
    with pytest.raises(InvalidTimestamp):
        parse_timestamp(value)


@pytest.mark.parametrize(
    "text",
    [
        "1969-12-31T23:59:59Z",
        "2101-01-01T00:00:00Z",
        "9999-12-31T23:59:59Z",
        "9999-12-31T23:59:59-23:59",
        "0001-01-01T00:00:00+01:00",
    ],
)
def test_moments_outside_1970_to_2100_are_refused(text):
    with pytest.raises(InvalidTimestamp, match="between 1970 and 2100"):
        parse_timestamp(text)


def test_the_range_ends_are_inclusive_of_1970_and_of_all_of_2100():
    assert parse_timestamp("1970-01-01T00:00:00Z") == datetime(1970, 1, 1, tzinfo=UTC)
    assert parse_timestamp("2100-12-31T23:59:59Z").year == 2100
    # An offset can move a 2100 wall-clock time into 2101 UTC: the UTC moment decides.
    with pytest.raises(InvalidTimestamp):
        parse_timestamp("2100-12-31T23:30:00-01:00")


def test_aware_datetimes_pass_the_same_rule_and_naive_ones_do_not():
    berlin = timezone(timedelta(hours=1))
    assert parse_timestamp(datetime(2026, 1, 5, 10, tzinfo=berlin)) == datetime(
        2026, 1, 5, 9, tzinfo=UTC
    )
    with pytest.raises(InvalidTimestamp, match="no zone"):
        parse_timestamp(datetime(2026, 1, 5, 9))
    with pytest.raises(InvalidTimestamp):
        in_range(datetime(2200, 1, 1, tzinfo=UTC))


def test_dates_are_yyyy_mm_dd_in_the_same_range():
    assert parse_date("2026-03-01") == date(2026, 3, 1)
    assert parse_date(date(2026, 3, 1)) == date(2026, 3, 1)
    for bad in ("2026-3-1", "01/03/2026", "2026-02-30", "1969-12-31", "2101-01-01", 20260301):
        with pytest.raises(InvalidTimestamp):
            parse_date(bad)


def test_exports_write_utc_with_a_z_and_read_back_unchanged():
    moment = datetime(2026, 1, 5, 10, 30, tzinfo=timezone(timedelta(hours=1)))
    text = format_timestamp(moment)
    assert text == "2026-01-05T09:30:00Z"
    assert parse_timestamp(text) == moment
    assert format_timestamp(datetime(2026, 1, 5, 9, 30)) == "2026-01-05T09:30:00Z"
    assert format_timestamp(None) is None
