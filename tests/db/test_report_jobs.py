"""Reports off the request workers: computed once however many ask, never starving other routes.

These run the embedded job engine (Dramatiq's in-memory broker and worker in the app's process,
what `make run` uses); tests/test_workers.py runs the same with Redis and worker processes.
"""

import threading

import pytest
from sqlalchemy import select

from enablement import create_app
from enablement.db.jobs import RUNNING, SUCCEEDED
from enablement.db.models import Job, Share
from enablement.db.types import utcnow
from enablement.services import reports as report_service
from tests.simulator import insert, simulate

URL = "/api/v1/reports/effectiveness?as_of=2026-06-30T00:00:00Z"


@pytest.fixture
def data(sessions):
    simulated = simulate(120, seed=7)
    insert(sessions, simulated)
    return simulated


@pytest.fixture
def threaded(settings):
    """An app computing reports on its embedded job engine (as served without REDIS_URL), like
    one gunicorn worker.

    make(held) gives its job queue a HeldJobs to start each job through.
    """
    made = []

    def make(held: HeldJobs | None = None):
        app = create_app(settings, job_queue="embedded")
        if held is not None:
            hold_jobs(app, held)
        made.append(app)
        return app

    yield make
    for app in made:
        runner_of(app).wait(60)
        runner_of(app).close()
        app.extensions["enablement"].engine.dispose()


class HeldJobs:
    """A job queue's before_job: holds every job at a gate until the test opens it; counts them."""

    def __init__(self, open_gate: bool = False):
        self.started, self.gate, self.calls = threading.Event(), threading.Event(), 0
        self.keys: list[str] = []
        if open_gate:
            self.gate.set()

    def __call__(self, key: str) -> None:
        self.calls += 1
        self.keys.append(key)
        self.started.set()
        assert self.gate.wait(60), "the test never opened the gate"


def hold_jobs(app, held: HeldJobs) -> None:
    """Have the app's job queue start every job through held."""
    runner_of(app).before_job = held


def runner_of(app):
    """The app's job queue (enablement.queue.JobQueue)."""
    return app.extensions["enablement"].jobs


def test_a_report_being_computed_answers_202_with_where_to_fetch_it(threaded, auth, data):
    slow = HeldJobs()
    app = threaded(slow)
    client = app.test_client()
    first = client.get(URL, headers=auth("marketing"))
    assert first.status_code == 202
    assert first.headers["Location"] == URL
    assert int(first.headers["Retry-After"]) > 0
    assert first.get_json()["status"] == "computing"
    slow.gate.set()
    runner_of(app).wait(60)
    done = client.get(first.headers["Location"], headers=auth("marketing"))
    assert done.status_code == 200
    assert done.headers["X-Report-State"] == "fresh"
    assert done.get_json()["as_of"].startswith("2026-06-30")
    assert slow.calls == 1


