"""Settings come only from the environment, with clear errors for bad values."""

from datetime import timedelta

import pytest

from enablement.config import Settings, parse_rate_limit
from enablement.errors import InvalidInput


def test_defaults_put_the_database_and_secret_in_the_instance_folder(tmp_path):
    settings = Settings.from_env({"ENABLEMENT_INSTANCE_PATH": str(tmp_path)})
    assert settings.database_url == f"sqlite:///{tmp_path}/enablement.db"
    assert len(settings.secret_key) == 64
    assert (tmp_path / "secret_key").stat().st_mode & 0o777 == 0o600
    again = Settings.from_env({"ENABLEMENT_INSTANCE_PATH": str(tmp_path)})
    assert again.secret_key == settings.secret_key


def test_environment_values_are_read(tmp_path):
    settings = Settings.from_env(
        {
            "ENABLEMENT_INSTANCE_PATH": str(tmp_path),
            "DATABASE_URL": "postgresql+psycopg://u@h/db",
            "SECRET_KEY": "s3cret-s3cret-s3cret",
            "PUBLIC_BASE_URL": "https://enable.example.com/",
            "HUBSPOT_RATE_LIMIT": "190/10s",
            "HUBSPOT_WRITEBACK": "notes",
            "RECOMMENDATION_HOLDOUT": "0.1",
            "PRODUCT_TERMS": "Acme Cloud, Acme Insights ,",
        }
    )
    assert settings.database_url == "postgresql+psycopg://u@h/db"
    assert settings.secret_key == "s3cret-s3cret-s3cret"
    assert settings.public_base_url == "https://enable.example.com"
    assert settings.hubspot_rate_limit == (190, 10.0)
    assert settings.hubspot_writeback == "notes"
    assert settings.recommendation_holdout == 0.1
    assert settings.product_terms == ("Acme Cloud", "Acme Insights")


@pytest.mark.parametrize("text", ["", "100", "100/0s", "0/10s", "ten/10s", "100/10m"])
def test_a_bad_rate_limit_is_a_clear_error(text):
    with pytest.raises(InvalidInput, match="HUBSPOT_RATE_LIMIT"):
        parse_rate_limit(text)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("RECOMMENDATION_HOLDOUT", "1.5"),
        ("RECOMMENDATION_HOLDOUT", "a lot"),
        ("HUBSPOT_WRITEBACK", "yes"),
    ],
)
def test_bad_values_name_their_variable(tmp_path, name, value):
    with pytest.raises(InvalidInput, match=name):
        Settings.from_env({"ENABLEMENT_INSTANCE_PATH": str(tmp_path), name: value})


@pytest.mark.parametrize(
    ("name", "value", "allowed"),
    [
        ("COVERAGE_MIN_ASSETS", "abc", "whole number from 0 to 1000"),
        ("COVERAGE_MIN_ASSETS", "-1", "whole number from 0 to 1000"),
        ("COVERAGE_MIN_ASSETS", "2.5", "whole number"),
        ("PORT", "0", "from 1 to 65535"),
        ("PORT", "http", "from 1 to 65535"),
        ("DATABASE_URL", "not a url", "SQLite or PostgreSQL"),
        ("DATABASE_URL", "mysql://u@h/db", "'mysql' backend"),
        ("DATABASE_URL", "postgresql+nodriver://u@h/db", "not installed"),
        ("PUBLIC_BASE_URL", "ftp://x", "http(s)"),
        ("PUBLIC_BASE_URL", "enable.example.com", "http(s)"),
        ("PUBLIC_BASE_URL", "https://u:pw@enable.example.com", "user and password"),
        ("PUBLIC_BASE_URL", "https://enable.example.com/?a=1", "query or fragment"),
        ("PUBLIC_BASE_URL", "https://enable.example.com/#top", "query or fragment"),
        ("PUBLIC_BASE_URL", "https://enable.example.com:99999", "malformed"),
        ("HUBSPOT_API_BASE", "file:///etc", "http(s)"),
        ("HUBSPOT_INDUSTRY_PROPERTY", "in dustry", "property name"),
        ("HUBSPOT_PERSONAS_PROPERTY", "a;b", "property name"),
        ("HUBSPOT_TOPICS_PROPERTY", "x" * 101, "property name"),
        ("SECRET_KEY", "short", "at least 16 printable characters"),
        ("HUBSPOT_PORTAL_ID", "my-portal", "account id"),
        ("HUBSPOT_API_VERSION", "2026-04", "March or September"),
        ("HUBSPOT_API_VERSION", "v4", "or v3"),
        ("HUBSPOT_API_VERSION", "latest", "date version"),
        ("SECRET_KEY", "long enough but\x00with a NUL", "at least 16 printable characters"),
        ("JOB_QUEUE", "celery", "redis, embedded, inline"),
        ("JOB_QUEUE", "redis", "needs REDIS_URL"),
        ("REPORT_QUEUE", "process", "thread, inline"),
        ("JOBS_NAMESPACE", "a b", "letters, digits"),
        ("JOBS_HEARTBEAT_TIMEOUT", "1", "from 5 to 86400"),
        ("JOBS_MIN_BACKOFF", "0", "from 1 to 3600"),
        ("WORKER_THREADS", "0", "from 1 to 64"),
        ("WORKER_PROCESSES", "many", "whole number"),
        ("SYNC_EVERY_MINUTES", "-5", "from 0 to 10080"),
    ],
)
def test_every_bad_setting_names_its_variable_and_what_is_allowed(tmp_path, name, value, allowed):
    with pytest.raises(InvalidInput) as raised:
        Settings.from_env({"ENABLEMENT_INSTANCE_PATH": str(tmp_path), name: value})
    assert raised.value.message.startswith(name)
    assert allowed in raised.value.message
    assert "\n" not in raised.value.message


