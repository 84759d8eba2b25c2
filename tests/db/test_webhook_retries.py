"""The webhook path's one retry policy: a transient failure runs the transaction again, a permanent one does not."""

from __future__ import annotations

import sqlite3

import pytest
from sqlalchemy import func, insert, select, text
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError

from enablement.db.crm import lock_deals
from enablement.db.models import Pipeline
from enablement.db.webhooks import in_transaction, is_transient
from tests.crm_data import insert_deals, insert_pipeline, sample_deal


def locked() -> OperationalError:
    """What SQLite's driver raises when another writer holds the database past busy_timeout."""
    return OperationalError("BEGIN IMMEDIATE", {}, sqlite3.OperationalError("database is locked"))


def pipelines(sessions) -> int:
    """Stored pipelines."""
    with sessions() as session:
        return session.scalar(select(func.count()).select_from(Pipeline))


def test_a_transient_failure_is_retried_and_the_second_run_commits(sessions):
    calls = []

    def work(session):
        calls.append(1)
        session.execute(insert(Pipeline).values(id=f"p{len(calls)}", label="Sales"))
        if len(calls) == 1:
            raise locked()
        return "done"

    assert in_transaction(sessions, work, pause=0) == "done"
    assert len(calls) == 2
    with sessions() as session:
        # The failed run was rolled back: only the second run's row is stored.
        assert list(session.scalars(select(Pipeline.id))) == ["p2"]


def test_a_failure_that_stays_is_re_raised_after_the_last_attempt(sessions):
    calls = []

    def work(session):
        calls.append(1)
        raise locked()

    with pytest.raises(OperationalError):
        in_transaction(sessions, work, attempts=3, pause=0)
    assert len(calls) == 3


def test_a_constraint_violation_is_permanent_and_runs_once(sessions):
    insert_pipeline(sessions)
    calls = []

    def work(session):
        calls.append(1)
        session.execute(insert(Pipeline).values(id="p1", label="Again"))

    with pytest.raises(IntegrityError) as raised:
        in_transaction(sessions, work, pause=0)
    assert not is_transient(raised.value)
    assert len(calls) == 1 and pipelines(sessions) == 1


def test_a_database_error_that_is_not_a_lock_runs_once(sessions):
    calls = []

    def work(session):
        calls.append(1)
        session.execute(text("SELECT * FROM no_such_table"))

    with pytest.raises(DBAPIError) as raised:
        in_transaction(sessions, work, pause=0)
    assert not is_transient(raised.value)
    assert len(calls) == 1


def test_a_real_lock_wait_timeout_is_retried_until_the_lock_is_free(sessions, database_url):
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite takes its write lock at BEGIN: a wait there times out before any work")
    insert_pipeline(sessions)
    insert_deals(sessions, sample_deal("d1"))
    holder = sessions()
    holder.begin()
    lock_deals(holder, ["d1"])  # another worker in the middle of applying events to d1
    calls = []

    def work(session):
        calls.append(1)
        if len(calls) == 2:
            holder.rollback()  # that worker finishes
        session.execute(text("SET LOCAL lock_timeout = '100ms'"))
        return sorted(lock_deals(session, ["d1"]))

    try:
        assert in_transaction(sessions, work, pause=0) == ["d1"]
    finally:
        holder.close()
    assert len(calls) == 2