def test_concurrent_requests_for_the_same_report_compute_it_once(threaded, auth, data):
    slow = HeldJobs()
    app = threaded(slow)
    headers = auth("marketing")
    barrier, statuses = threading.Barrier(10), []

    def ask():
        client = app.test_client()
        barrier.wait()
        statuses.append(client.get(URL, headers=headers).status_code)

    threads = [threading.Thread(target=ask) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert statuses == [202] * 10
    slow.gate.set()
    runner_of(app).wait(60)
    assert app.test_client().get(URL, headers=headers).status_code == 200
    assert slow.calls == 1


def test_two_workers_asking_for_the_same_report_compute_it_once(threaded, auth, data, sessions):
    slow = HeldJobs()
    one, two = threaded(slow), threaded(slow)
    headers = auth("marketing")
    assert one.test_client().get(URL, headers=headers).status_code == 202
    assert slow.started.wait(30)
    with sessions() as session:
        assert [j.state for j in session.scalars(select(Job))] == [RUNNING]
    # The second worker sees the first one's job and sends no message of its own.
    assert two.test_client().get(URL, headers=headers).status_code == 202
    assert runner_of(two)._broker is None
    slow.gate.set()
    runner_of(one).wait(60)
    assert two.test_client().get(URL, headers=headers).status_code == 200
    assert slow.calls == 1
    with sessions() as session:
        job = session.scalars(select(Job)).one()
        assert (job.state, job.attempts, job.kind) == (SUCCEEDED, 1, "report")


def test_other_routes_answer_while_a_slow_report_computes(threaded, auth, data):
    slow = HeldJobs()
    app = threaded(slow)
    client = app.test_client()
    assert client.get(URL, headers=auth("marketing")).status_code == 202
    assert slow.started.wait(30)
    # The computation is held at the gate: everything below is answered while it runs.
    assert client.get("/healthz").status_code == 200
    assert client.get("/api/v1/deals", headers=auth("sales")).status_code == 200
    assert client.get(URL, headers=auth("marketing")).status_code == 202
    assert not slow.gate.is_set() and slow.calls == 1
    slow.gate.set()
    runner_of(app).wait(60)


def test_after_a_write_the_last_report_is_served_marked_stale_while_a_new_one_computes(
    threaded, auth, data, sessions
):
    app = threaded()
    client = app.test_client()
    headers = auth("marketing")
    assert client.get(URL, headers=headers).status_code == 202
    runner_of(app).wait(60)
    fresh = client.get(URL, headers=headers)
    assert fresh.status_code == 200 and fresh.headers["X-Report-State"] == "fresh"
    with sessions.begin() as session:
        share = session.scalars(select(Share)).first()
        session.add(Share(deal_id=share.deal_id, asset_id=share.asset_id, shared_at=utcnow()))
    slow = HeldJobs()
    runner_of(app).before_job = slow  # from now on, jobs wait at the gate
    stale = client.get(URL, headers=headers)
    assert stale.status_code == 200
    assert stale.headers["X-Report-State"] == "stale"
    assert stale.headers["X-Report-Version"] == fresh.headers["X-Report-Version"]
    assert stale.get_json() == fresh.get_json()
    assert slow.started.wait(30)
    slow.gate.set()
    runner_of(app).wait(60)
    again = client.get(URL, headers=headers)
    assert again.headers["X-Report-State"] == "fresh"
    assert again.headers["X-Report-Version"] != fresh.headers["X-Report-Version"]
    assert slow.calls == 1


@pytest.mark.parametrize("silent_for, computes", [(2.0, True), (0.1, False)])
def test_a_job_whose_worker_went_silent_is_run_again_when_asked_again(
    threaded, auth, data, sessions, silent_for, computes
):
    slow = HeldJobs(open_gate=True)
    app = threaded(slow)
    settings = app.extensions["enablement"].settings
    key = report_service.report_key(
        settings, "effectiveness", report_service.parse_timestamp("2026-06-30T00:00:00Z")
    )
    with sessions.begin() as session:
        then = utcnow() - settings.jobs_lease * silent_for
        session.add(
            Job(
                key=f"report:{key}",
                kind="report",
                payload={"kind": "effectiveness", "as_of": "2026-06-30T00:00:00Z"},
                state=RUNNING,
                attempts=1,
                max_attempts=2,
                owner="a-killed-worker",
                heartbeat_at=then,
                run_after=then,
            )
        )
    assert app.test_client().get(URL, headers=auth("marketing")).status_code == 202
    runner_of(app).wait(60)
    assert slow.calls == (1 if computes else 0)
    with sessions() as session:
        job = session.scalars(select(Job)).one()
        assert job.state == (SUCCEEDED if computes else RUNNING)
        assert job.attempts == (2 if computes else 1)


def test_a_html_page_being_computed_reloads_itself(threaded, auth, data):
    app = threaded()
    client = app.test_client()
    page = client.get("/api/v1/reports/coverage?format=html", headers=auth("marketing"))
    assert page.status_code == 202
    assert 'http-equiv="refresh"' in page.get_data(as_text=True)
    runner_of(app).wait(60)
    page = client.get("/api/v1/reports/coverage?format=html", headers=auth("marketing"))
    assert page.status_code == 200


def test_the_cli_computes_inline_without_a_202(threaded, data):
    from click.testing import CliRunner

    from enablement.cli import cli

    app = threaded()
    with app.app_context():
        result = CliRunner().invoke(
            cli, ["report", "cycle-time", "--format", "json"], obj={}, catch_exceptions=False
        )
    assert result.exit_code == 0
    assert '"crm_stages"' in result.stdout
