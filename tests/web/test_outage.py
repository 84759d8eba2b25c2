"""A database outage: 503 with Retry-After (API), one line and exit 1 (CLI), links still open."""

import shutil
from contextlib import ExitStack

import pytest
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import make_url

from enablement import create_app
from enablement.config import Settings
from enablement.db.models import LinkView, Share
from enablement.domain.links import link_token, token_hash
from enablement.services.link_spool import MEMORY_NAME, SPOOL_NAME, link_memory
from tests.conftest import Cli
from tests.crm_data import insert_asset, insert_deals, insert_pipeline, sample_deal
from tests.databases import throwaway_postgres

BROWSER = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_0) AppleWebKit/605.1.15 Safari/605.1.15"


class SqliteOutage:
    """The database file replaced by a folder (SQLite cannot open it), and put back."""

    def __init__(self, url: str):
        self.path = make_url(url).database
        self.aside = self.path + ".aside"

    def begin(self, engine) -> None:
        engine.dispose()  # NOTE: open connections would keep reading the moved file
        shutil.move(self.path, self.aside)
        shutil.os.mkdir(self.path)

    def end(self, engine) -> None:
        shutil.os.rmdir(self.path)
        shutil.move(self.aside, self.path)
        engine.dispose()


class PostgresOutage:
    """A database of our own that stops accepting connections (its sessions killed), and resumes."""

    def __init__(self, admin, name: str):
        self.admin, self.name = admin, name

    def _run(self, sql: str, **params) -> None:
        with self.admin.connect() as conn:
            conn.execute(text(sql), params)

    def kill_sessions(self) -> None:
        self._run(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = :name AND pid <> pg_backend_pid()",
            name=self.name,
        )

    def begin(self, engine) -> None:
        self._run(f'ALTER DATABASE "{self.name}" ALLOW_CONNECTIONS false')
        self.kill_sessions()

    def end(self, engine) -> None:
        self._run(f'ALTER DATABASE "{self.name}" ALLOW_CONNECTIONS true')


@pytest.fixture(params=["sqlite", "postgresql"])
def world(request, tmp_path, sqlite_template, postgres_url):
    """An app on a database we may break: (app, outage)."""
    cleanup = ExitStack()
    if request.param == "sqlite":
        path = tmp_path / "outage.db"
        shutil.copyfile(sqlite_template, path)
        url, outage = f"sqlite:///{path}", SqliteOutage(f"sqlite:///{path}")
    else:
        if postgres_url is None:
            pytest.skip("TEST_DATABASE_URL is not set (.ci/run sets it)")
        url = cleanup.enter_context(throwaway_postgres(postgres_url, "enablement_outage"))
        admin = create_engine(postgres_url, isolation_level="AUTOCOMMIT")
        cleanup.callback(admin.dispose)
        outage = PostgresOutage(admin, make_url(url).database)
        cleanup.callback(outage.end, None)

    settings = Settings(
        instance_path=tmp_path / "instance",
        database_url=url,
        secret_key="test-secret-key",
        public_base_url="http://testserver",
        testing=True,
    ).with_overrides()
    app = create_app(settings)
    sessions = app.extensions["enablement"].sessions
    insert_pipeline(sessions)
    insert_deals(sessions, sample_deal("d1"))
    insert_asset(sessions, "a1", url="https://example.com/essay")
    yield app, outage
    app.extensions["enablement"].engine.dispose()
    cleanup.close()


def views(app) -> int:
    with app.extensions["enablement"].sessions() as session:
        return session.scalar(select(func.count()).select_from(LinkView))


def test_routes_answer_503_with_retry_after_while_the_database_is_down(world):
    app, outage = world
    headers = {"Authorization": f"Bearer {token_for_app(app, 'sales')}"}
    client = app.test_client()
    assert client.get("/api/v1/deals/d1", headers=headers).status_code == 200
    outage.begin(app.extensions["enablement"].engine)
    try:
        for method, path in [
            ("get", "/api/v1/deals/d1"),
            ("get", "/api/v1/assets"),
            ("post", "/api/v1/deals/d1/shares"),
        ]:
            response = getattr(client, method)(path, headers=headers, json={"asset_id": "a1"})
            assert response.status_code == 503, path
            assert int(response.headers["Retry-After"]) > 0
            error = response.get_json()["error"]
            assert error["code"] == "unavailable"
            assert "database is unavailable" in error["message"]
            assert "127.0.0.1" not in error["message"] and "sqlite" not in error["message"]
        assert client.get("/readyz").status_code == 503
        assert client.get("/healthz").status_code == 200
    finally:
        outage.end(app.extensions["enablement"].engine)
    assert client.get("/api/v1/deals/d1", headers=headers).status_code == 200


def test_the_cli_says_the_database_is_unavailable_in_one_line(world):
    app, outage = world
    outage.begin(app.extensions["enablement"].engine)
    try:
        result = Cli(app)("report", "coverage")
    finally:
        outage.end(app.extensions["enablement"].engine)
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("error: the database is unavailable")
    assert "Traceback" not in result.output


