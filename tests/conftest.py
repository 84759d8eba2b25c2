"""Fixtures: a real database per test (SQLite always, PostgreSQL with TEST_DATABASE_URL), app, client, cli."""

from __future__ import annotations

import os
import shutil
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import create_engine, text

from enablement import create_app, db
from enablement.config import Settings
from enablement.db.models import Base
from tests.databases import throwaway_postgres

ENGINES = ["sqlite", "postgresql"]


def pytest_addoption(parser):
    """--sqlite-only: the quick lane (`make test-fast`) never reaches PostgreSQL."""
    parser.addoption(
        "--sqlite-only",
        action="store_true",
        help="run no PostgreSQL test, even with TEST_DATABASE_URL set (deselected, not skipped)",
    )


def pytest_collection_modifyitems(config, items):
    """Under --sqlite-only, leave out every test parametrized onto PostgreSQL."""
    if not config.getoption("--sqlite-only"):
        return
    kept, left = [], []
    for item in items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        (left if "postgresql" in params.values() else kept).append(item)
    if left:
        config.hook.pytest_deselected(items=left)
        items[:] = kept


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory) -> Path:
    """A migrated SQLite file, copied for each test (faster than migrating each time)."""
    path = tmp_path_factory.mktemp("template") / "enablement.db"
    engine = db.make_engine(f"sqlite:///{path}")
    db.upgrade(engine)
    engine.dispose()
    # Fold the WAL into the main file so a plain file copy is a complete database.
    with closing(sqlite3.connect(path)) as raw:
        raw.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return path


@pytest.fixture(scope="session")
def postgres_url(request) -> str | None:
    """A fresh, migrated PostgreSQL database for this test run (dropped at the end), or None."""
    base = os.environ.get("TEST_DATABASE_URL")
    if not base or request.config.getoption("--sqlite-only"):
        yield None
        return
    with throwaway_postgres(base) as url:
        yield url


_TABLES = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)


@pytest.fixture(params=ENGINES)
def database_url(request, tmp_path, sqlite_template, postgres_url) -> str:
    """An empty, migrated database on each engine."""
    if request.param == "sqlite":
        path = tmp_path / "enablement.db"
        shutil.copyfile(sqlite_template, path)
        return f"sqlite:///{path}"
    if postgres_url is None:
        pytest.skip("TEST_DATABASE_URL is not set (.ci/run sets it)")
    engine = create_engine(postgres_url)
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {_TABLES} RESTART IDENTITY CASCADE"))
    engine.dispose()
    return postgres_url


@pytest.fixture
def settings(database_url, tmp_path) -> Settings:
    """Test settings: a temporary instance folder and the per-test database."""
    return Settings(
        instance_path=tmp_path / "instance",
        database_url=database_url,
        secret_key="test-secret-key",
        public_base_url="http://testserver",
        testing=True,
    ).with_overrides()


@pytest.fixture
def app(settings):
    """The app wired to the test database."""
    app = create_app(settings)
    yield app
    app.extensions["enablement"].engine.dispose()


@pytest.fixture
def client(app):
    """A test client of the app."""
    return app.test_client()


@pytest.fixture
def container(app):
    """The app's wired parts (settings, engine, sessions)."""
    return app.extensions["enablement"]


@pytest.fixture
def sessions(container):
    """The app's session factory."""
    return container.sessions


class Cli:
    """Runs `enablement ...` inside the test app; returns click's Result (stdout, stderr, exit_code)."""

    def __init__(self, app):
        self.app = app
        self.runner = CliRunner()

    def __call__(self, *args: str, input: str | None = None):
        """Invoke the command line with these arguments."""
        from enablement.cli import cli

        with self.app.app_context():
            return self.runner.invoke(cli, list(args), obj={}, input=input, catch_exceptions=False)


@pytest.fixture
def runner(app) -> Cli:
    """Run CLI commands against the test app."""
    return Cli(app)


@pytest.fixture
def token_for(container):
    """Create an API token of a role and return it."""
    from enablement.services.tokens import create_token

    def make(role: str, name: str | None = None, owner_id: str | None = None) -> str:
        token, _ = create_token(container.sessions, role, name or f"test {role}", owner_id)
        return token

    return make


@pytest.fixture
def auth(token_for):
    """Authorization headers for a role: auth('marketing')."""
    cache: dict[str, dict] = {}

    def headers(role: str) -> dict:
        if role not in cache:
            cache[role] = {"Authorization": f"Bearer {token_for(role)}"}
        return cache[role]

    return headers
