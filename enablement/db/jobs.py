"""The jobs table: one row per piece of background work, so it is done once and seen by an admin.

The job engine (enablement.queue) only carries "run job N" messages; what a job is, whether it
is already queued or running, which worker holds it and what went wrong last live here, in the
database every host shares. So a message delivered twice, or a job asked for by ten requests
on two hosts, runs once; and a message lost with its broker is sent again from the row.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, delete, func, or_, select, update
from sqlalchemy.orm import Session

from enablement.db.models import Job
from enablement.db.types import upsert_insert, utcnow

QUEUED, RUNNING, SUCCEEDED, FAILED = "queued", "running", "succeeded", "failed"
STATES = (QUEUED, RUNNING, SUCCEEDED, FAILED)
ACTIVE = (QUEUED, RUNNING)
ENDED = (SUCCEEDED, FAILED)
ERROR_LIMIT = 2000


@dataclass(frozen=True)
class Claimed:
    """A job a worker now holds: what to run, and which attempt this is."""

    id: int
    key: str
    kind: str
    payload: dict
    attempt: int
    max_attempts: int


def put(
    session: Session,
    key: str,
    kind: str,
    payload: dict,
    max_attempts: int,
    lease: timedelta,
    run_after: datetime | None = None,
) -> int | None:
    """Queue the job of this key; the id to send a message for, or None when none is needed.

    None when that key is already queued or running: two hosts asking at once, the unique key
    lets one insert win and the other finds it active. A key whose last run ended (succeeded or
    failed) is queued again on the same row. An active job nobody will start (its message lost,
    its worker killed: see stranded) gets its id back, so asking again is what rescues it.
    """
    now = utcnow()
    values = {
        "key": key,
        "kind": kind,
        "payload": payload,
        "state": QUEUED,
        "attempts": 0,
        "max_attempts": max_attempts,
        "run_after": run_after or now,
        "last_error": None,
        "owner": None,
        "heartbeat_at": None,
        "created_at": now,
        "updated_at": now,
        "finished_at": None,
    }
    table = Job.__table__
    inserted = session.execute(
        upsert_insert(session, table)
        .on_conflict_do_nothing(index_elements=["key"])
        .returning(table.c.id),
        [values],
    ).scalar()
    if inserted is not None:
        return inserted
    again = {k: v for k, v in values.items() if k not in ("key", "created_at")}
    requeued = session.execute(
        update(Job).where(Job.key == key, Job.state.in_(ENDED)).values(**again).returning(Job.id)
    ).scalar()
    if requeued is not None:
        return requeued
    return session.scalar(select(Job.id).where(Job.key == key, _stranded(now, lease)))


def _stranded(now: datetime, lease: timedelta):
    """Due but queued for longer than the lease, or running under an owner silent that long."""
    return or_(
        and_(Job.state == QUEUED, Job.run_after <= now - lease),
        and_(Job.state == RUNNING, Job.heartbeat_at < now - lease),
    )


def claim(session: Session, job_id: int, owner: str, lease: timedelta) -> Claimed | None:
    """Take job N to run it: queued and due, or running under an owner silent longer than the lease.

    None when it is done, not due yet, or alive elsewhere: the message that asked is spent.
    """
    now = utcnow()
    taken = session.execute(
        update(Job)
        .where(
            Job.id == job_id,
            or_(
                and_(Job.state == QUEUED, Job.run_after <= now),
                and_(Job.state == RUNNING, Job.heartbeat_at < now - lease),
            ),
        )
        .values(
            state=RUNNING, owner=owner, heartbeat_at=now, updated_at=now, attempts=Job.attempts + 1
        )
        .returning(Job.id, Job.key, Job.kind, Job.payload, Job.attempts, Job.max_attempts)
    ).first()
    return Claimed(*taken) if taken is not None else None


def early(session: Session, job_id: int) -> timedelta | None:
    """How long until a queued job is due, when a message for it came early (clocks of hosts
    differ a little); None when it is not queued or already due."""
    run_after = session.scalar(select(Job.run_after).where(Job.id == job_id, Job.state == QUEUED))
    wait = run_after - utcnow() if run_after is not None else None
    return wait if wait is not None and wait > timedelta(0) else None


def renew(session: Session, job_ids: Sequence[int], owner: str) -> None:
    """Say these running jobs are still at work here (the heartbeat)."""
    if job_ids:
        session.execute(
            update(Job)
            .where(Job.id.in_(list(job_ids)), Job.owner == owner, Job.state == RUNNING)
            .values(heartbeat_at=utcnow())
        )


def finish(session: Session, job_id: int, owner: str) -> None:
    """The job this owner ran succeeded."""
    now = utcnow()
    session.execute(
        update(Job)
        .where(Job.id == job_id, Job.owner == owner, Job.state == RUNNING)
        .values(state=SUCCEEDED, finished_at=now, updated_at=now, last_error=None)
    )


def fail(session: Session, job_id: int, owner: str, error: str, retry_at: datetime | None) -> None:
    """The run failed: queued again at retry_at, or failed for good when retry_at is None."""
    now = utcnow()
    values: dict = {"last_error": error[:ERROR_LIMIT], "updated_at": now}
    if retry_at is None:
        values.update(state=FAILED, finished_at=now)
    else:
        values.update(state=QUEUED, run_after=retry_at, owner=None, heartbeat_at=None)
    session.execute(
        update(Job)
        .where(Job.id == job_id, Job.owner == owner, Job.state == RUNNING)
        .values(**values)
    )


def stranded(session: Session, lease: timedelta, limit: int = 500) -> list[tuple[int, str]]:
    """(id, kind) of jobs no worker will start unless asked again: due but queued for longer than
    the lease (the message was lost, or never sent), or running under a silent owner."""
    query = select(Job.id, Job.kind).where(_stranded(utcnow(), lease)).order_by(Job.id).limit(limit)
    return [(row.id, row.kind) for row in session.execute(query)]


def listed(session: Session, states: Sequence[str] = (), kind: str | None = None, limit: int = 100):
    """Jobs, newest change first, optionally of some states or one kind."""
    query = select(Job).order_by(Job.updated_at.desc(), Job.id.desc()).limit(limit)
    if states:
        query = query.where(Job.state.in_(list(states)))
    if kind:
        query = query.where(Job.kind == kind)
    return list(session.scalars(query))


def counts(session: Session) -> dict[str, int]:
    """How many jobs are in each state."""
    found = dict(session.execute(select(Job.state, func.count()).group_by(Job.state)).all())
    return {state: found.get(state, 0) for state in STATES}


def prune(session: Session, older_than: timedelta) -> int:
    """Forget jobs that succeeded longer ago than that (failed ones stay until asked again)."""
    gone = session.execute(
        delete(Job).where(Job.state == SUCCEEDED, Job.finished_at < utcnow() - older_than)
    )
    return gone.rowcount