def test_a_known_link_still_opens_during_an_outage_and_its_view_is_counted_later(world):
    app, outage = world
    client = app.test_client()
    headers = {"Authorization": f"Bearer {token_for_app(app, 'sales')}"}
    link = client.post("/api/v1/deals/d1/shares", json={"asset_id": "a1"}, headers=headers)
    path = link.get_json()["link"].removeprefix("http://testserver")
    assert client.get(path, headers={"User-Agent": BROWSER}).status_code == 302
    spool = app.extensions["enablement"].settings.instance_path / SPOOL_NAME
    outage.begin(app.extensions["enablement"].engine)
    try:
        during = client.get(path, headers={"User-Agent": BROWSER})
        assert during.status_code == 302
        assert during.headers["Location"] == "https://example.com/essay"
        bot = client.get(path, headers={"User-Agent": "Slackbot-LinkExpanding 1.0"})
        assert bot.status_code == 302
        assert len(spool.read_text().splitlines()) == 1  # the bot is not counted
    finally:
        outage.end(app.extensions["enablement"].engine)
    assert views(app) == 1  # the view during the outage is not in the database yet
    assert client.get(path, headers={"User-Agent": BROWSER}).status_code == 302
    assert views(app) == 3  # before, during (replayed), after
    assert not spool.exists()


def test_a_link_this_process_never_saw_answers_503_during_an_outage(world):
    app, outage = world
    container = app.extensions["enablement"]
    with container.sessions.begin() as session:
        share = Share(deal_id="d1", asset_id="a1", shared_at=db_now(), source="import")
        session.add(share)
        session.flush()
        token = link_token(container.settings.secret_key, share.id)
        share.link_token_hash = token_hash(token)
    client = app.test_client()
    outage.begin(container.engine)
    try:
        response = client.get(f"/l/{token}", headers={"User-Agent": BROWSER})
        assert response.status_code == 503
        assert "Retry-After" in response.headers
        assert client.get("/l/" + "x" * 22).status_code == 503
        assert client.get("/l/not-a-token").status_code == 404  # refused before any lookup
    finally:
        outage.end(container.engine)
    assert client.get(f"/l/{token}", headers={"User-Agent": BROWSER}).status_code == 302


def test_a_restarted_postgresql_is_reconnected_without_errors(world):
    app, outage = world
    if not isinstance(outage, PostgresOutage):
        pytest.skip("pooled connections that die are a PostgreSQL (server) matter")
    headers = {"Authorization": f"Bearer {token_for_app(app, 'sales')}"}
    client = app.test_client()
    assert client.get("/api/v1/deals/d1", headers=headers).status_code == 200
    outage.kill_sessions()  # what a restart does to every pooled connection
    statuses = [client.get("/api/v1/deals/d1", headers=headers).status_code for _ in range(5)]
    assert statuses == [200] * 5


def token_for_app(app, role: str) -> str:
    from enablement.services.tokens import create_token

    token, _ = create_token(app.extensions["enablement"].sessions, role, f"outage {role}")
    return token


def db_now():
    from enablement.db.types import utcnow

    return utcnow()


def test_a_link_made_by_another_worker_of_the_host_opens_during_an_outage(world):
    app, outage = world
    client = app.test_client()
    headers = {"Authorization": f"Bearer {token_for_app(app, 'sales')}"}
    link = client.post("/api/v1/deals/d1/shares", json={"asset_id": "a1"}, headers=headers)
    path = link.get_json()["link"].removeprefix("http://testserver")
    instance = app.extensions["enablement"].settings.instance_path
    # A worker that never saw the link: nothing in its own memory, only the host's file.
    link_memory(instance).forget_all()
    assert (instance / MEMORY_NAME).exists()
    outage.begin(app.extensions["enablement"].engine)
    try:
        during = client.get(path, headers={"User-Agent": BROWSER})
    finally:
        outage.end(app.extensions["enablement"].engine)
    assert during.status_code == 302
    assert during.headers["Location"] == "https://example.com/essay"
    assert client.get(path, headers={"User-Agent": BROWSER}).status_code == 302
    assert views(app) == 2


def test_replaying_the_spool_skips_torn_lines_and_unknown_shares(world, tmp_path):
    from enablement.services.link_spool import replay_spool, spool_view

    app, _ = world
    container = app.extensions["enablement"]
    with container.sessions.begin() as session:
        share = Share(deal_id="d1", asset_id="a1", shared_at=db_now(), source="import")
        session.add(share)
    spool = tmp_path / SPOOL_NAME
    spool_view(spool, share.id, db_now(), BROWSER)
    spool_view(spool, 999_999, db_now(), BROWSER)  # a share that does not exist
    with spool.open("a") as handle:
        handle.write('{"share_id": 1, "viewed_at": \n')  # a torn line
    assert replay_spool(container.sessions, spool) == 1
    assert views(app) == 1
    assert not spool.exists()
    assert list(tmp_path.glob(SPOOL_NAME + "*")) == []
    assert replay_spool(container.sessions, spool) == 0
