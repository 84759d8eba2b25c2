"""The storable-input rule: what every path refuses before it reaches the database."""

from __future__ import annotations

import json

import pytest

from enablement.domain.assets import internal_host
from enablement.domain.storable import (
    MAX_DEPTH,
    MAX_INTEGER,
    refuse_json_constant,
    storable_text,
    text_problem,
    value_problem,
)


@pytest.mark.parametrize("text", ["plain", "", "émigré 🙂", "tab\tnew\nline", "\u200b"])
def test_ordinary_text_is_storable(text):
    assert text_problem(text) is None


@pytest.mark.parametrize(
    ("text", "word"), [("a\x00b", "NUL"), ("\ud800", "surrogate"), ("ok \udfff", "surrogate")]
)
def test_nul_and_lone_surrogates_are_not(text, word):
    assert word in text_problem(text)


@pytest.mark.parametrize("text", ["a\x00b", "\ud800", "ok \udfff 🙂", "\x00\udbff\x00"])
def test_storable_text_replaces_each_unstorable_character_and_keeps_the_rest(text):
    cleaned = storable_text(text)
    assert text_problem(cleaned) is None
    assert len(cleaned) == len(text)
    assert [c for c in cleaned if c != "\ufffd"] == [c for c in text if text_problem(c) is None]


@pytest.mark.parametrize("text", ["plain", "", "émigré 🙂", "\ufffd"])
def test_storable_text_leaves_storable_text_as_it_is(text):
    assert storable_text(text) == text


def test_a_value_problem_names_the_path_of_the_bad_part():
    data = {"records": [{"title": "fine"}, {"title": "bad\x00"}]}
    assert value_problem(data) == ("records.1.title", text_problem("bad\x00"))
    assert value_problem({"bad\x00key": 1})[0] == "(a key)"


def test_depth_is_counted_without_recursion():
    deep = json.loads("[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1))
    assert "nested deeper" in value_problem(deep)[1]
    shallow = json.loads("[" * MAX_DEPTH + "]" * MAX_DEPTH)
    assert value_problem(shallow) is None


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        (MAX_INTEGER, True),
        (-MAX_INTEGER, True),
        (MAX_INTEGER + 1, False),
        (10**30, False),
        (1.5, True),
        (float("inf"), False),
        (float("nan"), False),
        (True, True),
        (None, True),
    ],
)
def test_numbers_must_fit_a_bigint_and_be_finite(value, ok):
    assert (value_problem({"n": value}) is None) is ok


def test_nan_and_infinity_literals_are_not_json():
    with pytest.raises(ValueError, match="NaN"):
        json.loads('{"x": NaN}', parse_constant=refuse_json_constant)


@pytest.mark.parametrize(
    ("host", "internal"),
    [
        ("LOCALHOST.", True),
        ("a.b.localhost", True),
        ("printer.local", True),
        ("metadata.google.internal", True),
        ("100.64.1.1", True),
        ("224.0.0.1", True),
        ("::", True),
        ("017700000001", True),  # octal 127.0.0.1, as browsers read it
        ("8.8.8.8", False),
        ("2606:4700::1111", False),
        ("insights.example.com", False),
        ("localhost.example.com", False),
        ("face.book", False),
    ],
)
def test_internal_hosts_are_literal_addresses_and_obvious_names(host, internal):
    assert (internal_host(host) is not None) is internal
