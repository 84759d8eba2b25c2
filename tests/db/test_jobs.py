"""The jobs table and the job queue: one job per key, retries with backoff, failures visible."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from enablement import create_app
from enablement.db import jobs as table
from enablement.db.models import Job
from enablement.db.types import utcnow
from enablement.queue import JobQueue, Kind
from enablement.services import jobs as job_service


class Recorder:
    """Job kinds for tests: each run is recorded; `fail` runs raise until `fail` is spent."""

    def __init__(self, fail: int = 0):
        self.runs: list[dict] = []
        self.fail = fail
        self.lock = threading.Lock()

    def __call__(self, container, payload: dict) -> None:
        with self.lock:
            self.runs.append(payload)
            if self.fail:
                self.fail -= 1
                raise RuntimeError(f"boom {len(self.runs)}")


def queue_of(container, recorder: Recorder, max_attempts: int = 3) -> JobQueue:
    return JobQueue(container, {"probe": Kind(recorder, max_attempts=max_attempts)})


def job(sessions, key: str) -> Job:
    with sessions() as session:
        return session.scalars(select(Job).where(Job.key == key)).one()


def test_a_key_queued_or_running_is_one_job_and_an_ended_one_runs_again(container, sessions):
    recorder = Recorder()
    queue = queue_of(container, recorder)
    lease = container.settings.jobs_lease
    with sessions.begin() as session:
        first = table.put(session, "probe:a", "probe", {"n": 1}, 3, lease)
        assert first is not None
        # asked again while queued: nothing new, no message to send
        assert table.put(session, "probe:a", "probe", {"n": 2}, 3, lease) is None
    queue.run(first)
    assert recorder.runs == [{"n": 1}]
    assert job(sessions, "probe:a").state == table.SUCCEEDED
    # a message delivered twice: the second finds the job done and runs nothing
    queue.run(first)
    assert recorder.runs == [{"n": 1}]
    # asked again after it ended: the same row, queued again, with the new payload
    assert queue.enqueue("probe", "probe:a", {"n": 3}) == first
    assert recorder.runs == [{"n": 1}, {"n": 3}]
    with sessions() as session:
        assert session.scalars(select(Job)).all()[0].attempts == 1


def test_a_failing_job_is_retried_with_growing_backoff_then_ends_failed_and_visible(
    container, sessions, client, auth
):
    recorder = Recorder(fail=10)
    queue = queue_of(container, recorder, max_attempts=3)
    job_id = queue.enqueue("probe", "probe:b", {})
    row = job(sessions, "probe:b")
    assert (row.state, row.attempts, row.last_error) == (table.QUEUED, 1, "RuntimeError: boom 1")
    first_wait = row.run_after - row.updated_at
    assert first_wait == pytest.approx(
        container.settings.jobs_min_backoff, abs=timedelta(seconds=1)
    )
    # not due yet: a message now runs nothing
    queue.run(job_id)
    assert len(recorder.runs) == 1
    for attempt in (2, 3):
        with sessions.begin() as session:
            session.execute(update(Job).values(run_after=utcnow() - timedelta(seconds=1)))
        queue.run(job_id)
        assert len(recorder.runs) == attempt
    row = job(sessions, "probe:b")
    assert (row.state, row.attempts, row.last_error) == (table.FAILED, 3, "RuntimeError: boom 3")
    assert row.finished_at is not None
    listed = client.get("/api/v1/jobs?state=failed", headers=auth("admin")).get_json()
    assert listed["counts"]["failed"] == 1
    assert [(j["key"], j["attempts"], j["last_error"]) for j in listed["jobs"]] == [
        ("probe:b", 3, "RuntimeError: boom 3")
    ]


def test_the_backoff_doubles(container, sessions):
    recorder = Recorder(fail=2)
    queue = queue_of(container, recorder, max_attempts=5)
    job_id = queue.enqueue("probe", "probe:c", {})
    waits = []
    for _ in range(2):
        row = job(sessions, "probe:c")
        waits.append(row.run_after - row.updated_at)
        with sessions.begin() as session:
            session.execute(update(Job).values(run_after=utcnow()))
        queue.run(job_id)
    assert waits[1] == pytest.approx(2 * waits[0], abs=timedelta(seconds=1))
    assert job(sessions, "probe:c").state == table.SUCCEEDED


def test_a_running_job_is_taken_over_only_after_its_worker_went_silent(container, sessions):
    recorder = Recorder()
    queue = queue_of(container, recorder)
    lease = container.settings.jobs_lease
    with sessions.begin() as session:
        job_id = table.put(session, "probe:d", "probe", {}, 3, lease)
        assert table.claim(session, job_id, "dead-host:1", lease) is not None
    queue.run(job_id)  # alive elsewhere (fresh heartbeat): not ours
    assert recorder.runs == []
    assert queue.resend_stranded() == 0
    with sessions.begin() as session:
        session.execute(update(Job).values(heartbeat_at=utcnow() - lease * 2))
    # the scheduler's pass finds it stranded and sends it again; inline, it runs at once
    assert queue.resend_stranded() == 1
    row = job(sessions, "probe:d")
    assert (row.state, row.attempts, row.owner) == (table.SUCCEEDED, 2, queue.owner)
    assert len(recorder.runs) == 1


def test_a_job_of_an_unknown_kind_fails_visibly_instead_of_vanishing(container, sessions):
    queue = queue_of(container, Recorder())
    with sessions.begin() as session:
        job_id = table.put(session, "gone:1", "gone", {}, 3, container.settings.jobs_lease)
    queue.run(job_id)
    row = job(sessions, "gone:1")
    assert (row.state, row.last_error) == (
        table.FAILED,
        "LookupError: no job kind 'gone' in this version",
    )


def test_ten_threads_asking_at_once_make_one_job(settings, sessions):
    app = create_app(settings, job_queue="embedded")
    container = app.extensions["enablement"]
    recorder = Recorder()
    gate = threading.Event()
    queue = JobQueue(container, {"probe": Kind(lambda c, p: (gate.wait(30), recorder(c, p)))})
    barrier, ids = threading.Barrier(10), []

    def ask():
        barrier.wait()
        ids.append(queue.enqueue("probe", "probe:e", {}))

    threads = [threading.Thread(target=ask) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    try:
        assert len([i for i in ids if i is not None]) == 1
        gate.set()
        queue.wait(30)
        assert len(recorder.runs) == 1
        assert job(sessions, "probe:e").state == table.SUCCEEDED
    finally:
        gate.set()
        queue.close()
        container.engine.dispose()


def test_the_embedded_engine_runs_jobs_in_a_worker_thread_not_the_caller(settings, sessions):
    app = create_app(settings, job_queue="embedded")
    container = app.extensions["enablement"]
    where = []
    queue = JobQueue(container, {"probe": Kind(lambda c, p: where.append(threading.get_ident()))})
    try:
        queue.enqueue("probe", "probe:f", {})
        queue.wait(30)
        assert len(where) == 1 and where[0] != threading.get_ident()
    finally:
        queue.close()
        container.engine.dispose()


def test_jobs_are_admin_only_and_filters_are_checked(client, auth):
    assert client.get("/api/v1/jobs").status_code == 401
    assert client.get("/api/v1/jobs", headers=auth("marketing")).status_code == 403
    bad = client.get("/api/v1/jobs?state=exploded", headers=auth("admin"))
    assert bad.status_code == 422 and "state" in bad.get_json()["error"]["details"]["query"]
    assert client.get("/api/v1/jobs?limit=0", headers=auth("admin")).status_code == 422
    empty = client.get("/api/v1/jobs", headers=auth("admin")).get_json()
    assert empty == {"counts": dict.fromkeys(table.STATES, 0), "jobs": []}


def test_the_cli_lists_jobs_and_the_scheduler_needs_a_broker(container, runner):
    container.jobs.enqueue("webhook_pending", job_service.WEBHOOK_PENDING_KEY)
    listed = runner("jobs")
    assert listed.exit_code == 0
    assert "succeeded: 1" in listed.output and "webhook-pending" in listed.output
    refused = runner("scheduler", "--once")
    assert refused.exit_code == 1 and "REDIS_URL" in refused.output
    assert "Traceback" not in refused.output


def test_one_scheduled_sync_per_period_whoever_asks(container, sessions):
    now = utcnow()
    key = job_service.sync_key(now, 15)
    assert job_service.sync_key(now + timedelta(seconds=1), 15) in {
        key,
        job_service.sync_key(now + timedelta(minutes=15), 15),
    }
    assert job_service.sync_key(now + timedelta(minutes=15), 15) != key
    assert key.startswith("sync:") and key.endswith("Z")


def test_a_message_that_comes_before_its_job_is_due_is_sent_again_for_then(settings, sessions):
    app = create_app(settings, job_queue="embedded")
    container = app.extensions["enablement"]
    recorder = Recorder()
    queue = queue_of(container, recorder)
    try:
        with sessions.begin() as session:
            job_id = table.put(
                session,
                "probe:g",
                "probe",
                {},
                3,
                settings.jobs_lease,
                utcnow() + timedelta(seconds=1),
            )
        queue.send(job_id, "probe")  # no delay: as from a host whose clock is ahead
        queue.wait(30)
        assert recorder.runs == [{}]
        assert job(sessions, "probe:g").state == table.SUCCEEDED
    finally:
        queue.close()
        container.engine.dispose()
