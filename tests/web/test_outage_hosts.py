"""Two hosts of one app (REDIS_URL set) through a database outage: links open anywhere, views kept once."""

import shutil
import threading
import uuid
from contextlib import ExitStack

import pytest
from sqlalchemy import create_engine
from sqlalchemy.engine import make_url

from enablement import create_app, shared_store
from enablement.config import Settings
from enablement.db import OUTAGE_ERRORS
from enablement.db.models import Share
from enablement.domain.links import link_token, token_hash
from enablement.services.link_spool import (
    SPOOL_NAME,
    SharedLinks,
    _parse,
    _store_views,
    links_for,
    replay_spooled_views,
)
from tests.crm_data import insert_asset, insert_deals, insert_pipeline, sample_deal
from tests.databases import throwaway_postgres
from tests.redis_store import private_secret_key, redis_url_or_skip
from tests.web.test_outage import (
    BROWSER,
    PostgresOutage,
    SqliteOutage,
    db_now,
    token_for_app,
    views,
)

ESSAY = "https://example.com/essay"


class Hosts:
    """Host A and host B: two apps with instance folders of their own on one database and one Redis."""

    def __init__(self, a, b, outage):
        self.a, self.b, self._outage = a, b, outage

    def begin_outage(self) -> None:
        self._outage.begin(self.a.extensions["enablement"].engine)
        self.b.extensions["enablement"].engine.dispose()

    def end_outage(self) -> None:
        self._outage.end(self.a.extensions["enablement"].engine)
        self.b.extensions["enablement"].engine.dispose()

    def links(self, app) -> SharedLinks:
        return links_for(app.extensions["enablement"].settings)


@pytest.fixture(params=["sqlite", "postgresql"])
def hosts(request, tmp_path, sqlite_template, postgres_url):
    """Two hosts of one app through which a database outage can be made."""
    redis_url = redis_url_or_skip()
    cleanup = ExitStack()
    if request.param == "sqlite":
        path = tmp_path / "outage.db"
        shutil.copyfile(sqlite_template, path)
        url, outage = f"sqlite:///{path}", SqliteOutage(f"sqlite:///{path}")
    else:
        if postgres_url is None:
            pytest.skip("TEST_DATABASE_URL is not set (.ci/run sets it)")
        url = cleanup.enter_context(throwaway_postgres(postgres_url, "enablement_hosts"))
        admin = create_engine(postgres_url, isolation_level="AUTOCOMMIT")
        cleanup.callback(admin.dispose)
        outage = PostgresOutage(admin, make_url(url).database)
        cleanup.callback(outage.end, None)
    secret = cleanup.enter_context(private_secret_key(redis_url))
    apps = [
        create_app(
            Settings(
                instance_path=tmp_path / name,
                database_url=url,
                secret_key=secret,
                redis_url=redis_url,
                public_base_url="http://testserver",
                testing=True,
            ).with_overrides()
        )
        for name in ("host-a", "host-b")
    ]
    sessions = apps[0].extensions["enablement"].sessions
    insert_pipeline(sessions)
    insert_deals(sessions, sample_deal("d1"))
    insert_asset(sessions, "a1", url=ESSAY)
    yield Hosts(*apps, outage)
    for app in apps:
        app.extensions["enablement"].engine.dispose()
    cleanup.close()


def imported_share(app) -> str:
    """A share stored without the API (as an import does): no process has seen its link."""
    container = app.extensions["enablement"]
    with container.sessions.begin() as session:
        share = Share(deal_id="d1", asset_id="a1", shared_at=db_now(), source="import")
        session.add(share)
        session.flush()
        token = link_token(container.settings.secret_key, share.id)
        share.link_token_hash = token_hash(token)
    return f"/l/{token}"


def shared_link(app) -> str:
    """A share made through the API of this host; its link's path."""
    headers = {"Authorization": f"Bearer {token_for_app(app, 'sales')}"}
    made = app.test_client().post(
        "/api/v1/deals/d1/shares", json={"asset_id": "a1"}, headers=headers
    )
    assert made.status_code == 201
    return made.get_json()["link"].removeprefix("http://testserver")


def click(app, path: str, agent: str = BROWSER):
    return app.test_client().get(path, headers={"User-Agent": agent})


def test_a_link_resolved_on_host_a_redirects_on_host_b_during_an_outage(hosts):
    path = imported_share(hosts.a)
    assert click(hosts.a, path).status_code == 302  # resolved on A: remembered in Redis
    hosts.begin_outage()
    try:
        on_b = click(hosts.b, path)
    finally:
        hosts.end_outage()
    assert on_b.status_code == 302
    assert on_b.headers["Location"] == ESSAY


def test_a_link_shared_on_host_a_redirects_on_host_b_during_an_outage(hosts):
    path = shared_link(hosts.a)
    hosts.begin_outage()
    try:
        on_b = click(hosts.b, path)
    finally:
        hosts.end_outage()
    assert on_b.status_code == 302
    assert on_b.headers["Location"] == ESSAY


def test_a_link_no_host_has_seen_still_answers_503_during_an_outage(hosts):
    path = imported_share(hosts.a)
    hosts.begin_outage()
    try:
        on_b = click(hosts.b, path)
    finally:
        hosts.end_outage()
    assert on_b.status_code == 503
    assert "Retry-After" in on_b.headers


