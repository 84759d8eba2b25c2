"""Write-back of shares as HubSpot notes: exactly one note per share, failures kept and retried."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from enablement.db.models import Asset, Share
from enablement.services.sync import sync_crm
from enablement.services.writeback import note_marker
from integrations.hubspot.client import HubSpotCrm
from integrations.hubspot.ratelimit import RetryPolicy
from tests.integrations.fake_hubspot import TOKEN, FakeHubSpot, served_standard_portal

SHARED_AT = datetime(2024, 5, 2, 15, 30, tzinfo=UTC)


def _one_deal(server: FakeHubSpot) -> None:
    server.add_deal(42, [("appointmentscheduled", datetime(2024, 5, 1, tzinfo=UTC))])


@pytest.fixture
def fake():
    """A fake portal with one deal."""
    with served_standard_portal(_one_deal) as server:
        yield server


@pytest.fixture
def crm(fake) -> HubSpotCrm:
    """A client with instant retries."""
    return HubSpotCrm(
        TOKEN,
        fake.url,
        policy=RetryPolicy(max_attempts=2, backoff_base=0.001),
        sleep=lambda s: None,
    )


@pytest.fixture
def share_id(fake, crm, sessions) -> int:
    """A share of an asset to deal 42, waiting for write-back."""
    sync_crm(sessions, crm, full=True)
    with sessions.begin() as session:
        session.add(
            Asset(
                id="a1",
                title="Buying <committees>",
                url="https://example.com/a1",
                kind="case_study",
                author="Ann",
            )
        )
        share = Share(
            deal_id="42",
            asset_id="a1",
            shared_at=SHARED_AT,
            shared_by="rep@example.com",
            writeback_state="pending",
        )
        session.add(share)
        session.flush()
        return share.id


def load(sessions, share_id: int) -> Share:
    """The share as stored."""
    with sessions() as session:
        return session.get(Share, share_id)


def test_a_pending_share_becomes_one_note_on_its_deal(fake, crm, sessions, share_id):
    summary = sync_crm(sessions, crm, writeback=True)
    assert summary.notes_written == 1
    ((note_id, note),) = fake.notes.items()
    assert note["deals"] == ["42"]
    body = note["properties"]["hs_note_body"]
    assert "Buying &lt;committees&gt;" in body
    assert '<p><a href="https://example.com/a1">https://example.com/a1</a></p>' in body
    assert "rep@example.com" in body and note_marker(share_id) in body
    assert note["properties"]["hs_timestamp"].startswith("2024-05-02T15:30")
    share = load(sessions, share_id)
    assert (share.writeback_state, share.writeback_note_id) == ("done", note_id)
    sync_crm(sessions, crm, writeback=True)
    assert len(fake.notes) == 1


def test_a_failed_write_back_is_kept_and_retried_by_the_next_sync(fake, crm, sessions, share_id):
    fake.fail(503, times=2, path="/crm/objects/notes")
    summary = sync_crm(sessions, crm, writeback=True)
    assert summary.notes_failed == 1 and not fake.notes
    share = load(sessions, share_id)
    assert share.writeback_state == "failed" and "503" in share.writeback_error

    sync_crm(sessions, crm, writeback=True)
    share = load(sessions, share_id)
    assert share.writeback_state == "done" and share.writeback_error is None
    assert list(fake.notes) == [share.writeback_note_id]


def test_a_note_created_before_a_crash_is_found_again_not_duplicated(fake, crm, sessions, share_id):
    # HubSpot created the note, then the process died before recording success.
    existing = crm.create_note("42", f"an earlier attempt\n{note_marker(share_id)}", SHARED_AT)
    with sessions.begin() as session:
        session.get(Share, share_id).writeback_attempts = 1
    sync_crm(sessions, crm, writeback=True)
    assert list(fake.notes) == [existing]
    assert load(sessions, share_id).writeback_note_id == existing


def test_a_share_of_a_deal_hubspot_does_not_know_fails_without_stopping_others(
    fake, crm, sessions, share_id
):
    fake.deals.pop(42)
    summary = sync_crm(sessions, crm, full=True, writeback=True)
    assert summary.notes_failed == 1
    assert load(sessions, share_id).writeback_state == "failed"


def test_a_note_written_before_notes_were_plain_text_is_still_found_by_its_marker(
    fake, crm, sessions, share_id
):
    # Earlier versions sent the note's HTML themselves; the marker reads the same inside it.
    fake.notes["1"] = {
        "properties": {"hs_note_body": f"<p>older</p><p>{note_marker(share_id)}</p>"},
        "deals": ["42"],
    }
    with sessions.begin() as session:
        session.get(Share, share_id).writeback_attempts = 1
    sync_crm(sessions, crm, writeback=True)
    assert list(fake.notes) == ["1"]
    assert load(sessions, share_id).writeback_note_id == "1"