def test_a_database_password_is_never_echoed(tmp_path):
    with pytest.raises(InvalidInput) as raised:
        Settings.from_env(
            {"ENABLEMENT_INSTANCE_PATH": str(tmp_path), "DATABASE_URL": "mysql://u:hunter2@h/db"}
        )
    assert "hunter2" not in raised.value.message
    with pytest.raises(InvalidInput) as raised:
        Settings.from_env(
            {"ENABLEMENT_INSTANCE_PATH": str(tmp_path), "PUBLIC_BASE_URL": "https://u:hunter2@x"}
        )
    assert "hunter2" not in raised.value.message
    with pytest.raises(InvalidInput) as raised:
        Settings.from_env({"ENABLEMENT_INSTANCE_PATH": str(tmp_path), "SECRET_KEY": "hunter2"})
    assert "hunter2" not in raised.value.message


def test_an_instance_folder_that_cannot_be_written_is_a_clear_error(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(InvalidInput, match="ENABLEMENT_INSTANCE_PATH must be a folder"):
        Settings.from_env({"ENABLEMENT_INSTANCE_PATH": str(blocker / "instance")})


def test_the_port_sets_the_default_public_base_url(tmp_path):
    settings = Settings.from_env({"ENABLEMENT_INSTANCE_PATH": str(tmp_path), "PORT": "8080"})
    assert settings.port == 8080
    assert settings.public_base_url == "http://127.0.0.1:8080"
    assert settings.public_base_url_set is False
    given = Settings.from_env(
        {
            "ENABLEMENT_INSTANCE_PATH": str(tmp_path),
            "PORT": "8080",
            "PUBLIC_BASE_URL": "https://enable.example.com/prefix/",
        }
    )
    assert given.public_base_url == "https://enable.example.com/prefix"
    assert given.public_base_url_set is True


def test_good_edge_values_are_accepted(tmp_path):
    settings = Settings.from_env(
        {
            "ENABLEMENT_INSTANCE_PATH": str(tmp_path),
            "COVERAGE_MIN_ASSETS": " 0 ",
            "PORT": "65535",
            "DATABASE_URL": "sqlite:///" + str(tmp_path / "x.db"),
            "HUBSPOT_API_BASE": "http://127.0.0.1:8765/",
        }
    )
    assert settings.coverage_min_assets == 0
    assert settings.hubspot_api_base == "http://127.0.0.1:8765"


def test_the_hubspot_api_version_defaults_to_the_current_date_version_and_v3_stays_selectable(
    tmp_path,
):
    base = {"ENABLEMENT_INSTANCE_PATH": str(tmp_path)}
    assert Settings.from_env(base).hubspot_api_version == "2026-09"
    assert Settings.from_env({**base, "HUBSPOT_API_VERSION": " 2026-03 "}).hubspot_api_version == (
        "2026-03"
    )
    assert Settings.from_env({**base, "HUBSPOT_API_VERSION": "V3"}).hubspot_api_version == "v3"


@pytest.mark.parametrize(
    "name", ["recommendation_effects_max_age", "recommendation_assets_check_every"]
)
@pytest.mark.parametrize("value", [timedelta(seconds=-1), 5])
def test_a_recommendation_cache_timing_must_be_a_duration_of_zero_or_more(tmp_path, name, value):
    settings = Settings.from_env({"ENABLEMENT_INSTANCE_PATH": str(tmp_path)})
    assert getattr(settings.with_overrides(**{name: timedelta(0)}), name) == timedelta(0)
    with pytest.raises(InvalidInput, match=f"{name} must be a duration of zero or more"):
        settings.with_overrides(**{name: value})


def test_the_job_queue_follows_redis_and_reads_the_earlier_report_queue(tmp_path):
    base = {"ENABLEMENT_INSTANCE_PATH": str(tmp_path)}
    assert Settings.from_env(base).job_queue == "embedded"
    redis = {**base, "REDIS_URL": "redis://127.0.0.1:6379/0"}
    assert Settings.from_env(redis).job_queue == "redis"
    assert Settings.from_env({**redis, "JOB_QUEUE": "embedded"}).job_queue == "embedded"
    assert Settings.from_env({**base, "REPORT_QUEUE": "thread"}).job_queue == "embedded"
    assert Settings.from_env({**base, "REPORT_QUEUE": "inline"}).job_queue == "inline"
    tuned = Settings.from_env({**base, "JOBS_HEARTBEAT_TIMEOUT": "30", "WORKER_THREADS": "4"})
    assert (tuned.jobs_lease.total_seconds(), tuned.worker_threads) == (30, 4)
