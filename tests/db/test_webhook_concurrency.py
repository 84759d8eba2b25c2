"""Many workers at once: overlapping webhook batches end in exact histories; no writer queues behind a shared row."""

from __future__ import annotations

import json
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from enablement import create_app
from enablement.db.crm import lock_deals, upsert_deals
from enablement.db.models import Deal, LinkView, Share, WebhookEvent
from enablement.services.shares import create_share, follow_link
from enablement.services.webhooks import receive_events
from integrations.hubspot.webhooks import read_batch
from tests.crm_data import T0, deal_record, insert_asset, insert_deals, insert_pipeline, sample_deal
from tests.web.test_webhooks import SECRET, history, post, prop, stage

BROWSER = "Mozilla/5.0 (X11; Linux x86_64) Chrome/120.0"
KNOWN = [str(i) for i in range(201, 221)]
UNKNOWN = [str(i) for i in range(301, 306)]
STAGES = ["disc", "demo", "prop", "won", "lost"]


@pytest.fixture
def hook_app(settings):
    """The app with webhooks on, the sample pipeline and 20 deals (disc at T0, demo 3 days later)."""
    app = create_app(settings, hubspot_client_secret=SECRET)
    sessions = app.extensions["enablement"].sessions
    insert_pipeline(sessions)
    insert_deals(sessions, *(sample_deal(i) for i in KNOWN))
    yield app
    app.extensions["enablement"].engine.dispose()


def planned_events(rng: random.Random) -> tuple[list[dict], dict, dict]:
    """Stage and amount changes for every deal at distinct times; (events, expected stages, expected amounts)."""
    events, stages, amounts, next_id = [], {}, {}, 1
    for deal_id in KNOWN + UNKNOWN:
        minute = 5 * 24 * 60  # after the sample history
        stages[deal_id] = [] if deal_id in UNKNOWN else ["disc", "demo"]
        for _ in range(rng.randrange(2, 7)):
            minute += rng.randrange(1, 600)
            if rng.random() < 0.7:
                choice = rng.choice(
                    [s for s in STAGES if not stages[deal_id] or s != stages[deal_id][-1]]
                )
                events.append(stage(next_id, deal_id, minute, choice))
                stages[deal_id].append(choice)
            else:
                value = str(rng.randrange(100, 100_000))
                events.append(prop(next_id, deal_id, minute, "amount", value))
                amounts[deal_id] = float(value)
            next_id += 1
    return events, stages, amounts


def overlapping_batches(events: list[dict], rng: random.Random) -> list[list[dict]]:
    """Every event in two or three batches of up to 40, each batch shuffled, the batches shuffled."""
    deliveries = [e for e in events for _ in range(rng.randrange(2, 4))]
    rng.shuffle(deliveries)
    batches = [deliveries[i : i + 40] for i in range(0, len(deliveries), 40)]
    rng.shuffle(batches)
    return batches


def test_overlapping_batches_from_many_workers_give_exact_histories(hook_app):
    rng = random.Random(12)
    events, expected_stages, expected_amounts = planned_events(rng)
    batches = overlapping_batches(events, rng)
    sessions = hook_app.extensions["enablement"].sessions

    def deliver(batch):
        return post(hook_app.test_client(), batch).status_code

    with ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(deliver, batches))
    assert codes == [200] * len(batches)
    deliveries = sum(len(b) for b in batches)
    with sessions() as session:
        stored = session.scalar(select(func.count()).select_from(WebhookEvent))
        duplicates = session.scalar(select(func.sum(WebhookEvent.duplicates)))
        statuses = dict(
            session.execute(
                select(WebhookEvent.status, func.count()).group_by(WebhookEvent.status)
            ).all()
        )
        deals = {d.id: d for d in session.scalars(select(Deal))}
    assert stored == len(events)
    assert duplicates == deliveries - len(events)
    assert statuses.get("pending", 0) == 0 and statuses.get("rejected", 0) == 0
    for deal_id, stages in expected_stages.items():
        assert [s for s, _ in history(sessions, deal_id)] == stages, deal_id
        assert deals[deal_id].current_stage_id == stages[-1]
    for deal_id, amount in expected_amounts.items():
        assert deals[deal_id].amount == amount, deal_id


def test_the_same_batch_from_many_workers_at_once_is_applied_once(hook_app):
    batch = [stage(i, "201", 5 * 24 * 60 + i, STAGES[i % 4]) for i in range(1, 31)]
    sessions = hook_app.extensions["enablement"].sessions
    events = read_batch(json.dumps(batch).encode()).events
    with ThreadPoolExecutor(6) as pool:
        results = list(pool.map(lambda _: receive_events(sessions, events), range(6)))
    assert sum(r.stored for r in results) == 30
    assert sum(r.applied + r.ignored for r in results) == 30
    assert sum(r.duplicates for r in results) == 150
    assert len(history(sessions, "201")) == 2 + 30


def test_webhooks_sync_and_share_clicks_do_not_queue_behind_one_row(hook_app, database_url):
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite runs one write transaction at a time by design (BEGIN IMMEDIATE)")
    container = hook_app.extensions["enablement"]
    sessions = container.sessions
    insert_asset(sessions)
    share, _ = create_share(
        sessions, container.settings, "202", "a1", shared_by="rep", actor="owner:rep"
    )
    token = share["link"].rsplit("/", 1)[-1]
    holding, release = threading.Event(), threading.Event()

    def long_webhook_transaction():
        # A worker in the middle of applying events to deal 201, holding its locks.
        with sessions.begin() as session:
            lock_deals(session, ["201"])
            holding.set()
            release.wait(20)

    holder = threading.Thread(target=long_webhook_transaction)
    holder.start()
    assert holding.wait(10)
    try:
        started = time.perf_counter()
        # Meanwhile: a webhook batch for other deals, a sync page, a share and a buyer's click.
        assert post(hook_app.test_client(), [stage(1, "203", 9000, "prop")]).status_code == 200
        with sessions.begin() as session:
            upsert_deals(
                session,
                [deal_record(sample_deal("204", history=((0, "disc"), (9, "won"))))],
                "hubspot",
            )
        create_share(sessions, container.settings, "205", "a1", shared_by="rep", actor="owner:rep")
        follow_link(sessions, token, BROWSER)
        elapsed = time.perf_counter() - started
        assert not release.is_set()
    finally:
        release.set()
        holder.join(20)
    # All four finished while deal 201 stayed locked: none of them waited for that worker.
    assert elapsed < 10
    with sessions() as session:
        assert session.get(Deal, "203").current_stage_id == "prop"
        assert session.get(Deal, "204").current_stage_id == "won"
        assert session.scalar(select(func.count()).select_from(Share)) == 2
        assert session.scalar(select(func.count()).select_from(LinkView)) == 1
    assert T0 + timedelta(days=9) in [t for _, t in history(sessions, "204")]
