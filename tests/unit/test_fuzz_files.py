"""Hypothesis over the import files: bad input always gives the documented error and changes nothing.

Random bytes and structured-but-wrong records for every file kind (assets, pipelines, deals,
shares) in both formats; and random link tokens: a 404, never a 500, never a redirect.
"""

from __future__ import annotations

import io
import json
import os
import shutil

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from enablement.db.models import Asset, Deal, LinkView, Pipeline, Share
from enablement.domain.assets import ASSET_FIELDS
from enablement.errors import BadRequest, InvalidInput, PayloadTooLarge
from enablement.services import asset_imports, transfers
from tests.asset_data import asset_record
from tests.crm_data import iso, sample_deal, sample_pipeline

# 40 examples per test in `make test`; `make fuzz` raises FUZZ_EXAMPLES (five times as many here).
FUZZ = settings(
    max_examples=max(40, 5 * int(os.environ.get("FUZZ_EXAMPLES", "8"))),
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)
# The errors an import documents: malformed file, invalid records, too large.
DOCUMENTED = (BadRequest, InvalidInput, PayloadTooLarge)
IMPORTERS = {
    "assets": asset_imports.import_assets,
    "pipelines": transfers.import_pipelines,
    "deals": transfers.import_deals,
    "shares": transfers.import_shares,
}
TABLES = (Asset, Pipeline, Deal, Share)


@pytest.fixture
def database_url(tmp_path, sqlite_template) -> str:
    """SQLite: the file readers and validators are engine-independent."""
    path = tmp_path / "enablement.db"
    shutil.copyfile(sqlite_template, path)
    return f"sqlite:///{path}"


def counts(container) -> tuple[int, ...]:
    """Rows in every table an import writes."""
    with container.sessions() as session:
        return tuple(session.scalar(select(func.count()).select_from(t)) for t in TABLES)


def valid_record(kind: str) -> dict:
    """One record of each kind that imports on its own (into an empty database for assets and
    pipelines; deals and shares need the pipeline, deal and asset the test stores first)."""
    return {
        "assets": asset_record(1),
        "pipelines": sample_pipeline("p9"),
        "deals": sample_deal("d9", pipeline="p1"),
        "shares": {"deal_id": "d1", "asset_id": "asset-1", "shared_at": iso(sample_deal_time())},
    }[kind]


def sample_deal_time():
    """A moment after the sample deal's creation."""
    from tests.crm_data import T0

    return T0


def run_import(container, kind: str, body: bytes, fmt: str):
    """Import and return the result, or the documented error raised; anything else fails the test."""
    try:
        return IMPORTERS[kind](container.sessions, container.settings, io.BytesIO(body), fmt, False)
    except DOCUMENTED as e:
        return e


@pytest.fixture
def stored(container):
    """A pipeline, a deal and an asset, so that deal and share records can be valid."""
    transfers.import_pipelines(
        container.sessions,
        container.settings,
        io.BytesIO(json.dumps(sample_pipeline("p1")).encode()),
        "jsonl",
        False,
    )
    transfers.import_deals(
        container.sessions,
        container.settings,
        io.BytesIO(json.dumps(sample_deal("d1")).encode()),
        "jsonl",
        False,
    )
    asset_imports.import_assets(
        container.sessions,
        container.settings,
        io.BytesIO(json.dumps(asset_record(1)).encode()),
        "jsonl",
        False,
    )
    return container


@pytest.mark.parametrize("kind", sorted(IMPORTERS))
@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_random_bytes_give_a_documented_error_and_change_nothing(stored, kind, fmt):
    before = counts(stored)

    @FUZZ
    @given(body=st.binary(min_size=0, max_size=400))
    def check(body):
        outcome = run_import(stored, kind, body, fmt)
        if not isinstance(outcome, DOCUMENTED):
            # Random bytes that parse at all must still not be a valid record of this kind.
            assert outcome.errors or (outcome.created, outcome.updated) == (0, 0)
        assert counts(stored) == before

    check()


WRONG_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=3),
    st.just("\x00"),
    st.just("x" * 100_000),
    st.just("9999-12-31T00:00:00Z"),
)


@pytest.mark.parametrize("kind", sorted(IMPORTERS))
def test_a_wrong_field_in_one_record_is_reported_on_its_line_and_nothing_is_imported(stored, kind):
    before = counts(stored)
    template = valid_record(kind)
    required = {
        "assets": [spec.name for spec in ASSET_FIELDS if spec.required],
        "pipelines": ["id", "label", "stages"],
        "deals": ["id", "name", "pipeline", "amount", "created_at", "stage_history"],
        "shares": ["deal_id", "asset_id", "shared_at"],
    }[kind]

    @FUZZ
    @given(field=st.sampled_from(required), value=WRONG_VALUES, drop=st.booleans())
    def check(field, value, drop):
        record = dict(template)
        if drop:
            record.pop(field)
        else:
            # Text that is merely odd is valid for a text field; only NUL and oversize are wrong.
            assume(not (isinstance(value, str) and field in ("title", "label", "name")))
            assume(not (value == "9999-12-31T00:00:00Z" and not field.endswith("_at")))
            assume(not (field == "amount" and isinstance(value, (int, float)) and value >= 0))
            assume(not (field == "amount" and value is None))
            record[field] = value
        # A valid first line, the wrong record on line 2: the whole file is refused.
        lines = [json.dumps(valid_record(kind)), json.dumps(record)]
        outcome = run_import(stored, kind, "\n".join(lines).encode(), "jsonl")
        if isinstance(outcome, DOCUMENTED):
            assert outcome.status in (400, 413, 422)
        else:
            assert outcome.errors, (field, value)
            assert 2 in {e.line for e in outcome.errors}
        assert counts(stored) == before

    check()


TOKENS = st.one_of(
    st.text(min_size=1, max_size=80),
    st.text(
        alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.", min_size=1
    ),
    st.binary(min_size=1, max_size=60).map(lambda b: b.hex()),
)


def test_random_link_tokens_are_404_never_a_redirect_or_a_500(client, sessions):
    @FUZZ
    @given(token=TOKENS)
    def check(token):
        path = "/l/" + "".join(c if c not in "/?#%" else "_" for c in token)
        response = client.get(path)
        assert response.status_code == 404, (path, response.status_code)
        assert "Location" not in response.headers
        with sessions() as session:
            assert session.scalar(select(func.count()).select_from(LinkView)) == 0

    check()
