"""Reports computed off the request workers: one computation per report, however many ask.

A request that finds no current report submits a job and answers at once (the last computed
report marked stale, or 202). The job runs on a small thread pool inside the process (no extra
server). The report_jobs table makes it one computation across processes too: a job is claimed
by inserting its row (the primary key decides between two workers), renewed by a heartbeat
while it is queued or running, and taken over only when its owner has been silent longer than
the lease (a worker killed mid-report).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import timedelta

from sqlalchemy import delete, or_, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from enablement.db import OUTAGE_ERRORS
from enablement.db.models import ReportJob
from enablement.db.types import utcnow

log = logging.getLogger(__name__)

# A job whose owner has not renewed it for this long is presumed dead and may be taken over.
JOB_LEASE = timedelta(seconds=60)
HEARTBEAT_SECONDS = 10.0
# Reports waiting or running in one process at most; further ones are asked again later (202).
MAX_PENDING = 16
REPORT_NICENESS = 5


def claim_job(sessions: sessionmaker[Session], key: str, owner: str) -> bool:
    """True when `owner` now holds the job of this report (new, or taken over from a silent owner)."""
    now = utcnow()
    with sessions() as session:
        # NOTE: a read first: while another worker computes, asking costs no write (and no
        # duplicate-key error in the server's log).
        held = session.get(ReportJob, key)
        if held is not None and held.owner != owner and held.heartbeat_at >= now - JOB_LEASE:
            return False
    try:
        with sessions.begin() as session:
            session.add(ReportJob(key=key, owner=owner, started_at=now, heartbeat_at=now))
        return True
    except IntegrityError:
        pass
    with sessions.begin() as session:
        taken = session.execute(
            update(ReportJob)
            # NOTE: a row of our own that we are not running is one we failed to release
            # (the database went away as the job ended): ours to take again at once.
            .where(
                ReportJob.key == key,
                or_(ReportJob.heartbeat_at < now - JOB_LEASE, ReportJob.owner == owner),
            )
            .values(owner=owner, started_at=now, heartbeat_at=now)
        )
        return taken.rowcount == 1


def release_job(sessions: sessionmaker[Session], key: str, owner: str) -> None:
    """Drop the job row of a finished (or failed) computation, if this owner still holds it."""
    with sessions.begin() as session:
        session.execute(delete(ReportJob).where(ReportJob.key == key, ReportJob.owner == owner))


def renew_jobs(sessions: sessionmaker[Session], keys: list[str], owner: str) -> None:
    """Tell other processes these jobs are still queued or running here."""
    if not keys:
        return
    with sessions.begin() as session:
        session.execute(
            update(ReportJob)
            .where(ReportJob.key.in_(keys), ReportJob.owner == owner)
            .values(heartbeat_at=utcnow())
        )


class ReportRunner:
    """A bounded pool of report threads in this process, with the jobs it holds."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        threads: int = 1,
        before_job: Callable[[str], None] | None = None,
    ):
        """Nothing starts until the first job (gunicorn forks workers after the app is built).

        before_job(key), when given, runs in the report thread as each claimed job starts.
        """
        self.sessions = sessions
        self.threads = threads
        self.before_job = before_job
        self._lock = threading.Lock()
        self._pending: dict[str, Future] = {}
        self._executor: ThreadPoolExecutor | None = None
        self._heartbeat: threading.Thread | None = None
        self._pid: int | None = None

    @property
    def owner(self) -> str:
        """This process's name in report_jobs rows."""
        return f"{socket.gethostname()[:64]}:{os.getpid()}:{id(self):x}"

    def submit(self, key: str, compute: Callable[[], object]) -> Future | None:
        """Compute this report in the background unless it already is (here or elsewhere).

        Returns the Future when this process computes it, else None.
        """
        with self._lock:
            self._after_fork()
            if key in self._pending:
                return self._pending[key]
            if len(self._pending) >= MAX_PENDING:
                return None
            # NOTE: claimed under the lock, so two threads of this process never both claim.
            if not claim_job(self.sessions, key, self.owner):
                return None
            future = self._pool().submit(self._run, key, compute)
            self._pending[key] = future
            self._start_heartbeat()
            return future

    def pending(self) -> list[str]:
        """Keys queued or running in this process."""
        with self._lock:
            return list(self._pending)

    def _run(self, key: str, compute: Callable[[], object]) -> None:
        """Compute, then release the job whatever happened."""
        _yield_cpu()
        try:
            if self.before_job is not None:
                self.before_job(key)
            compute()
        except OUTAGE_ERRORS as e:
            # NOTE: the next request after the outage starts it again; no traceback for this.
            kind = type(getattr(e, "orig", None) or e).__name__
            log.warning("report %s not computed: the database is unavailable (%s)", key, kind)
        except Exception:  # noqa: BLE001 - a failed report must not kill the pool thread
            log.exception("computing report %s failed", key)
        finally:
            with self._lock:
                self._pending.pop(key, None)
            try:
                release_job(self.sessions, key, self.owner)
            except OUTAGE_ERRORS:
                log.warning(
                    "report job %s not released; this process retakes it, others after the lease",
                    key,
                )

    def _after_fork(self) -> None:
        """A forked child starts with no threads: forget the parent's pool and jobs."""
        if self._pid != os.getpid():
            self._pid = os.getpid()
            self._executor, self._heartbeat, self._pending = None, None, {}

    def _pool(self) -> ThreadPoolExecutor:
        """The thread pool, made on first use."""
        if self._executor is None:
            self._executor = ThreadPoolExecutor(self.threads, thread_name_prefix="report")
        return self._executor

    def _start_heartbeat(self) -> None:
        """One daemon thread renews this process's jobs while it has any."""
        if self._heartbeat is not None and self._heartbeat.is_alive():
            return
        self._heartbeat = threading.Thread(target=self._beat, name="report-heartbeat", daemon=True)
        self._heartbeat.start()

    def _beat(self) -> None:
        """Renew every HEARTBEAT_SECONDS until nothing is pending."""
        stop = threading.Event()
        while not stop.wait(HEARTBEAT_SECONDS):
            keys = self.pending()
            if not keys:
                return
            try:
                renew_jobs(self.sessions, keys, self.owner)
            except OUTAGE_ERRORS:
                log.warning("could not renew report jobs; retrying")

    def wait(self, timeout: float | None = None) -> None:
        """Wait for every pending job (tests, and a graceful stop)."""
        for future in [f for f in self._pending.values()]:
            future.result(timeout)


def _yield_cpu() -> None:
    """Lower this thread's CPU priority (Linux: per thread), so requests win a busy machine."""
    # NOTE: a report is throughput work; the requests answered meanwhile are latency work.
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), REPORT_NICENESS)
    except (AttributeError, OSError):
        pass  # not Linux, or not permitted: the report just competes as an equal
