"""Settings for several hosts: one SECRET_KEY for all, the shared store, the connection pool."""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from enablement.config import SECRET_KEY_FILE, Settings
from enablement.db import make_engine
from enablement.errors import InvalidInput

ROOT = Path(__file__).resolve().parents[2]
POSTGRES = "postgresql+psycopg://u@h/db"


def settings_from(tmp_path, **env):
    return Settings.from_env({"ENABLEMENT_INSTANCE_PATH": str(tmp_path), **env})


def test_postgresql_without_a_secret_key_is_a_one_line_error(tmp_path):
    with pytest.raises(InvalidInput) as raised:
        settings_from(tmp_path / "instance", DATABASE_URL=POSTGRES)
    message = raised.value.message
    assert message.startswith("SECRET_KEY must be set when the database is not the embedded SQLite")
    assert "\n" not in message
    assert not (tmp_path / "instance" / SECRET_KEY_FILE).exists()  # no per-host key made


def test_settings_built_in_code_need_the_key_on_postgresql_too(tmp_path):
    with pytest.raises(InvalidInput, match="SECRET_KEY must be set"):
        Settings(instance_path=tmp_path, database_url=POSTGRES).with_overrides()


def test_postgresql_with_a_secret_key_uses_it_and_writes_nothing(tmp_path):
    settings = settings_from(
        tmp_path / "instance", DATABASE_URL=POSTGRES, SECRET_KEY="s3cret-s3cret-s3cret"
    )
    assert settings.secret_key == "s3cret-s3cret-s3cret"
    assert not (tmp_path / "instance").exists()


def test_a_sqlite_url_given_still_generates_the_development_key(tmp_path):
    settings = settings_from(tmp_path, DATABASE_URL=f"sqlite:///{tmp_path / 'x.db'}")
    assert len(settings.secret_key) == 64
    assert (tmp_path / SECRET_KEY_FILE).read_text() == settings.secret_key


def test_the_key_file_is_private_and_nothing_temporary_is_left(tmp_path):
    settings_from(tmp_path)
    assert (tmp_path / SECRET_KEY_FILE).stat().st_mode & 0o777 == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == [SECRET_KEY_FILE]


def test_a_damaged_key_file_is_a_clear_error_not_an_empty_key(tmp_path):
    (tmp_path / SECRET_KEY_FILE).write_text("")
    with pytest.raises(InvalidInput, match="damaged"):
        settings_from(tmp_path)


# Each process says it is ready, waits for the word go, builds its settings and prints its key.
_START_TOGETHER = """
import sys
from pathlib import Path
from enablement.config import Settings
gate = Path(sys.argv[2])
(gate / sys.argv[3]).touch()
open(gate / "go").close()  # a FIFO: blocks until the test opens it, then all go at once
print(Settings.from_env({"ENABLEMENT_INSTANCE_PATH": sys.argv[1]}).secret_key)
"""
STARTING = 6


def test_processes_starting_together_agree_on_one_complete_key(tmp_path):
    instance, gate = tmp_path / "instance", tmp_path / "gate"
    gate.mkdir()
    os.mkfifo(gate / "go")
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", _START_TOGETHER, str(instance), str(gate), f"ready{n}"],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(STARTING)
    ]
    deadline = time.monotonic() + 60
    while len(list(gate.glob("ready*"))) < STARTING and time.monotonic() < deadline:
        time.sleep(0.01)
    with open(gate / "go", "w"):
        pass
    results = [p.communicate(timeout=60) for p in processes]
    assert [p.returncode for p in processes] == [0] * STARTING, [err for _, err in results]
    keys = {out.strip() for out, _ in results}
    assert len(keys) == 1
    (key,) = keys
    assert len(key) == 64
    assert (instance / SECRET_KEY_FILE).read_text() == key
    assert sorted(p.name for p in instance.iterdir()) == [SECRET_KEY_FILE]


def test_the_command_line_refuses_postgresql_without_a_key_in_one_line(tmp_path):
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DATABASE_URL", "SECRET_KEY", "HUBSPOT_", "REDIS_URL"))
    }
    env.update(ENABLEMENT_INSTANCE_PATH=str(tmp_path), DATABASE_URL=POSTGRES)
    result = subprocess.run(
        [str(Path(sys.executable).parent / "enablement"), "tokens", "list"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert result.stderr.startswith("error: SECRET_KEY must be set")
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "url", ["redis://127.0.0.1:6379/0", "rediss://:pw@cache.internal:6380", "redis://cache"]
)
def test_a_redis_url_is_read(tmp_path, url):
    assert settings_from(tmp_path, REDIS_URL=url).redis_url == url


def test_no_redis_url_means_no_shared_store(tmp_path):
    assert settings_from(tmp_path).redis_url is None
    assert settings_from(tmp_path, REDIS_URL="  ").redis_url is None


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:6379",
        "127.0.0.1:6379",
        "redis://",
        "redis://:hunter2@h:port",
        "redis://h/zero",
        "unix:///tmp/redis.sock",
    ],
)
def test_a_bad_redis_url_is_one_line_that_never_shows_a_password(tmp_path, url):
    with pytest.raises(InvalidInput) as raised:
        settings_from(tmp_path, REDIS_URL=url)
    assert raised.value.message.startswith("REDIS_URL must be a redis:// or rediss:// URL")
    assert "hunter2" not in raised.value.message
    assert "\n" not in raised.value.message


def test_pool_settings_are_read_and_reach_the_postgresql_engine(tmp_path):
    settings = settings_from(
        tmp_path,
        DATABASE_URL=POSTGRES,
        SECRET_KEY="s3cret-s3cret-s3cret",
        DATABASE_POOL_SIZE="12",
        DATABASE_MAX_OVERFLOW="0",
    )
    assert (settings.database_pool_size, settings.database_max_overflow) == (12, 0)
    engine = make_engine(
        settings.database_url,
        pool_size=settings.database_pool_size,
        max_overflow=settings.database_max_overflow,
    )
    assert (engine.pool.size(), engine.pool._max_overflow) == (12, 0)


def test_pool_settings_default_to_sqlalchemys_own(tmp_path):
    settings = settings_from(tmp_path)
    assert (settings.database_pool_size, settings.database_max_overflow) == (5, 10)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("DATABASE_POOL_SIZE", "0"),
        ("DATABASE_POOL_SIZE", "many"),
        ("DATABASE_MAX_OVERFLOW", "-1"),
        ("DATABASE_MAX_OVERFLOW", "5000"),
    ],
)
def test_bad_pool_settings_name_their_variable(tmp_path, name, value):
    with pytest.raises(InvalidInput, match=f"^{name} must be a whole number"):
        settings_from(tmp_path, **{name: value})
