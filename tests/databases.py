"""Throwaway PostgreSQL databases for tests and benchmarks: made next to a base URL, always dropped."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from enablement import db


@contextmanager
def throwaway_postgres(
    base: str, prefix: str = "enablement_test", migrate: bool = True
) -> Iterator[str]:
    """A new database on `base`'s server (migrated unless told not to); yields its URL, drops it after."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(base).set(database=name).render_as_string(hide_password=False)
    try:
        if migrate:
            engine = db.make_engine(url)
            db.upgrade(engine)
            engine.dispose()
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
