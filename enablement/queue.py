"""The job engine: every piece of background work is a Dramatiq message, run by a worker.

Three modes (JOB_QUEUE):
- "redis": Dramatiq's Redis broker on REDIS_URL; `enablement worker` processes on any host run
  the jobs, `enablement scheduler` queues the periodic ones;
- "embedded" (no REDIS_URL: the two-command default): Dramatiq's in-memory broker and a
  Dramatiq worker inside each server process, so a new user runs no extra service;
- "inline": the job runs in the caller, before enqueue returns (tests, and one-off commands).

A message only says "run job N". What job N is, whether it is already queued or running, who
runs it and what went wrong last live in the jobs table (enablement.db.jobs): so however many
hosts ask, a key is one job; a message delivered twice runs it once; a worker killed mid-job
stops renewing its lease and the job is run again by another; retries wait with backoff and
end visible as failed.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

from enablement.db import OUTAGE_ERRORS
from enablement.db import jobs as table
from enablement.db.models import Job
from enablement.db.types import utcnow

log = logging.getLogger(__name__)

# Quick follow-ups (webhook deals, link views) never wait behind a report or a full sync.
QUEUES = ("default", "slow")
# Dramatiq's own per-message time limit: a full sync of a large account may take hours.
TIME_LIMIT_MS = 6 * 3600 * 1000
MAX_BACKOFF = timedelta(hours=1)
JOB_NICENESS = 5


@dataclass(frozen=True)
class Kind:
    """One kind of background work: what runs it, on which queue, and how often it is tried."""

    run: Callable[..., None]  # run(container, payload)
    queue: str = "default"
    max_attempts: int = 3
    # Lower the running thread's CPU priority: throughput work beside latency work.
    background_priority: bool = False


@dataclass
class JobQueue:
    """This process's side of the job engine: queue jobs, and (as a worker) run them."""

    container: object
    kinds: dict[str, Kind]
    # before_job(key), when given, runs in the worker as each claimed job starts (tests).
    before_job: Callable[[str], None] | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _pid: int | None = field(default=None, repr=False)
    _broker: object = field(default=None, repr=False)
    _actors: dict = field(default_factory=dict, repr=False)
    _worker: object = field(default=None, repr=False)
    _running: set[int] = field(default_factory=set, repr=False)
    _beating: threading.Thread | None = field(default=None, repr=False)

    @property
    def settings(self):
        return self.container.settings

    @property
    def mode(self) -> str:
        return self.settings.job_queue

    @property
    def owner(self) -> str:
        """This process's name in the jobs it runs."""
        return f"{socket.gethostname()[:64]}:{os.getpid()}"

    def enqueue(
        self, kind: str, key: str, payload: dict | None = None, delay: timedelta | None = None
    ) -> int | None:
        """Queue a job unless its key is queued or running already; its id when a message went out.

        The row is committed before the message is sent, so a worker always finds it; a message
        that cannot be sent (the broker away) leaves the row queued, and the next ask for the
        key, or the scheduler's pass over stranded jobs, sends it again.
        """
        spec = self.kinds[kind]
        run_after = utcnow() + delay if delay else None
        with self.container.sessions.begin() as session:
            job_id = table.put(
                session,
                key[:200],
                kind,
                payload or {},
                spec.max_attempts,
                self.settings.jobs_lease,
                run_after,
            )
        if job_id is not None:
            self.send(job_id, kind, delay)
        return job_id

    def send(self, job_id: int, kind: str, delay: timedelta | None = None) -> None:
        """Ask a worker to run job N (now, in this thread, when inline)."""
        if self.mode == "inline":
            if not delay:
                self.run(job_id)
            return
        try:
            actor = self._actor(self.kinds[kind].queue)
            options = {"delay": int(delay.total_seconds() * 1000)} if delay else {}
            actor.send_with_options(args=(job_id,), **options)
        except Exception as e:  # noqa: BLE001 - any broker failure: the row stays queued
            log.warning(
                "job %d queued but not sent (%s); it is sent again later", job_id, type(e).__name__
            )

    def resend_stranded(self) -> int:
        """Send again the jobs no worker will start otherwise (lost messages, killed workers)."""
        with self.container.sessions() as session:
            found = table.stranded(session, self.settings.jobs_lease)
        for job_id, kind in found:
            if kind in self.kinds:
                self.send(job_id, kind)
        if found:
            log.info("jobs sent again: %d stranded", len(found))
        return len(found)

    def run(self, job_id: int) -> None:
        """Run job N here if it is ours to run; record how it ended (a worker's message handler)."""
        sessions = self.container.sessions
        try:
            with sessions.begin() as session:
                claimed = table.claim(session, job_id, self.owner, self.settings.jobs_lease)
        except OUTAGE_ERRORS as e:
            log.warning("job %d not started: the database is unavailable (%s)", job_id, _name(e))
            return
        if claimed is None:
            self._early(job_id)
            return  # done, or alive elsewhere: this message is spent
        spec = self.kinds.get(claimed.kind)
        self._track(claimed.id)
        try:
            if spec is None:
                raise LookupError(f"no job kind {claimed.kind!r} in this version")
            if spec.background_priority:
                _yield_cpu()
            if self.before_job is not None:
                self.before_job(claimed.key)
            spec.run(self.container, claimed.payload)
        except Exception as e:  # noqa: BLE001 - a failed job is recorded, never kills the worker
            self._failed(claimed, spec, e)
        else:
            self._record(table.finish, claimed.id, self.owner)
            log.info("job %s succeeded (attempt %d)", claimed.key, claimed.attempt)
        finally:
            self._untrack(claimed.id)

    def _early(self, job_id: int) -> None:
        """A retry's message that came before the job is due (hosts' clocks): send it again then."""
        try:
            with self.container.sessions() as session:
                wait = table.early(session, job_id)
                kind = session.get(Job, job_id).kind if wait else None
        except OUTAGE_ERRORS:
            return  # the scheduler's pass sends it once it is stranded
        if wait and kind in self.kinds and self.mode != "inline":
            self.send(job_id, kind, wait)

    def _failed(self, claimed: table.Claimed, spec: Kind | None, error: Exception) -> None:
        """Record a failed run: queued again after a backoff, or failed for good."""
        text = f"{type(error).__name__}: {error}"
        retry = spec is not None and claimed.attempt < claimed.max_attempts
        wait = min(self.settings.jobs_min_backoff * 2 ** (claimed.attempt - 1), MAX_BACKOFF)
        if isinstance(error, OUTAGE_ERRORS):
            log.warning(
                "job %s failed: the database is unavailable (%s)", claimed.key, _name(error)
            )
        else:
            log.error(
                "job %s failed (attempt %d of %d)",
                claimed.key,
                claimed.attempt,
                claimed.max_attempts,
                exc_info=error,
            )
        recorded = self._record(
            table.fail, claimed.id, self.owner, text, utcnow() + wait if retry else None
        )
        if retry and recorded:
            self.send(claimed.id, claimed.kind, wait)

    def _record(self, write, *args) -> bool:
        """Write a job's outcome; on an outage the lease runs out and the job runs again."""
        try:
            with self.container.sessions.begin() as session:
                write(session, *args)
            return True
        except OUTAGE_ERRORS as e:
            log.warning("job outcome not recorded (%s); it runs again after its lease", _name(e))
            return False

    # --- the heartbeat: running jobs renew their lease while this process is alive ---

    def _track(self, job_id: int) -> None:
        with self._lock:
            self._running.add(job_id)
            if self._beating is None or not self._beating.is_alive():
                self._beating = threading.Thread(
                    target=self._beat, name="job-heartbeat", daemon=True
                )
                self._beating.start()

    def _untrack(self, job_id: int) -> None:
        with self._lock:
            self._running.discard(job_id)

    def _beat(self) -> None:
        """Renew the lease of this process's running jobs, a few times per lease, until none run."""
        every = max(self.settings.jobs_lease.total_seconds() / 4, 0.5)
        pause = threading.Event()
        while not pause.wait(every):
            with self._lock:
                running = sorted(self._running)
                if not running:
                    self._beating = None
                    return
            try:
                with self.container.sessions.begin() as session:
                    table.renew(session, running, self.owner)
            except OUTAGE_ERRORS as e:
                log.warning("job leases not renewed (%s); retrying", _name(e))

    # --- Dramatiq ---

    @property
    def broker(self):
        """This process's Dramatiq broker with one actor per queue (made on first use)."""
        with self._lock:
            if self._pid != os.getpid():
                # NOTE: gunicorn forks after the app is built: a child makes its own broker,
                # connections and (embedded) worker threads.
                self._pid, self._broker, self._actors, self._worker = os.getpid(), None, {}, None
                self._running, self._beating = set(), None
            if self._broker is None:
                self._broker = self._make_broker()
            return self._broker

    def _actor(self, queue: str):
        broker = self.broker
        if self.mode == "embedded":
            self._start_embedded_worker(broker)
        return self._actors[queue]

    def _make_broker(self):
        import dramatiq

        if self.mode == "redis":
            from dramatiq.brokers.redis import RedisBroker

            broker = RedisBroker(
                url=self.settings.redis_url,
                namespace=f"{self.settings.jobs_namespace}-jobs",
                # Messages a killed worker held go back to the queue after this long.
                heartbeat_timeout=int(self.settings.jobs_lease.total_seconds() * 1000),
            )
        else:
            from dramatiq.brokers.stub import StubBroker

            broker = StubBroker()
        for queue in QUEUES:
            self._actors[queue] = dramatiq.actor(
                self.run,
                broker=broker,
                actor_name=f"enablement_job_{queue}",
                queue_name=queue,
                # NOTE: retries are the jobs table's (bounded per kind, visible), not Dramatiq's.
                max_retries=0,
                time_limit=TIME_LIMIT_MS,
            )
        return broker

    def _start_embedded_worker(self, broker) -> None:
        """The in-process Dramatiq worker of the embedded mode, started once per process."""
        with self._lock:
            if self._worker is not None:
                return
            import dramatiq

            self._worker = dramatiq.Worker(
                broker, worker_threads=self.settings.worker_threads, worker_timeout=200
            )
            self._worker.start()

    def wait(self, timeout: float = 60) -> None:
        """Until every queued message of this process's embedded worker is handled (tests, stop)."""
        if self.mode != "embedded" or self._broker is None:
            return
        for queue in QUEUES:
            self._broker.join(queue, timeout=int(timeout * 1000))
        if self._worker is not None:
            self._worker.join()

    def close(self) -> None:
        """Stop this process's embedded worker and close its broker."""
        with self._lock:
            worker, broker = self._worker, self._broker
            self._worker = self._broker = None
            self._actors = {}
        if worker is not None:
            worker.stop()
        if broker is not None:
            broker.close()


def _name(error: Exception) -> str:
    return type(getattr(error, "orig", None) or error).__name__


def _yield_cpu() -> None:
    """Lower this thread's CPU priority (Linux: per thread), so requests win a busy machine."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), JOB_NICENESS)
    except (AttributeError, OSError):
        pass  # not Linux, or not permitted: the job just competes as an equal
