"""Nudges on entering a buying stage: one per (deal, stage entry) by every path, reasons for none, retries."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from enablement.db.models import Nudge, RecommendationImpression, Share
from enablement.db.types import utcnow
from enablement.domain.links import link_token, link_url
from enablement.services import transfers
from enablement.services.nudges import after_stage_entries, deliver_pending_nudges, nudge_stats
from enablement.services.sync import sync_crm
from integrations.memory import InMemoryCrm
from tests.crm_data import (
    deal_record,
    insert_asset,
    insert_deals,
    insert_pipeline,
    iso,
    pipeline_record,
    sample_deal,
)
from tests.web.test_recommendations import mapped_pipeline

NOW = utcnow().replace(microsecond=0)


def fresh_deal(deal_id: str, *stages: tuple[timedelta, str], **overrides) -> dict:
    """A deals-file record whose stages were entered these long ago (the last one is current)."""
    history = stages or ((timedelta(days=10), "disc"), (timedelta(minutes=30), "demo"))
    return sample_deal(
        deal_id,
        history=(),
        created_at=iso(NOW - timedelta(days=30)),
        stage_history=[{"stage": s, "entered_at": iso(NOW - ago)} for ago, s in history],
        **overrides,
    )


@pytest.fixture
def world(sessions):
    """The mapped pipeline (disc interest, demo evaluation, prop closing) and one evaluation piece."""
    insert_pipeline(sessions, mapped_pipeline())
    insert_asset(sessions, "fit", title="Fit check", stages=["evaluation"])
    return sessions


@pytest.fixture
def crm():
    """An in-memory CRM on the real clock."""
    return InMemoryCrm(now=NOW)


def on(settings, **overrides):
    """The settings with task nudges on (and any overrides)."""
    return settings.with_overrides(**{"nudges": "task", **overrides})


def put(crm: InMemoryCrm, sessions, *deals: dict) -> None:
    """The deals in the CRM and in the database."""
    for deal in deals:
        crm.put_deal(deal_record(deal))
    insert_deals(sessions, *deals)


def nudges(sessions) -> list[Nudge]:
    with sessions() as session:
        return list(session.scalars(select(Nudge).order_by(Nudge.deal_id, Nudge.id)))


def test_entering_a_mapped_stage_makes_one_task_for_the_owner_with_the_trackable_links(
    world, settings, crm
):
    settings = on(settings)
    put(crm, world, fresh_deal("d1"))
    result = after_stage_entries(world, settings, crm, ["d1"], NOW)
    assert (len(result.prepared), result.delivered, result.failed) == (1, 1, 0)
    (task,) = crm.tasks
    assert (task.deal_id, task.owner_id) == ("d1", "o1")
    assert "Fit check" in task.subject and "evaluation" in task.subject
    (nudge,) = nudges(world)
    assert (nudge.state, nudge.stage_id, nudge.buying_stage) == ("delivered", "demo", "evaluation")
    assert (nudge.channel, nudge.crm_object_id, nudge.attempts) == ("task", task.id, 1)
    with world() as session:
        share = session.scalars(select(Share)).one()
        impression = session.get(RecommendationImpression, nudge.impression_id)
    assert (share.channel, share.actor, share.impression_id) == ("nudge", "nudge", impression.id)
    assert (impression.source, impression.holdout) == ("nudge", False)
    link = link_url(settings.public_base_url, link_token(settings.secret_key, share.id))
    assert link in task.body.splitlines()
    # Seen again (a retried webhook, the next sync): nothing more.
    again = after_stage_entries(world, settings, crm, ["d1", "d1"], NOW)
    assert (again.prepared, again.skipped, len(crm.tasks), len(nudges(world))) == ([], {}, 1, 1)


def test_a_note_is_written_instead_when_the_customer_prefers_notes(world, settings, crm):
    put(crm, world, fresh_deal("d1"))
    after_stage_entries(world, on(settings, nudges="note"), crm, ["d1"], NOW)
    assert crm.tasks == []
    (note,) = crm.notes
    assert "Fit check" in note.body and note.deal_id == "d1"


def test_nudges_are_off_by_default(world, settings, crm):
    put(crm, world, fresh_deal("d1"))
    assert settings.nudges == "off"
    after_stage_entries(world, settings, crm, ["d1"], NOW)
    assert (crm.tasks, nudges(world)) == ([], [])


def test_entries_without_a_nudge_record_why(world, settings, crm):
    insert_pipeline(
        world,
        {
            **mapped_pipeline(),
            "id": "p2",
            "stages": [
                {"id": "x-open", "label": "Open", "is_closed": False, "buying_stage": None},
                {"id": "e1", "label": "Demo", "is_closed": False, "buying_stage": "evaluation"},
                {"id": "e2", "label": "Trial", "is_closed": False, "buying_stage": "evaluation"},
            ],
        },
    )
    put(
        crm,
        world,
        fresh_deal("old", (timedelta(days=5), "disc"), (timedelta(days=2), "demo")),
        fresh_deal(
            "won",
            (timedelta(days=5), "demo"),
            (timedelta(minutes=5), "won"),
            closed_at=iso(NOW - timedelta(minutes=5)),
        ),
        fresh_deal("unmapped", (timedelta(minutes=5), "x-open"), pipeline="p2"),
        fresh_deal("same", (timedelta(hours=5), "e1"), (timedelta(minutes=5), "e2"), pipeline="p2"),
    )
    result = after_stage_entries(world, on(settings), crm, ["old", "won", "unmapped", "same"], NOW)
    reasons = {n.deal_id: (n.state, n.reason) for n in nudges(world)}
    assert reasons == {
        "old": ("skipped", "too_old"),
        "won": ("skipped", "closed"),
        "unmapped": ("skipped", "unmapped"),
        "same": ("skipped", "same_buying_stage"),
    }
    assert result.skipped == {"too_old": 1, "closed": 1, "unmapped": 1, "same_buying_stage": 1}
    assert crm.tasks == []
    assert nudge_stats(world)["skipped"]["too_old"] == 1


def test_a_stage_with_no_live_piece_gets_no_nudge(sessions, settings, crm):
    insert_pipeline(sessions, mapped_pipeline())
    insert_asset(sessions, "gone", stages=["evaluation"], status="retired")
    put(crm, sessions, fresh_deal("d1"))
    after_stage_entries(sessions, on(settings), crm, ["d1"], NOW)
    assert [(n.state, n.reason) for n in nudges(sessions)] == [("skipped", "no_live_piece")]
    assert crm.tasks == []


def test_the_window_is_a_setting(world, settings, crm):
    put(crm, world, fresh_deal("d1", (timedelta(days=5), "disc"), (timedelta(days=2), "demo")))
    after_stage_entries(world, on(settings, nudge_window=timedelta(days=3)), crm, ["d1"], NOW)
    assert [n.state for n in nudges(world)] == ["delivered"]


def test_a_holdout_deal_gets_no_nudge_but_its_impression_is_logged_for_the_comparison(
    world, settings, crm
):
    put(crm, world, fresh_deal("d1"))
    after_stage_entries(world, on(settings, recommendation_holdout=1.0), crm, ["d1"], NOW)
    (nudge,) = nudges(world)
    assert (nudge.state, nudge.reason) == ("skipped", "holdout")
    with world() as session:
        impression = session.get(RecommendationImpression, nudge.impression_id)
    assert (impression.source, impression.holdout) == ("nudge", True)
    assert crm.tasks == []


def test_a_failed_delivery_is_retried_with_backoff_and_ends_visible_when_attempts_run_out(
    world, settings, crm
):
    settings = on(settings, nudge_max_attempts=3)
    put(crm, world, fresh_deal("d1"), fresh_deal("d2"))
    crm.fail(method="create_task", times=1)
    first = after_stage_entries(world, settings, crm, ["d1"], NOW)
    assert (first.delivered, first.failed) == (0, 1)
    (nudge,) = nudges(world)
    assert (nudge.state, nudge.attempts) == ("failed", 1)
    assert "injected" in nudge.last_error
    assert nudge.next_attempt_at == NOW + timedelta(minutes=1)
    # Not due yet: nothing happens; due: delivered once.
    assert deliver_pending_nudges(world, settings, crm, NOW + timedelta(seconds=30)).delivered == 0
    assert deliver_pending_nudges(world, settings, crm, NOW + timedelta(minutes=1)).delivered == 1
    assert len(crm.tasks) == 1
    assert nudges(world)[0].state == "delivered"
    # A CRM that keeps failing: retried until the attempts are used up, then dead and listed.
    crm.fail(method="create_task")
    after_stage_entries(world, settings, crm, ["d2"], NOW)
    for minutes in (1, 3):
        deliver_pending_nudges(world, settings, crm, NOW + timedelta(minutes=minutes))
    dead = nudges(world)[1]
    assert (dead.state, dead.attempts, dead.next_attempt_at) == ("dead", 3, None)
    stats = nudge_stats(world)
    assert stats["states"]["dead"] == 1
    assert [f["deal_id"] for f in stats["failing"]] == ["d2"]
    assert deliver_pending_nudges(world, settings, crm, NOW + timedelta(days=1)).failed == 0


def test_a_file_import_of_a_live_deal_nudges_once_and_old_deals_not_at_all(world, settings, crm):
    settings = on(settings)
    deals = [
        fresh_deal("d1"),
        fresh_deal("d2", (timedelta(days=40), "disc"), (timedelta(days=20), "demo")),
    ]
    for deal in deals:
        crm.put_deal(deal_record(deal))
    body = "\n".join(json.dumps(d) for d in deals).encode()
    for _ in range(2):  # re-importing the same file changes nothing
        transfers.import_deals(world, settings, io.BytesIO(body), "jsonl", False, crm=crm)
    assert [(n.deal_id, n.state, n.reason) for n in nudges(world)] == [
        ("d1", "delivered", None),
        ("d2", "skipped", "too_old"),
    ]
    assert [t.deal_id for t in crm.tasks] == ["d1"]


def test_a_sync_nudges_a_deal_that_moved_once_however_often_it_runs(world, settings, crm):
    settings = on(settings)
    crm.add_pipeline(pipeline_record(mapped_pipeline()))
    crm.put_deal(deal_record(fresh_deal("d1", (timedelta(days=10), "disc"))))
    sync_crm(world, crm, settings=settings, now=crm.clock)
    assert [n.reason for n in nudges(world)] == ["too_old"]  # a backfill: entered 10 days ago
    crm.advance(timedelta(minutes=1))
    crm.move_deal("d1", "demo")
    crm.advance(timedelta(minutes=1))
    for _ in range(2):
        sync_crm(world, crm, settings=settings, now=crm.clock)
        crm.advance(timedelta(minutes=1))
    sync_crm(world, crm, full=True, settings=settings, now=crm.clock)
    assert [(n.stage_id, n.state) for n in nudges(world)] == [
        ("disc", "skipped"),
        ("demo", "delivered"),
    ]
    assert len(crm.tasks) == 1


def test_two_workers_on_the_same_entries_make_one_nudge_and_one_task(world, settings, crm):
    import threading

    settings = on(settings)
    put(crm, world, *[fresh_deal(f"d{i}") for i in range(8)])
    ids = [f"d{i}" for i in range(8)]
    errors = []

    def worker(order):
        try:
            after_stage_entries(world, settings, crm, order, NOW)
        except Exception as e:  # noqa: BLE001 - reported by the assertion below
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(o,)) for o in (ids, ids[::-1])]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    with world() as session:
        assert session.scalar(select(func.count()).select_from(Nudge)) == 8
    assert sorted(t.deal_id for t in crm.tasks) == sorted(ids)


def test_nudge_times_are_stored_in_utc(world, settings, crm):
    put(crm, world, fresh_deal("d1"))
    after_stage_entries(world, on(settings), crm, ["d1"], NOW)
    (nudge,) = nudges(world)
    assert nudge.entered_at == NOW - timedelta(minutes=30)
    assert nudge.entered_at.tzinfo == UTC
    assert isinstance(nudge.delivered_at, datetime)


class _Receiver:
    """A local HTTP endpoint that records the nudges posted to it and answers `status`."""

    def __init__(self):
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.received: list[tuple[dict, bytes]] = []
        self.status = 200
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                outer.received.append((dict(self.headers), body))
                self.send_response(outer.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/nudges"

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    """A local webhook receiver, stopped after the test."""
    server = _Receiver()
    yield server
    server.close()


def test_the_outgoing_webhook_is_signed_with_an_hmac_of_the_body(world, settings, crm, receiver):
    import hashlib
    import hmac

    settings = on(
        settings, nudges="webhook", nudge_webhook_url=receiver.url, nudge_webhook_secret="s3cret"
    )
    put(crm, world, fresh_deal("d1"))
    after_stage_entries(world, settings, crm, ["d1"], NOW)
    ((headers, body),) = receiver.received
    expected = "sha256=" + hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(headers["X-Enablement-Signature"], expected)
    payload = json.loads(body)
    assert payload["deal"] == {"id": "d1", "name": "Acme d1", "owner_id": "o1"}
    assert payload["buying_stage"] == "evaluation"
    (item,) = payload["items"]
    assert item["title"] == "Fit check" and item["link"].startswith("http://testserver/l/")
    assert headers["X-Enablement-Nudge-Id"] == str(payload["nudge_id"])
    assert crm.tasks == [] and nudges(world)[0].state == "delivered"


def test_a_task_made_before_the_webhook_failed_is_not_made_again_on_the_retry(
    world, settings, crm, receiver
):
    settings = on(settings, nudge_webhook_url=receiver.url, nudge_webhook_secret="s3cret")
    put(crm, world, fresh_deal("d1"))
    receiver.status = 502
    after_stage_entries(world, settings, crm, ["d1"], NOW)
    (nudge,) = nudges(world)
    assert (nudge.state, nudge.last_error) == ("failed", "the nudge webhook answered 502")
    assert nudge.crm_object_id == crm.tasks[0].id
    receiver.status = 204
    deliver_pending_nudges(world, settings, crm, NOW + timedelta(minutes=1))
    assert len(crm.tasks) == 1 and len(receiver.received) == 2
    (nudge,) = nudges(world)
    assert nudge.state == "delivered" and nudge.webhook_sent_at is not None


def test_nudges_need_a_valid_configuration():
    from enablement.config import Settings
    from enablement.errors import InvalidInput

    for env, message in [
        ({"NUDGES": "sms"}, "NUDGES must be one of off, task, note, webhook"),
        ({"NUDGES": "webhook"}, "NUDGES=webhook needs NUDGE_WEBHOOK_URL"),
        ({"NUDGE_WEBHOOK_URL": "https://hooks.example/x"}, "needs NUDGE_WEBHOOK_SECRET"),
        ({"NUDGE_WINDOW_HOURS": "-1"}, "NUDGE_WINDOW_HOURS must be a whole number"),
        ({"NUDGE_WEBHOOK_URL": "ftp://x", "NUDGE_WEBHOOK_SECRET": "s"}, "NUDGE_WEBHOOK_URL"),
    ]:
        with pytest.raises(InvalidInput, match=message):
            Settings.from_env({"SECRET_KEY": "k" * 20, "DATABASE_URL": "sqlite://", **env})


def test_a_preparation_whose_worker_vanished_is_taken_over_after_its_lease(world, settings, crm):
    from enablement.services.nudges import LEASE

    settings = on(settings)
    put(crm, world, fresh_deal("d1"))
    with world.begin() as session:  # a worker inserted the nudge, then died before ranking
        session.add(
            Nudge(
                deal_id="d1",
                pipeline_id="p1",
                stage_id="demo",
                entered_at=NOW - timedelta(minutes=30),
                buying_stage="evaluation",
                state="preparing",
                items=[],
                attempts=0,
                next_attempt_at=NOW + LEASE,
                created_at=NOW,
            )
        )
    assert after_stage_entries(world, settings, crm, ["d1"], NOW).prepared == []
    assert deliver_pending_nudges(world, settings, crm, NOW + LEASE / 2).delivered == 0
    assert deliver_pending_nudges(world, settings, crm, NOW + LEASE).delivered == 1
    assert [(n.state, n.stage_id) for n in nudges(world)] == [("delivered", "demo")]
    assert len(crm.tasks) == 1
