"""Engine, sessions and schema migrations."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy import exc as sa_exc
from sqlalchemy.orm import Session, sessionmaker

from enablement.errors import SchemaOutdated, Unavailable

if TYPE_CHECKING:
    from alembic.config import Config

# NOTE: alembic (and the mako and pygments it pulls in) is imported inside the functions that
# migrate: it costs a quarter second that `enablement --help` and every request never need.
# Shipped in the wheel as package data next to this module (pyproject.toml).
MIGRATIONS = Path(__file__).resolve().parent / "migrations"

# What a database that cannot be reached (stopped, restarting, dropped, out of connections,
# a SQLite file that cannot be opened or stays locked) raises through SQLAlchemy. psycopg's own
# connection errors (psycopg.OperationalError) always reach us wrapped as OperationalError.
OUTAGE_ERRORS: tuple[type[Exception], ...] = (
    sa_exc.OperationalError,
    sa_exc.DisconnectionError,
    sa_exc.InterfaceError,  # "connection already closed" on a connection the server dropped
    sa_exc.TimeoutError,  # no pooled connection free within pool_timeout
)
# Seconds a client is told to wait (Retry-After) before trying again during an outage.
RETRY_AFTER_SECONDS = 5
# A PostgreSQL server that does not answer is given up on after this long (connect), and a
# request waits at most this long for a pooled connection: a 503 soon beats a worker held.
CONNECT_TIMEOUT_SECONDS = 5
POOL_TIMEOUT_SECONDS = 10


# What a database error means for whoever reads it, by its cause: only "unreachable" passes by
# itself (a retry helps, so the API adds Retry-After); the others need DATABASE_URL or the
# server's grants fixed. NOTE: the messages name no host, user, database or password, since
# the same line is a web page's answer; the operator knows which DATABASE_URL they set.
DATABASE_CAUSES = {
    "unreachable": "the database is unavailable ({kind}); try again shortly",
    "missing_database": (
        "the database named in DATABASE_URL does not exist; create it (createdb NAME) or "
        "correct the name, then run `enablement init` (retrying will not help)"
    ),
    "authentication_failed": (
        "the database refused the user or password in DATABASE_URL (authentication failed); "
        "correct them (retrying will not help)"
    ),
    "permission_denied": (
        "the database user in DATABASE_URL lacks a permission this needs (permission denied); "
        "grant it or connect as the schema's owner (retrying will not help)"
    ),
}
# SQLSTATEs (PostgreSQL) and message fragments (libpq's connection errors carry no SQLSTATE in
# psycopg; SQLite has none) of each cause other than "unreachable".
_CAUSE_CODES = {
    "3D000": "missing_database",
    "28P01": "authentication_failed",
    "28000": "authentication_failed",
    "42501": "permission_denied",
}
_CAUSE_TEXT = (
    (re.compile(r'database "[^"]*" does not exist'), "missing_database"),
    (
        re.compile(
            r"password authentication failed|role \"[^\"]*\" does not exist|"
            r"no password supplied|authentication failed"
        ),
        "authentication_failed",
    ),
    (re.compile(r"permission denied|readonly database|read-only database"), "permission_denied"),
)


def database_cause(error: Exception) -> str | None:
    """unreachable, missing_database, authentication_failed or permission_denied; None when the
    error is none of these (a ProgrammingError that is a bug, not a grant)."""
    orig = getattr(error, "orig", None) or error
    code = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    if code in _CAUSE_CODES:
        return _CAUSE_CODES[code]
    text = str(orig)
    for pattern, cause in _CAUSE_TEXT:
        if pattern.search(text):
            return cause
    return "unreachable" if isinstance(error, OUTAGE_ERRORS) else None


def is_database_failure(error: Exception) -> bool:
    """True for an error `outage` explains (an outage, or a missing grant), not for a bug."""
    return isinstance(error, OUTAGE_ERRORS) or (
        isinstance(error, sa_exc.ProgrammingError) and database_cause(error) is not None
    )


def outage(error: Exception) -> Unavailable:
    """The product error for a database that cannot be used, in one line by its cause; names no
    host or password. `.retry` says whether trying again can help (unreachable only)."""
    # NOTE: str(error) may carry the server's address or the SQL; only the cause and kind are shown.
    kind = type(getattr(error, "orig", None) or error).__name__
    cause = database_cause(error) or "unreachable"
    unavailable = Unavailable(DATABASE_CAUSES[cause].format(kind=kind))
    unavailable.cause = cause
    unavailable.retry = cause == "unreachable"
    return unavailable


def make_engine(
    url: str, pool_size: int | None = None, max_overflow: int | None = None, **kwargs
) -> Engine:
    """Create an engine; SQLite gets WAL, foreign keys and real transactions; PostgreSQL a sized pool.

    pool_size and max_overflow (DATABASE_POOL_SIZE, DATABASE_MAX_OVERFLOW) are connections per
    process; None keeps SQLAlchemy's defaults (5 and 10). SQLite ignores them.
    """
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30}, **kwargs)

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_connection, _record):
            # NOTE: take transaction control from pysqlite so BEGIN/SAVEPOINT behave as on PostgreSQL.
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _on_begin(conn):
            # NOTE: IMMEDIATE takes the write lock at BEGIN and waits for it (busy_timeout), so a
            # read-then-write transaction never fails with SQLITE_BUSY half-way (deferred BEGIN
            # failed over half of 400 concurrent link clicks). Transactions queue one at a time:
            # right for the embedded one-process mode; PostgreSQL is the scale-out path.
            # A session opened by `reading` only reads: a deferred BEGIN, which in WAL mode
            # takes no lock, so it neither waits for writers nor holds them up.
            if conn.get_execution_options().get(READ_ONLY):
                conn.exec_driver_sql("BEGIN")
            else:
                conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    # NOTE: pool_pre_ping tests each pooled connection when it is checked out, so the first
    # requests after a PostgreSQL restart reconnect instead of failing on a dead socket.
    kwargs.setdefault("pool_timeout", POOL_TIMEOUT_SECONDS)
    if pool_size is not None:
        kwargs["pool_size"] = pool_size
    if max_overflow is not None:
        kwargs["max_overflow"] = max_overflow
    connect_args = {"connect_timeout": CONNECT_TIMEOUT_SECONDS, **kwargs.pop("connect_args", {})}
    return create_engine(url, pool_pre_ping=True, connect_args=connect_args, **kwargs)


# The execution option `reading` sets: the session's transaction never writes.
READ_ONLY = "enablement_read_only"


@contextmanager
def reading(sessions: sessionmaker[Session]) -> Iterator[Session]:
    """A session for reads only: on SQLite a deferred BEGIN (no write lock is taken or waited
    for); on PostgreSQL autocommit, so no BEGIN and ROLLBACK round trips (under READ COMMITTED
    each statement sees its own snapshot either way, so the reads see the same data).

    NOTE: never write in it (on SQLite a write may fail with "database is locked" instead of
    waiting; on PostgreSQL each statement would commit by itself); use `sessions.begin()`.
    """
    with sessions() as session:
        options = {READ_ONLY: True}
        if session.get_bind().dialect.name == "postgresql":
            options["isolation_level"] = "AUTOCOMMIT"
        session.connection(execution_options=options)
        yield session


def make_sessions(engine: Engine) -> sessionmaker[Session]:
    """A session factory; services open one session per use case."""
    return sessionmaker(engine, expire_on_commit=False)


class _DryRun(Exception):
    """Raised at the end of a checked transaction so that everything it wrote is rolled back."""


@contextmanager
def transaction(sessions: sessionmaker[Session], check: bool = False) -> Iterator[Session]:
    """One write transaction, committed; with check (a dry run) the same work, rolled back.

    NOTE: a dry run does every write and rolls back, so what it reports (created, updated,
    unchanged, warnings) is what the real run would do, computed by the same code.
    """
    try:
        with sessions.begin() as session:
            yield session
            if check:
                raise _DryRun
    except _DryRun:
        pass


def alembic_config(engine: Engine) -> Config:
    """Alembic configuration bound to this engine."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["engine"] = engine
    return cfg


def upgrade(engine: Engine) -> None:
    """Create or upgrade the schema to the newest migration."""
    from alembic import command

    command.upgrade(alembic_config(engine), "head")


def head_revision() -> str:
    """The newest migration the code knows."""
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(_script_only_config())
    return script.get_current_head()


def current_revision(engine: Engine) -> str | None:
    """The migration the database is at, or None for an empty database."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def check_schema(engine: Engine) -> None:
    """Raise SchemaOutdated unless the database is at the newest migration."""
    current, head = current_revision(engine), head_revision()
    if current != head:
        state = "empty" if current is None else f"at revision {current}"
        raise SchemaOutdated(
            f"the database schema is {state}, the code needs {head}: "
            "run `enablement init` to create or upgrade it",
            {"current": current, "head": head},
        )


def ping(engine: Engine) -> None:
    """Run a trivial query; raises if the database does not answer."""
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))


def _script_only_config() -> Config:
    """Alembic configuration that reads the migration scripts only (no database)."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg
