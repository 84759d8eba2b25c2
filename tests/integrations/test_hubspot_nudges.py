"""Nudge tasks and notes created in HubSpot over real HTTP (a fake HubSpot on loopback), from a sync."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from enablement.db.models import CrmStage, Nudge
from enablement.domain.stages import BUYING_STAGES
from enablement.services.nudges import after_stage_entries
from enablement.services.sync import sync_crm
from integrations.hubspot.client import HubSpotCrm
from integrations.hubspot.ratelimit import RetryPolicy
from tests.crm_data import insert_asset
from tests.db.test_nudges import NOW
from tests.integrations.fake_hubspot import TOKEN, FakeHubSpot, served_standard_portal


def _moved_deal(server: FakeHubSpot) -> None:
    server.add_deal(
        42,
        [
            ("appointmentscheduled", NOW - timedelta(days=10)),
            ("qualifiedtobuy", NOW - timedelta(minutes=20)),
        ],
        hubspot_owner_id="101",
    )


@pytest.fixture
def fake():
    """A fake portal with one deal that just moved."""
    with served_standard_portal(_moved_deal) as server:
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


def _map_every_open_stage(sessions) -> None:
    """The first stage interest, the other open ones evaluation (confirmed)."""
    with sessions.begin() as session:
        for stage in session.scalars(select(CrmStage)):
            if not stage.is_closed:
                first = stage.id in ("appointmentscheduled", "r-open")
                stage.buying_stage = "interest" if first else "evaluation"
                stage.mapping_source = "confirmed"


def test_a_synced_stage_change_becomes_one_hubspot_task_for_the_owner_on_the_deal(
    sessions, settings, crm, fake
):
    settings = settings.with_overrides(nudges="task")
    insert_asset(sessions, "fit", title="Fit check", stages=list(BUYING_STAGES))
    sync_crm(sessions, crm, full=True)  # pipelines first (nudges off), then map the stages
    _map_every_open_stage(sessions)
    with sessions.begin() as session:
        session.execute(Nudge.__table__.delete())
    sync_crm(sessions, crm, full=True, settings=settings)
    sync_crm(sessions, crm, settings=settings)
    (task,) = fake.tasks.values()
    props = task["properties"]
    assert task["deals"] == ["42"]
    assert props["hubspot_owner_id"] == "101"
    assert props["hs_task_status"] == "NOT_STARTED"
    assert "Fit check" in props["hs_task_subject"]
    assert 'href="http://testserver/l/' in props["hs_task_body"]
    assert [r for r in fake.requests("/crm/objects/tasks") if r[1] == "POST"] != []
    with sessions() as session:
        nudge = session.scalars(select(Nudge)).one()
    assert (nudge.state, nudge.crm_object_id) == ("delivered", next(iter(fake.tasks)))


def test_a_note_goes_to_hubspot_when_notes_are_chosen(sessions, settings, crm, fake):
    settings = settings.with_overrides(nudges="note")
    insert_asset(sessions, "fit", title="Fit check", stages=list(BUYING_STAGES))
    sync_crm(sessions, crm, full=True)
    _map_every_open_stage(sessions)
    after_stage_entries(sessions, settings, crm, ["42"])
    assert fake.tasks == {}
    (note,) = fake.notes.values()
    assert note["deals"] == ["42"] and "Fit check" in note["properties"]["hs_note_body"]


@pytest.mark.parametrize("channel", ["task", "note"])
def test_a_retry_after_a_crash_finds_the_hubspot_task_instead_of_making_a_second(
    sessions, settings, crm, fake, channel
):
    from sqlalchemy import update

    from enablement.services.nudges import DELIVERING, deliver_pending_nudges

    settings = settings.with_overrides(nudges=channel)
    insert_asset(sessions, "fit", title="Fit check", stages=list(BUYING_STAGES))
    sync_crm(sessions, crm, full=True)
    _map_every_open_stage(sessions)
    after_stage_entries(sessions, settings, crm, ["42"], NOW)
    made = fake.tasks if channel == "task" else fake.notes
    (made_id,) = made
    # The worker made it in HubSpot and died before recording it: its lease runs out.
    with sessions.begin() as session:
        session.execute(
            update(Nudge).values(state=DELIVERING, crm_object_id=None, next_attempt_at=NOW)
        )
    assert deliver_pending_nudges(sessions, settings, crm, NOW).delivered == 1
    assert list(made) == [made_id], "found by its marker, not made again"
    assert fake.requests(f"/crm/objects/{channel}s/search") != []
    with sessions() as session:
        assert session.scalars(select(Nudge.crm_object_id)).one() == made_id