def test_views_spooled_on_both_hosts_are_stored_once_whichever_hosts_replay(hosts):
    path = shared_link(hosts.a)
    assert click(hosts.a, path).status_code == 302
    hosts.begin_outage()
    try:
        for app in (hosts.a, hosts.b, hosts.b, hosts.a, hosts.b):
            assert click(app, path).status_code == 302
        assert click(hosts.b, path, "Slackbot-LinkExpanding 1.0").status_code == 302
    finally:
        hosts.end_outage()
    assert hosts.links(hosts.a).pending() == 5  # the bot is not counted
    assert views(hosts.a) == 1
    replayed = []

    def replay(app):
        container = app.extensions["enablement"]
        replayed.append(replay_spooled_views(container.settings, container.sessions))

    threads = [threading.Thread(target=replay, args=(app,)) for app in (hosts.a, hosts.b) * 2]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(replayed) == 5
    assert views(hosts.a) == 6
    assert hosts.links(hosts.a).pending() == 0
    container = hosts.a.extensions["enablement"]
    assert replay_spooled_views(container.settings, container.sessions) == 0
    assert views(hosts.a) == 6


def test_views_spooled_on_host_a_are_stored_by_the_next_click_on_host_b(hosts):
    path = shared_link(hosts.a)
    hosts.begin_outage()
    try:
        for _ in range(3):
            assert click(hosts.a, path).status_code == 302
    finally:
        hosts.end_outage()
    assert hosts.links(hosts.b).pending() == 3
    assert views(hosts.a) == 0
    assert click(hosts.b, path).status_code == 302  # answered from the database: replays the spool
    assert views(hosts.a) == 4
    assert hosts.links(hosts.b).pending() == 0
    assert click(hosts.a, path).status_code == 302
    assert views(hosts.a) == 5


def test_a_replayer_that_died_loses_no_view_and_doubles_none(hosts):
    links = hosts.links(hosts.a)
    sessions = hosts.a.extensions["enablement"].sessions
    with sessions.begin() as session:
        share = Share(deal_id="d1", asset_id="a1", shared_at=db_now(), source="import")
        session.add(share)
    for _ in range(6):
        links.spool(share.id, db_now(), BROWSER)
    claims = [links.prefix + "link_views:claims", None]
    # One replayer claimed three views and died before its commit; another died after it.
    for committed in (False, True):
        name = f"{links.prefix}link_views:claim:{uuid.uuid4().hex}"
        raw = links._claim(keys=[links.spool_key, claims[0]], args=[3, name])
        assert len(raw) == 3
        if committed:
            assert _store_views(sessions, [_parse(line.decode()) for line in raw], once=True) == 3
    assert views(hosts.a) == 3
    assert links.pending() == 0
    container = hosts.b.extensions["enablement"]
    # Not yet taken over: their replayers might still be at work.
    assert hosts.links(hosts.b).replay(container.sessions) == 0
    assert hosts.links(hosts.b).replay(container.sessions, stale_after=0) == 3
    assert views(hosts.a) == 6
    redis = shared_store.client(container.settings.redis_url)
    assert redis.zcard(claims[0]) == 0
    assert list(redis.scan_iter(match=links.prefix + "link_views:claim:*")) == []


def test_a_database_that_fails_during_the_replay_keeps_the_views_spooled(hosts):
    path = shared_link(hosts.a)
    hosts.begin_outage()
    try:
        for _ in range(3):
            assert click(hosts.b, path).status_code == 302
        container = hosts.a.extensions["enablement"]
        with pytest.raises(OUTAGE_ERRORS):
            replay_spooled_views(container.settings, container.sessions)
        assert hosts.links(hosts.a).pending() == 3
    finally:
        hosts.end_outage()
    assert replay_spooled_views(container.settings, container.sessions) == 3
    assert views(hosts.a) == 3


def test_a_redis_that_is_down_fails_no_click(tmp_path, sqlite_template, caplog):
    path = tmp_path / "outage.db"
    shutil.copyfile(sqlite_template, path)
    with socket_nobody_listens_on() as port:
        app = create_app(
            Settings(
                instance_path=tmp_path / "instance",
                database_url=f"sqlite:///{path}",
                secret_key=f"test-secret-{uuid.uuid4().hex}",
                redis_url=f"redis://127.0.0.1:{port}/0",
                public_base_url="http://testserver",
                testing=True,
            ).with_overrides()
        )
        sessions = app.extensions["enablement"].sessions
        insert_pipeline(sessions)
        insert_deals(sessions, sample_deal("d1"))
        insert_asset(sessions, "a1", url=ESSAY)
        link = shared_link(app)
        assert click(app, link).status_code == 302
        outage = SqliteOutage(f"sqlite:///{path}")
        outage.begin(app.extensions["enablement"].engine)
        try:
            during = click(app, link)  # this process remembers it; the view waits on this host
        finally:
            outage.end(app.extensions["enablement"].engine)
        assert during.status_code == 302
        assert (tmp_path / "instance" / SPOOL_NAME).exists()
        assert click(app, link).status_code == 302
        app.extensions["enablement"].engine.dispose()
    assert views(app) == 3
    assert "shared store" in caplog.text


class socket_nobody_listens_on:
    """A loopback port that refuses connections (bound, never listening)."""

    def __enter__(self) -> int:
        import socket

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        return self.sock.getsockname()[1]

    def __exit__(self, *exc) -> None:
        self.sock.close()
