"""What an admin reads when DATABASE_URL is wrong: one line by cause, on the CLI and the web.

A plain postgresql:// URL works with the installed driver (psycopg 3); a database that is not
there, a user the server refuses and a missing grant are told apart from an unreachable
server (the only one a retry fixes), each in one line naming no password.
"""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from enablement import db
from tests.test_first_hour import env  # noqa: F401  (the fixture)
from tests.test_serving import run


@pytest.fixture
def postgres(postgres_url) -> str:
    """The run's PostgreSQL database (these messages are PostgreSQL's)."""
    if postgres_url is None:
        pytest.skip("TEST_DATABASE_URL is not set (.ci/run sets it)")
    return postgres_url


def plain(url: str, **parts) -> str:
    """The URL with the plain postgresql:// scheme and some parts replaced (password shown)."""
    changed = make_url(url).set(drivername="postgresql", **parts)
    return changed.render_as_string(hide_password=False)


@pytest.fixture
def pg_env(env):  # noqa: F811
    """The command's environment with the shared SECRET_KEY a PostgreSQL deployment needs."""
    return {**env, "SECRET_KEY": "k" * 40}


def one_line(result) -> str:
    """The command's only stderr line; fails on a traceback or a second line."""
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_a_plain_postgresql_url_uses_the_installed_driver(pg_env, postgres):
    result = run("tokens", "list", env={**pg_env, "DATABASE_URL": plain(postgres)})
    assert result.returncode == 0, result.stderr
    assert "psycopg2" not in result.stderr


def test_a_database_that_does_not_exist_says_so_and_not_to_retry(pg_env, postgres):
    url = plain(postgres, database=f"nu_trial_{uuid.uuid4().hex[:6]}")
    line = one_line(run("tokens", "list", env={**pg_env, "DATABASE_URL": url}))
    assert line.startswith("error: the database named in DATABASE_URL does not exist")
    assert "try again shortly" not in line and "nu_trial" not in line


def test_a_user_the_server_refuses_is_an_authentication_failure(pg_env, postgres):
    url = plain(postgres, username="nobody_here", password="s3cret-pw")
    line = one_line(run("tokens", "list", env={**pg_env, "DATABASE_URL": url}))
    assert "authentication failed" in line
    assert "s3cret-pw" not in line and "nobody_here" not in line


def test_an_unreachable_server_is_the_one_to_retry(pg_env, postgres):
    url = plain(postgres, host="127.0.0.1", port=9)
    line = one_line(run("tokens", "list", env={**pg_env, "DATABASE_URL": url}))
    assert line == "error: the database is unavailable (OperationalError); try again shortly"


@pytest.fixture
def grantless_url(postgres):
    """The test database reached as a role that may connect but read no table."""
    role = f"grantless_{uuid.uuid4().hex[:8]}"
    admin = create_engine(postgres, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"CREATE ROLE {role} LOGIN"))
    yield make_url(postgres).set(username=role, password=None).render_as_string(False)
    with admin.connect() as conn:
        conn.execute(text(f"DROP OWNED BY {role}"))
        conn.execute(text(f"DROP ROLE {role}"))
    admin.dispose()


def test_a_missing_grant_is_permission_denied_on_the_cli(pg_env, grantless_url):
    line = one_line(run("tokens", "list", env={**pg_env, "DATABASE_URL": grantless_url}))
    assert "permission denied" in line and "retrying will not help" in line


def test_a_missing_grant_is_permission_denied_on_the_web_without_retry_after(grantless_url):
    from enablement import create_app
    from enablement.config import Settings

    app = create_app(
        Settings(
            database_url=grantless_url,
            secret_key="test-secret-key",
            public_base_url="http://testserver",
            testing=True,
        ).with_overrides(),
        check_schema=False,
    )
    response = app.test_client().get(
        "/api/v1/assets", headers={"Authorization": "Bearer enb_x_not_a_token"}
    )
    assert response.status_code == 503
    assert "Retry-After" not in response.headers
    assert "permission denied" in response.get_json()["error"]["message"]
    app.extensions["enablement"].engine.dispose()


@pytest.mark.parametrize(
    ("message", "cause"),
    [
        ('FATAL:  database "x" does not exist', "missing_database"),
        ('FATAL:  password authentication failed for user "u"', "authentication_failed"),
        ('FATAL:  permission denied for database "x"', "permission_denied"),
        ("Connection refused", "unreachable"),
    ],
)
def test_each_cause_reads_from_the_drivers_message(message, cause):
    from sqlalchemy.exc import OperationalError

    assert db.database_cause(OperationalError("SELECT 1", {}, Exception(message))) == cause


def test_a_programming_error_that_is_not_a_grant_stays_a_bug():
    from sqlalchemy.exc import ProgrammingError

    bug = ProgrammingError("SELEC 1", {}, Exception('syntax error at or near "SELEC"'))
    assert not db.is_database_failure(bug)
    denied = ProgrammingError("SELECT 1", {}, Exception("permission denied for table assets"))
    assert db.is_database_failure(denied) and db.outage(denied).retry is False
