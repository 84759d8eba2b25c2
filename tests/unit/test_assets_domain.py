"""Asset record rules, derived ids and near-duplicate matching (pure)."""

import random
import time
from datetime import UTC, date, datetime

import pytest

from enablement.domain.assets import (
    MAX_TAGS,
    DuplicateCandidate,
    derived_id,
    find_near_duplicates,
    is_live,
    is_stale,
    normalise_url,
    validate_asset,
)
from enablement.domain.tags import tag_key

VALID = {
    "title": "Why evaluation stalls",
    "url": "https://example.com/why",
    "kind": "article",
    "author": "Ada Lovelace",
}


def errors_of(**changes):
    _, errors = validate_asset({**VALID, **changes})
    return errors


def test_a_minimal_record_gets_defaults():
    values, errors = validate_asset(VALID)
    assert errors == {}
    assert values["status"] == "approved"
    assert values["stages"] == [] and values["topics"] == []
    assert values["summary"] is None and values["published_at"] is None


@pytest.mark.parametrize("field", ["title", "url", "kind", "author"])
def test_each_required_field_missing_is_an_error(field):
    record = {k: v for k, v in VALID.items() if k != field}
    _, errors = validate_asset(record)
    assert field in errors


@pytest.mark.parametrize(
    "url",
    [
        "javascript:alert(1)",
        "data:text/html,<b>x</b>",
        "ftp://example.com/file",
        "/relative/path",
        "example.com/no-scheme",
        "https://",
        "http:///nohost",
        "https://exa mple.com/",
        "https://example.com/\x00",
        "https://example.com:99999/",
        "https://example.com/" + "a" * 2100,
    ],
)
def test_urls_that_are_not_http_with_a_host_are_refused(url):
    assert "url" in errors_of(url=url)


def test_http_and_https_urls_are_accepted_and_trimmed():
    values, errors = validate_asset({**VALID, "url": "  HTTP://Example.com/x?a=1  "})
    assert errors == {}
    assert values["url"] == "HTTP://Example.com/x?a=1"


def test_unknown_fields_are_errors():
    assert errors_of(colour="blue") == {"colour": ["Unknown field."]}


@pytest.mark.parametrize(
    "changes",
    [
        {"title": 42},
        {"title": ""},
        {"title": "x" * 501},
        {"title": "bad\x00nul"},
        {"author": ["Ada"]},
        {"kind": "tweet"},
        {"status": "published"},
        {"topics": "not a list"},
        {"topics": [1, 2]},
        {"topics": ["x" * 101]},
        {"topics": [f"t{i}" for i in range(MAX_TAGS + 1)]},
        {"topics": ["a;b"]},
        {"stages": ["discovery"]},
        {"series_order": "3"},
        {"series_order": True},
        {"series_order": -1},
        {"summary": "s" * 5001},
        {"id": "has space"},
        {"id": "x" * 65},
    ],
)
def test_wrong_types_and_oversized_values_are_errors(changes):
    (field,) = changes
    assert field in errors_of(**changes)


def test_a_timestamp_without_a_zone_is_an_error():
    errors = errors_of(published_at="2025-03-01T10:00:00")
    assert errors["published_at"] == ["The timestamp has no zone; add Z or an offset like +01:00."]


@pytest.mark.parametrize("value", ["0001-01-01T00:00:00+01:00", "yesterday", 1700000000])
def test_out_of_range_and_non_text_timestamps_are_errors(value):
    assert "published_at" in errors_of(published_at=value)


def test_timestamps_with_a_zone_become_utc():
    values, _ = validate_asset({**VALID, "published_at": "2025-03-01T12:00:00+02:00"})
    assert values["published_at"] == datetime(2025, 3, 1, 10, tzinfo=UTC)


@pytest.mark.parametrize("value", ["2025-13-01", "2025-03-01T00:00:00Z", "01/03/2025", 20250301])
def test_review_by_must_be_a_calendar_date(value):
    assert "review_by" in errors_of(review_by=value)


def test_review_by_parses_as_a_date():
    values, _ = validate_asset({**VALID, "review_by": "2026-02-28"})
    assert values["review_by"] == date(2026, 2, 28)


def test_series_order_as_text_is_accepted_only_from_csv():
    values, errors = validate_asset({**VALID, "series_order": "3"}, from_text=True)
    assert errors == {} and values["series_order"] == 3


def test_tags_are_trimmed_deduplicated_case_insensitively_and_keep_their_display_form():
    values, _ = validate_asset(
        {**VALID, "personas": ["  CFO ", "cfo", "Head  of   Sales"], "stages": ["Evaluation"]}
    )
    assert values["personas"] == ["CFO", "Head of Sales"]
    assert values["stages"] == ["evaluation"]
    assert tag_key(" Head  of Sales") == "head of sales"


def test_hostile_text_is_kept_as_data():
    title = "<script>alert('x')</script>'; DROP TABLE assets; --"
    values, errors = validate_asset({**VALID, "title": title})
    assert errors == {} and values["title"] == title


def test_partial_validation_checks_only_the_fields_given():
    values, errors = validate_asset({"summary": "new"}, partial=True)
    assert errors == {} and values == {"summary": "new"}
    _, errors = validate_asset({"title": None, "status": None}, partial=True)
    assert set(errors) == {"title", "status"}


