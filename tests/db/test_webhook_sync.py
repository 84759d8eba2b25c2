"""A sync page and webhook events meet on one deal: the CRM's copy wins, except for what happened after it was read."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import timedelta

from enablement.db.crm import upsert_deals
from enablement.db.models import Deal
from enablement.services.webhooks import receive_events
from integrations.hubspot.webhooks import read_batch
from tests.crm_data import T0, deal_record, insert_deals, insert_pipeline, sample_deal
from tests.web.test_webhooks import history, stage

DAY = 24 * 60


def deliver(sessions, *events) -> None:
    """Store and apply events as the webhook route does."""
    receive_events(sessions, read_batch(json.dumps(list(events)).encode()).events)


def test_a_sync_keeps_stage_entries_that_happened_after_its_copy_and_drops_older_strays(sessions):
    insert_pipeline(sessions)
    insert_deals(sessions, sample_deal("101"))
    # A stray entry (not in HubSpot's history) before the copy, and a real move after it.
    deliver(sessions, stage(1, 101, 4 * DAY, "lost"), stage(2, 101, 6 * DAY, "prop"))
    copy = replace(deal_record(sample_deal("101")), source_modified_at=T0 + timedelta(days=5))
    with sessions.begin() as session:
        counts = upsert_deals(session, [copy], "hubspot")
    assert counts.stage_changes_removed == 1
    assert history(sessions, "101") == [
        ("disc", T0),
        ("demo", T0 + timedelta(days=3)),
        ("prop", T0 + timedelta(days=6)),
    ]
    with sessions() as session:
        assert session.get(Deal, "101").current_stage_id == "prop"


def test_a_file_import_without_a_modification_time_is_still_the_whole_truth(sessions):
    insert_pipeline(sessions)
    insert_deals(sessions, sample_deal("101"))
    deliver(sessions, stage(1, 101, 6 * DAY, "prop"))
    insert_deals(sessions, sample_deal("101"))
    assert [s for s, _ in history(sessions, "101")] == ["disc", "demo"]


def test_a_sync_page_and_a_webhook_creating_the_same_deal_at_once_both_commit(sessions):
    import threading

    from enablement.db.crm import create_deal_if_absent

    insert_pipeline(sessions)
    errors: list[BaseException] = []
    # The webhook's transaction creates deal 101 and has not committed when the sync's page,
    # which did not find 101 stored, writes it too.
    webhook = sessions()
    webhook.begin()
    create_deal_if_absent(webhook, {"id": "101", "pipeline_id": "p1", "created_at": T0, "name": ""})
    webhook.flush()

    def sync_page() -> None:
        try:
            with sessions.begin() as session:
                upsert_deals(session, [deal_record(sample_deal("101", name="From CRM"))], "hubspot")
        except BaseException as e:  # noqa: BLE001 - reported by the assertion below
            errors.append(e)

    thread = threading.Thread(target=sync_page)
    thread.start()
    thread.join(timeout=1)  # the sync waits for the webhook's row (PostgreSQL) or lock (SQLite)
    webhook.commit()
    webhook.close()
    thread.join(timeout=30)
    assert not errors, errors
    with sessions() as session:
        assert session.get(Deal, "101").name == "From CRM"
    assert [s for s, _ in history(sessions, "101")] == ["disc", "demo"]
