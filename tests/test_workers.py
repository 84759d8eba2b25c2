"""The job engine with real processes: Redis as the broker, `enablement worker` processes, web
apps that only queue. A report asked for on two hosts is computed once, in a worker; a worker
killed mid-job loses nothing (another finishes it); a webhook's follow-up outlives the web app
that accepted it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from sqlalchemy import select

from enablement import create_app
from enablement.db.jobs import RUNNING, SUCCEEDED
from enablement.db.models import Deal, Job, ReportCache
from tests.redis_store import redis_url_or_skip
from tests.simulator import insert, simulate

pytestmark = pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)

URL = "/api/v1/reports/effectiveness?as_of=2026-06-30T00:00:00Z"
LEASE_SECONDS = 5
# Every process of a deployment signs with one key (the tests' default is too short for a server).
KEY = "workers-test-secret-key-0123456789"
ENABLEMENT = str(Path(sys.executable).with_name("enablement"))


@pytest.fixture
def engine_env(settings, tmp_path):
    """What every process of one deployment shares: database, key, broker and its namespace."""
    redis_url = redis_url_or_skip()
    namespace = f"test-{uuid.uuid4().hex[:12]}"
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": os.environ.get("HOME", str(tmp_path)),
        "DATABASE_URL": settings.database_url,
        "SECRET_KEY": KEY,
        "REDIS_URL": redis_url,
        "JOBS_NAMESPACE": namespace,
        "JOBS_HEARTBEAT_TIMEOUT": str(LEASE_SECONDS),
        "ENABLEMENT_INSTANCE_PATH": str(tmp_path / "worker-instance"),
        "SYNC_EVERY_MINUTES": "0",
    }
    yield env
    from enablement import shared_store

    client = shared_store.client(redis_url)
    stale = list(client.scan_iter(match=f"{namespace}*", count=1000))
    if stale:
        client.delete(*stale)


@pytest.fixture
def hosts(settings, engine_env):
    """make(**overrides): a web app of the deployment (queues jobs, runs none: JOB_QUEUE=redis)."""
    made = []

    def make(**overrides):
        app = create_app(
            settings,
            job_queue="redis",
            secret_key=KEY,
            redis_url=engine_env["REDIS_URL"],
            jobs_namespace=engine_env["JOBS_NAMESPACE"],
            **overrides,
        )
        made.append(app)
        return app

    yield make
    for app in made:
        app.extensions["enablement"].jobs.close()
        app.extensions["enablement"].engine.dispose()


class Workers:
    """`enablement worker` processes (each its own process group), killed at the end."""

    def __init__(self, env: dict, folder: Path):
        self.env, self.folder, self.started = env, folder, []

    def start(self, **extra_env) -> subprocess.Popen:
        log = self.folder / f"worker-{len(self.started)}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [ENABLEMENT, "worker", "--processes", "1", "--threads", "1"],
                env={**self.env, **extra_env},
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        process.log = log
        self.started.append(process)
        deadline = time.monotonic() + 60
        while b"ready for action" not in log.read_bytes():
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        return process

    @staticmethod
    def kill(process: subprocess.Popen) -> None:
        """SIGKILL the worker and its children at once: no graceful stop, nothing acknowledged."""
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.wait(30)

    def stop_all(self) -> None:
        for process in self.started:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.started:
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                self.kill(process)


@pytest.fixture
def workers(engine_env, tmp_path):
    started = Workers(engine_env, tmp_path)
    yield started
    started.stop_all()


def wait_for(check, seconds: float = 90, every: float = 0.05):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(every)
    raise AssertionError("timed out")


def jobs_of(sessions, kind: str) -> list[Job]:
    with sessions() as session:
        return list(session.scalars(select(Job).where(Job.kind == kind)))


def test_ten_requests_on_two_hosts_compute_the_report_once_in_a_worker(
    hosts, workers, sessions, auth
):
    insert(sessions, simulate(120, seed=7))
    one, two = hosts(), hosts()
    headers = auth("marketing")
    answers = [(one if i % 2 else two).test_client().get(URL, headers=headers) for i in range(10)]
    assert [a.status_code for a in answers] == [202] * 10
    # Nothing computes in the web apps: the job waits in Redis for a worker.
    time.sleep(0.5)
    assert [j.state for j in jobs_of(sessions, "report")] == ["queued"]
    workers.start()
    done = wait_for(
        lambda: (r := one.test_client().get(URL, headers=headers)).status_code == 200 and r, 120
    )
    assert done.headers["X-Report-State"] == "fresh"
    assert two.test_client().get(URL, headers=headers).status_code == 200
    (job,) = jobs_of(sessions, "report")
    assert (job.state, job.attempts) == (SUCCEEDED, 1)
    assert not job.owner.endswith(f":{os.getpid()}")  # run by the worker, not a web app
    with sessions() as session:
        keys = [row.key for row in session.scalars(select(ReportCache))]
    assert len([k for k in keys if k.startswith("effectiveness:2026-06-30")]) == 1


def test_a_worker_killed_mid_report_loses_no_job_another_finishes_it(
    hosts, workers, sessions, auth
):
    insert(sessions, simulate(600, seed=11))
    web = hosts(jobs_lease=__import__("datetime").timedelta(seconds=LEASE_SECONDS))
    first = workers.start()
    assert web.test_client().get(URL, headers=auth("marketing")).status_code == 202
    running = wait_for(lambda: [j for j in jobs_of(sessions, "report") if j.state == RUNNING], 60)
    workers.kill(first)
    killed_owner = running[0].owner
    assert jobs_of(sessions, "report")[0].state == RUNNING  # left behind, lease running out
    second = workers.start()
    # The scheduler's pass (cron-style, once) sends the stranded job again after the lease.
    time.sleep(LEASE_SECONDS + 0.5)
    scheduler = subprocess.run(
        [ENABLEMENT, "scheduler", "--once"],
        env=workers.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert scheduler.returncode == 0, scheduler.stderr
    assert "1 stranded sent again" in scheduler.stdout
    job = wait_for(lambda: [j for j in jobs_of(sessions, "report") if j.state == SUCCEEDED], 120)[0]
    assert job.attempts == 2 and job.owner != killed_owner
    assert second.poll() is None
    assert web.test_client().get(URL, headers=auth("marketing")).status_code == 200


def test_a_webhook_follow_up_outlives_the_web_app_that_accepted_it(
    hosts, workers, sessions, engine_env
):
    from tests.integrations.fake_hubspot import TOKEN, served_standard_portal
    from tests.web.test_webhooks import SECRET, post
    from tests.web.test_webhooks_crm import T1, stage_event

    with served_standard_portal() as fake:
        fake.add_deal(4711, [("appointmentscheduled", T1)], dealname="Globex platform")
        crm = {"hubspot_client_secret": SECRET, "hubspot_access_token": TOKEN}
        web = hosts(hubspot_api_base=fake.url, **crm)
        answer = post(web.test_client(), [stage_event(1, 4711, T1, "appointmentscheduled")])
        assert answer.status_code == 200
        # The web app goes away before anything ran the follow-up.
        web.extensions["enablement"].jobs.close()
        web.extensions["enablement"].engine.dispose()
        assert [j.state for j in jobs_of(sessions, "deal_fetch")] == ["queued"]
        workers.start(
            HUBSPOT_ACCESS_TOKEN=TOKEN, HUBSPOT_CLIENT_SECRET=SECRET, HUBSPOT_API_BASE=fake.url
        )
        wait_for(lambda: [j for j in jobs_of(sessions, "deal_fetch") if j.state == SUCCEEDED])
        with sessions() as session:
            assert session.get(Deal, "4711").name == "Globex platform"