def test_url_normalisation_ignores_case_tracking_fragment_and_trailing_slash():
    a = normalise_url("HTTPS://www.Example.com/Path/?utm_source=x&b=2&a=1#top")
    b = normalise_url("http://example.com/Path?a=1&b=2&gclid=zzz")
    assert a == b
    assert normalise_url("https://example.com/Path") != normalise_url("https://example.com/path")
    assert normalise_url("https://example.com/p?id=1") != normalise_url(
        "https://example.com/p?id=2"
    )


def test_derived_ids_are_deterministic_and_follow_the_normalised_url():
    assert derived_id("https://example.com/a/") == derived_id("https://EXAMPLE.com/a#x")
    assert derived_id("https://example.com/a") != derived_id("https://example.com/b")
    assert len(derived_id("https://example.com/a")) <= 64


def candidate(i, title, url=None):
    return DuplicateCandidate(f"a{i}", title, url or f"https://example.com/{i}")


def test_same_url_is_a_near_duplicate():
    existing = [candidate(1, "Completely different", "https://example.com/x")]
    new = [candidate(2, "Another title", "https://www.example.com/x/?utm_medium=mail")]
    (warning,) = find_near_duplicates(new, existing)
    assert warning == {
        "kind": "near_duplicate",
        "asset_id": "a2",
        "of": "a1",
        "reason": "same_url",
        "score": 1.0,
    }


def test_a_nearly_identical_title_is_a_near_duplicate_and_a_different_one_is_not():
    existing = [
        candidate(1, "The CFO's guide to evaluating vendors"),
        candidate(3, "Closing deals in a downturn"),
    ]
    new = [candidate(2, "the CFOs guide to evaluating  vendors!"), candidate(4, "Podcast: pricing")]
    warnings = find_near_duplicates(new, existing)
    assert [(w["asset_id"], w["of"], w["reason"]) for w in warnings] == [
        ("a2", "a1", "similar_title")
    ]
    assert warnings[0]["score"] >= 0.9


def test_word_order_does_not_hide_a_duplicate_title():
    warnings = find_near_duplicates(
        [candidate(2, "vendors evaluating guide CFO")],
        [candidate(1, "CFO guide evaluating vendors")],
    )
    assert len(warnings) == 1


def test_new_assets_are_compared_with_each_other_once():
    new = [candidate(1, "Buying committees explained"), candidate(2, "Buying committees explained")]
    warnings = find_near_duplicates(new, [])
    assert [(w["asset_id"], w["of"]) for w in warnings] == [("a2", "a1")]


def test_an_asset_is_never_its_own_duplicate():
    assert find_near_duplicates([candidate(1, "Same")], []) == []


def test_matching_thousands_of_new_titles_against_ten_thousand_is_fast():
    rng = random.Random(7)
    words = [f"w{i}" for i in range(3000)]

    def title():
        return " ".join(rng.choice(words) for _ in range(6))

    existing = [candidate(i, title()) for i in range(10_000)]
    new = [candidate(10_000 + i, title()) for i in range(2_000)]
    new[5] = candidate(10_005, existing[42].title)
    started = time.perf_counter()
    warnings = find_near_duplicates(new, existing)
    elapsed = time.perf_counter() - started
    assert ("a10005", "a42") in {(w["asset_id"], w["of"]) for w in warnings}
    assert elapsed < 30


def test_stale_means_approved_and_past_review_by():
    today = date(2026, 6, 1)
    assert is_stale("approved", date(2026, 5, 31), today)
    assert not is_stale("approved", date(2026, 6, 1), today)
    assert not is_stale("draft", date(2020, 1, 1), today)
    assert is_live("approved", None, today)
    assert not is_live("approved", date(2026, 5, 31), today)
    assert not is_live("retired", None, today)
    assert not is_live("draft", None, today)


def test_titles_that_differ_only_in_their_numbers_are_not_duplicates():
    existing = [candidate(1, "State of B2B buying report 2025"), candidate(2, "Season 2, part 1")]
    new = [candidate(3, "State of B2B buying report 2026"), candidate(4, "Season 2, part 2")]
    assert find_near_duplicates(new, existing) == []


def test_many_copies_of_one_title_give_one_warning_each_against_the_first():
    new = [candidate(i, "One title for all") for i in range(2_000)]
    warnings = find_near_duplicates(new, [candidate(9_999, "One title for all")])
    assert len(warnings) == 2_000
    assert {w["of"] for w in warnings} == {"a9999"}


def test_many_copies_of_one_url_give_one_warning_each_against_the_first():
    new = [
        candidate(i, f"title {chr(97 + i % 26)}{i // 26}", "https://x.example/") for i in range(500)
    ]
    warnings = [w for w in find_near_duplicates(new, []) if w["reason"] == "same_url"]
    assert len(warnings) == 499 and {w["of"] for w in warnings} == {"a0"}


def test_alike_titles_give_at_most_the_best_few_warnings_per_asset():
    from collections import Counter

    from enablement.domain.assets import SIMILAR_TITLE_MATCHES

    letters = [a + b for a in "abcdefghij" for b in "abcdefghij"]
    new = [
        candidate(i, f"The buyer's guide to committees edition {s}") for i, s in enumerate(letters)
    ]
    new.append(candidate(500, "The buyers guide to committee edition aa"))  # closest to a0
    warnings = find_near_duplicates(new, [])
    per_asset = Counter(w["asset_id"] for w in warnings)
    assert max(per_asset.values()) == SIMILAR_TITLE_MATCHES
    best = [w for w in warnings if w["asset_id"] == "a500"]
    assert best[0]["of"] == "a0" and best[0]["score"] == max(w["score"] for w in best)
