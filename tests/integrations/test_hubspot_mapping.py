"""HubSpot JSON to product records, and the client-side limits (pure: no server, no database)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from integrations.hubspot.mapping import (
    DealProperties,
    deal_from_hubspot,
    parse_time,
    pipeline_from_hubspot,
)
from integrations.hubspot.ratelimit import RateLimiter, RetryPolicy


def deal(history, **props):
    """A HubSpot deal object."""
    return {
        "id": "9",
        "properties": {
            "dealname": "Acme",
            "pipeline": "default",
            "createdate": "2024-01-01T00:00:00Z",
            **props,
        },
        "propertiesWithHistory": {"dealstage": [{"value": v, "timestamp": t} for v, t in history]},
    }


def test_history_is_ordered_oldest_first_with_re_entries_kept_and_repeats_collapsed():
    record = deal_from_hubspot(
        deal(
            [  # newest first, as HubSpot answers
                ("a", "2024-01-04T00:00:00.000Z"),
                ("b", "2024-01-03T00:00:00.000Z"),
                ("b", "2024-01-02T12:00:00.000Z"),
                ("b", "2024-01-02T06:00:00.000Z"),
                ("a", "2024-01-02T00:00:00.000Z"),
                ("a", "2024-01-01T00:00:00.000Z"),
                ("", "2024-01-05T00:00:00.000Z"),
            ]
        ),
        DealProperties(),
    )
    assert [(e.stage_id, e.entered_at.isoformat()) for e in record.stage_history] == [
        ("a", "2024-01-01T00:00:00+00:00"),
        ("b", "2024-01-02T06:00:00+00:00"),
        ("a", "2024-01-04T00:00:00+00:00"),
    ]


def test_a_deal_without_history_is_in_its_current_stage_since_creation():
    record = deal_from_hubspot(deal([], dealstage="qualified"), DealProperties())
    assert [(e.stage_id, e.entered_at) for e in record.stage_history] == [
        ("qualified", datetime(2024, 1, 1, tzinfo=UTC))
    ]


def test_closed_at_is_set_only_for_closed_deals_and_attributes_map_from_configured_properties():
    names = DealProperties(industry="sector", personas="roles", topics="themes")
    open_deal = deal_from_hubspot(
        deal([], closedate="2024-02-01T00:00:00Z", sector="Banking"), names
    )
    closed = deal_from_hubspot(
        deal(
            [],
            closedate="2024-02-01T00:00:00Z",
            hs_is_closed="true",
            amount="12.5",
            deal_currency_code="eur",
            roles="cfo; cio;",
            themes="ai",
            hubspot_owner_id="77",
        ),
        names,
    )
    assert open_deal.closed_at is None and open_deal.industry == "Banking"
    assert closed.closed_at == datetime(2024, 2, 1, tzinfo=UTC)
    assert (closed.amount, closed.currency, closed.personas, closed.topics, closed.owner_id) == (
        12.5,
        "EUR",
        ("cfo", "cio"),
        ("ai",),
        "77",
    )


@pytest.mark.parametrize("bad", ["not-a-number", "", None])
def test_hostile_or_empty_values_become_none_rather_than_errors(bad):
    record = deal_from_hubspot(
        deal([], amount=bad, deal_currency_code="dollars" if bad else bad), DealProperties()
    )
    assert record.amount is None and record.currency is None


def test_oversized_text_is_cut_to_the_stored_length():
    record = deal_from_hubspot(deal([], dealname="x" * 2000), DealProperties())
    assert len(record.name) == 500


def test_timestamps_parse_iso_and_epoch_milliseconds_and_reject_garbage():
    assert parse_time("2024-01-01T10:00:00.123Z") == datetime(
        2024, 1, 1, 10, 0, 0, 123000, tzinfo=UTC
    )
    assert parse_time("1704103200000") == datetime(2024, 1, 1, 10, tzinfo=UTC)
    assert parse_time("2024-13-45") is None and parse_time("") is None


def test_a_closed_stage_with_probability_one_is_won():
    pipeline = pipeline_from_hubspot(
        {
            "id": "p",
            "label": "P",
            "stages": [
                {"id": "w", "label": "Won", "metadata": {"isClosed": "true", "probability": "1.0"}},
                {
                    "id": "l",
                    "label": "Lost",
                    "metadata": {"isClosed": "true", "probability": "0.0"},
                },
                {"id": "o", "label": "Open", "metadata": {"probability": "0.5"}},
            ],
        }
    )
    assert [(s.id, s.is_closed, s.is_won) for s in pipeline.stages] == [
        ("w", True, True),
        ("l", True, False),
        ("o", False, False),
    ]


class Clock:
    """A manual clock whose sleep advances time."""

    def __init__(self):
        self.now = 0.0

    def time(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_the_rate_limiter_never_allows_more_than_n_calls_in_any_window():
    clock = Clock()
    limiter = RateLimiter(3, 10.0, clock=clock.time, sleep=clock.sleep)
    stamps = []
    for _ in range(10):
        limiter.acquire()
        stamps.append(clock.now)
    assert stamps[:3] == [0, 0, 0] and stamps[3] == pytest.approx(10.0)
    for i, start in enumerate(stamps):
        assert sum(start <= s < start + 10.0 for s in stamps[i:]) <= 3


def test_retry_after_is_honoured_within_a_cap_and_backoff_grows_with_jitter():
    policy = RetryPolicy(backoff_base=1.0, backoff_cap=8.0)
    assert policy.retry_after("3") == 3.0
    assert policy.retry_after(None) == policy.retry_after("soon") == 1.0
    assert policy.retry_after("100000") == 60.0
    assert 0.5 <= policy.backoff(1) <= 1.0 and 4.0 <= policy.backoff(4) <= 8.0
    assert policy.backoff(20) <= 8.0
