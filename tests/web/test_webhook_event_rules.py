"""Events that must not be applied as they come: dated beyond the receiver's clock, or naming no known stage."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from enablement import create_app
from enablement.config import Settings
from enablement.db.models import WebhookEvent
from enablement.domain.deal_events import DEFAULT_FUTURE_SKEW
from tests.crm_data import T0, insert_deals, insert_pipeline, sample_deal, sample_pipeline
from tests.web.test_webhooks import SECRET, deal, event, history, post, prop, stage

DAY = 24 * 60


@pytest.fixture
def hook_app(settings):
    """The app with webhooks on, the sample pipeline and deal 101 (disc at T0, demo 3 days later)."""
    app = create_app(settings, hubspot_client_secret=SECRET)
    sessions = app.extensions["enablement"].sessions
    insert_pipeline(sessions)
    insert_deals(sessions, sample_deal("101"))
    yield app
    app.extensions["enablement"].engine.dispose()


@pytest.fixture
def hook(hook_app):
    """A test client of that app."""
    return hook_app.test_client()


@pytest.fixture
def hook_sessions(hook_app):
    """Its session factory."""
    return hook_app.extensions["enablement"].sessions


def minutes_ahead(delta: timedelta) -> float:
    """The `minutes` argument of the event helpers for a moment `delta` from now."""
    return (datetime.now(UTC) + delta - T0).total_seconds() / 60


def inbox(sessions) -> dict[int, tuple[str, str | None]]:
    """{eventId: (status, error)} of every stored event."""
    with sessions() as session:
        rows = session.execute(
            select(WebhookEvent.event_id, WebhookEvent.status, WebhookEvent.error)
        ).all()
    return {int(event_id): (status, error) for event_id, status, error in rows}


# -- finding 8: far-future events are rejected, never applied ---------------------------


def test_a_stage_change_dated_ten_years_ahead_is_rejected_and_a_real_one_still_moves_the_deal(
    hook, hook_sessions
):
    answer = post(hook, [stage(1, 101, minutes_ahead(timedelta(days=3650)), "lost")])
    assert answer.status_code == 200
    assert (answer.get_json()["rejected"], answer.get_json()["applied"]) == (1, 0)
    status, reason = inbox(hook_sessions)[1]
    assert status == "rejected"
    assert "ahead of this server's clock" in reason and "WEBHOOK_FUTURE_SKEW" in reason
    assert [s for s, _ in history(hook_sessions, "101")] == ["disc", "demo"]

    post(hook, [stage(2, 101, minutes_ahead(timedelta(minutes=-1)), "prop")])
    assert deal(hook_sessions, "101").current_stage_id == "prop"


def test_a_deletion_dated_a_year_ahead_is_rejected_so_a_restore_now_is_not_blocked(
    hook, hook_sessions
):
    post(hook, [event(1, 101, minutes_ahead(timedelta(days=365)), "deal.deletion")])
    assert deal(hook_sessions, "101").deleted_at is None
    post(hook, [event(2, 101, minutes_ahead(timedelta(minutes=-2)), "deal.deletion")])
    post(hook, [event(3, 101, minutes_ahead(timedelta(minutes=-1)), "deal.restore")])
    assert deal(hook_sessions, "101").deleted_at is None
    assert [inbox(hook_sessions)[i][0] for i in (1, 2, 3)] == ["rejected", "applied", "applied"]


def test_a_rename_dated_2099_does_not_block_later_renames(hook, hook_sessions):
    in_2099 = (datetime(2099, 6, 1, tzinfo=UTC) - T0).total_seconds() / 60
    post(hook, [prop(1, 101, in_2099, "dealname", "Frozen")])
    post(hook, [prop(2, 101, minutes_ahead(timedelta(minutes=-1)), "dealname", "Renamed")])
    assert deal(hook_sessions, "101").name == "Renamed"


def test_an_event_within_the_allowed_skew_is_applied(hook, hook_sessions):
    answer = post(hook, [stage(1, 101, minutes_ahead(timedelta(minutes=2)), "prop")])
    assert answer.get_json()["applied"] == 1
    assert deal(hook_sessions, "101").current_stage_id == "prop"


def test_the_skew_is_a_setting_in_seconds_with_a_five_minute_default():
    assert Settings.from_env({}).webhook_future_skew == DEFAULT_FUTURE_SKEW == timedelta(minutes=5)
    assert Settings.from_env({"WEBHOOK_FUTURE_SKEW": "60"}).webhook_future_skew == timedelta(
        seconds=60
    )
    with pytest.raises(Exception, match="WEBHOOK_FUTURE_SKEW must be a whole number"):
        Settings.from_env({"WEBHOOK_FUTURE_SKEW": "soon"})


# -- finding 9 (webhooks): a stage no pipeline has is held, then applied after a sync ---


def test_a_stage_no_pipeline_has_is_held_with_a_reason_not_applied(hook, hook_sessions):
    answer = post(hook, [stage(1, 101, 5 * DAY, "trial")])
    assert (answer.get_json()["pending"], answer.get_json()["applied"]) == (1, 0)
    status, reason = inbox(hook_sessions)[1]
    assert status == "pending"
    assert "unknown stage 'trial'" in reason and "sync" in reason
    assert [s for s, _ in history(hook_sessions, "101")] == ["disc", "demo"]
    assert deal(hook_sessions, "101").current_stage_id == "demo"


def test_held_stage_events_are_applied_once_a_sync_brings_the_stage(hook_app, hook, hook_sessions):
    from enablement.cli.sync import apply_held

    post(hook, [stage(1, 101, 5 * DAY, "trial"), stage(2, 101, 6 * DAY, "gone")])
    container = hook_app.extensions["enablement"]
    # Before the stage exists a pass changes nothing: both stay held.
    assert apply_held(container).pending == 2

    pipeline = sample_pipeline()
    pipeline["stages"].append(
        {
            "id": "trial",
            "label": "Trial",
            "display_order": 5,
            "probability": 0.6,
            "is_closed": False,
            "is_won": False,
        }
    )
    insert_pipeline(hook_sessions, pipeline)  # what a sync of the pipelines stores
    result = apply_held(container)
    assert (result.applied, result.pending) == (1, 1)
    assert [s for s, _ in history(hook_sessions, "101")] == ["disc", "demo", "trial"]
    assert deal(hook_sessions, "101").current_stage_id == "trial"
    assert inbox(hook_sessions)[1] == ("applied", None)
    assert inbox(hook_sessions)[2][0] == "pending"
