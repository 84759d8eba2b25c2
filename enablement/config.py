"""Settings: the only module that reads the environment."""

from __future__ import annotations

import os
import re
import secrets
import tempfile
from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

from enablement.errors import InvalidInput

DEFAULT_INSTANCE = Path(__file__).resolve().parent.parent / "instance"
_PROPERTY = re.compile(r"[A-Za-z0-9_]{1,100}")
DEFAULT_PORT = 5000
MIN_SECRET_KEY = 16
SECRET_KEY_FILE = "secret_key"  # noqa: S105 (a file name, not a key)
# Connections per process: SQLAlchemy's own defaults, kept when the settings are not given.
DEFAULT_POOL_SIZE = 5
DEFAULT_MAX_OVERFLOW = 10
_RATE = re.compile(r"^\s*(\d+)\s*/\s*(\d+(?:\.\d+)?)\s*s\s*$")
# HubSpot's current date-based API version (a new one each March and September, supported for
# 18 months); "v3" selects the legacy numbered paths until HubSpot stops answering them.
HUBSPOT_API_VERSION = "2026-09"
_API_VERSION = re.compile(r"v3|20[0-9]{2}-(03|09)")


def parse_rate_limit(text: str) -> tuple[int, float]:
    """Parse '100/10s' into (requests, window seconds)."""
    match = _RATE.match(text or "")
    if not match or int(match.group(1)) < 1 or float(match.group(2)) <= 0:
        raise InvalidInput(f"HUBSPOT_RATE_LIMIT must look like '100/10s', got {text!r}")
    return int(match.group(1)), float(match.group(2))


# Where background work runs: "redis" (Dramatiq on REDIS_URL; `enablement worker` processes),
# "embedded" (Dramatiq in the server's own process, no extra service) or "inline" (in the caller).
JOB_QUEUES = ("redis", "embedded", "inline")
# REPORT_QUEUE, the earlier name: "thread" meant the background of the server process.
_REPORT_QUEUE_ALIASES = {"thread": "", "inline": "inline"}
# Nudges on entering a buying stage (docs/nudges.md): how they reach the deal owner.
NUDGE_DELIVERIES = ("off", "task", "note", "webhook")


def _choice(name: str, text: str, allowed: tuple[str, ...]) -> str:
    """One of the allowed words (case-insensitive) or a clear error naming the variable."""
    value = text.strip().lower()
    if value not in allowed:
        raise InvalidInput(f"{name} must be one of {', '.join(allowed)}, got {text[:40]!r}")
    return value


def _job_queue(env: dict[str, str]) -> str:
    """JOB_QUEUE, or the earlier REPORT_QUEUE ("thread" is today's default); "" for the default."""
    if env.get("JOB_QUEUE"):
        return _choice("JOB_QUEUE", env["JOB_QUEUE"], JOB_QUEUES)
    if env.get("REPORT_QUEUE"):
        return _REPORT_QUEUE_ALIASES[
            _choice("REPORT_QUEUE", env["REPORT_QUEUE"], tuple(_REPORT_QUEUE_ALIASES))
        ]
    return ""


def _split(text: str | None) -> tuple[str, ...]:
    """Split a comma-separated setting into trimmed non-empty parts."""
    return tuple(part.strip() for part in (text or "").split(",") if part.strip())


def _fraction(name: str, text: str) -> float:
    """Parse a number in [0, 1] or raise a clear error naming the variable."""
    try:
        value = float(text)
    except ValueError:
        raise InvalidInput(f"{name} must be a number between 0 and 1, got {text!r}") from None
    if not 0 <= value <= 1:
        raise InvalidInput(f"{name} must be between 0 and 1, got {text!r}")
    return value


def _integer(name: str, text: str, low: int, high: int) -> int:
    """Parse a whole number in [low, high] or raise a clear error naming the variable."""
    allowed = f"{name} must be a whole number from {low} to {high}"
    try:
        value = int(text.strip())
    except ValueError:
        raise InvalidInput(f"{allowed}, got {text[:40]!r}") from None
    if not low <= value <= high:
        raise InvalidInput(f"{allowed}, got {value}")
    return value


def _duration(name: str, value: object) -> timedelta:
    """A timedelta of zero or more, else a clear error naming the setting."""
    if not isinstance(value, timedelta) or value < timedelta(0):
        raise InvalidInput(f"{name} must be a duration of zero or more, got {value!r:.40}")
    return value


def _web_url(name: str, text: str, *, allow_path: bool = True) -> str:
    """An http(s) URL with a host and nothing that would leak or be dropped (credentials, query)."""
    allowed = f"{name} must be an http(s) URL with a host and no user, query or fragment"
    try:
        parts = urlsplit(text.strip())
        parts.port  # noqa: B018 (a malformed port raises here)
    except ValueError:
        raise InvalidInput(f"{allowed}, got a malformed URL") from None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        # NOTE: only the scheme is echoed: the value may hold a password.
        raise InvalidInput(f"{allowed}, got scheme {parts.scheme or 'none'!r}")
    if parts.username is not None or parts.password is not None:
        raise InvalidInput(f"{allowed}; remove the user and password")
    if parts.query or parts.fragment or text.strip().endswith(("?", "#")):
        raise InvalidInput(f"{allowed}; remove the query or fragment")
    if not allow_path and parts.path.strip("/"):
        raise InvalidInput(f"{allowed} and no path")
    return text.strip().rstrip("/")


def _database_url(text: str) -> str:
    """A SQLAlchemy URL of SQLite or PostgreSQL; the value is never echoed (it may hold a password)."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    allowed = (
        "DATABASE_URL must be a SQLAlchemy URL of SQLite or PostgreSQL, "
        "e.g. sqlite:////path/enablement.db or postgresql+psycopg://user@host/db"
    )
    text = _with_installed_driver(text.strip())
    try:
        url = make_url(text)
    except (ArgumentError, ValueError):
        raise InvalidInput(f"{allowed}; the value given is not a URL") from None
    backend = url.get_backend_name()
    if backend not in ("sqlite", "postgresql"):
        raise InvalidInput(f"{allowed}; got the {backend!r} backend")
    try:
        url.get_dialect()
    except NoSuchModuleError:
        raise InvalidInput(f"{allowed}; the driver {url.drivername!r} is not installed") from None
    if backend == "postgresql" and not (url.host or url.query.get("host")) and not url.database:
        raise InvalidInput(f"{allowed}; no host or database given")
    return text


def _with_installed_driver(text: str) -> str:
    """A plain postgresql:// (or Heroku-style postgres://) URL names the installed driver, psycopg 3.

    NOTE: SQLAlchemy reads the plain scheme as psycopg2, which is not installed.
    """
    for plain in ("postgresql://", "postgres://"):
        if text.startswith(plain):
            return "postgresql+psycopg://" + text[len(plain) :]
    return text


_NEW_KEY = "e.g. python3 -c 'import secrets; print(secrets.token_hex(32))'"


def _secret_key(text: str) -> str:
    """A given SECRET_KEY, long enough to sign links; never echoed in the message."""
    if text and (len(text) < MIN_SECRET_KEY or not text.isprintable()):
        raise InvalidInput(
            f"SECRET_KEY must be at least {MIN_SECRET_KEY} printable characters "
            f"({_NEW_KEY}), or unset with the embedded SQLite to generate one into the "
            "instance folder"
        )
    return text


def _redis_url(text: str | None) -> str | None:
    """REDIS_URL: a redis:// or rediss:// URL with a host, or None; never echoed (it may hold a password)."""
    text = (text or "").strip()
    if not text:
        return None
    allowed = (
        "REDIS_URL must be a redis:// or rediss:// URL with a host, e.g. redis://127.0.0.1:6379/0"
    )
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 (a malformed port raises here)
    except ValueError:
        raise InvalidInput(f"{allowed}; the value given is malformed") from None
    if parts.scheme.lower() not in ("redis", "rediss") or not parts.hostname:
        raise InvalidInput(f"{allowed}; got scheme {parts.scheme or 'none'!r}")
    database = parts.path.strip("/")
    if database and not (database.isascii() and database.isdigit()):
        raise InvalidInput(f"{allowed}; the path must be a database number")
    return text


def _property_name(name: str, text: str) -> str:
    """A HubSpot property's internal name: letters, digits and underscores."""
    if not _PROPERTY.fullmatch(text):
        raise InvalidInput(
            f"{name} must be a HubSpot property name (letters, digits, _; at most 100), "
            f"got {text[:40]!r}"
        )
    return text


def _namespace(text: str) -> str:
    """JOBS_NAMESPACE: a Redis key prefix of letters, digits, '.', '_' and '-'."""
    if not re.fullmatch(r"[A-Za-z0-9._-]{1,64}", text):
        raise InvalidInput(
            f"JOBS_NAMESPACE must be 1-64 letters, digits, '.', '_' or '-', got {text[:40]!r}"
        )
    return text


def _api_version(text: str) -> str:
    """HUBSPOT_API_VERSION: a HubSpot date version (YYYY-03 or YYYY-09) or v3."""
    value = text.strip().lower()
    if not _API_VERSION.fullmatch(value):
        raise InvalidInput(
            "HUBSPOT_API_VERSION must be a HubSpot date version such as "
            f"{HUBSPOT_API_VERSION} (March or September) or v3, got {text[:40]!r}"
        )
    return value


def _portal_id(text: str | None) -> str | None:
    """HUBSPOT_PORTAL_ID: a HubSpot account id (digits), or None when not set."""
    text = (text or "").strip()
    if text and not (text.isascii() and text.isdigit() and len(text) <= 20):
        raise InvalidInput(
            f"HUBSPOT_PORTAL_ID must be a HubSpot account id (digits), got {text[:40]!r}"
        )
    return text or None


def _load_secret_key(instance_path: Path) -> str:
    """Read the generated secret key from the instance folder, creating it once."""
    path = instance_path / SECRET_KEY_FILE
    try:
        if not path.exists():
            _publish_new_key(path)
        key = path.read_text().strip()
    except OSError as e:
        raise _unwritable(instance_path, e) from None
    if len(key) < MIN_SECRET_KEY:
        raise InvalidInput(
            f"the generated secret key {path} is damaged (too short): delete it to make a new "
            "one (links shared with the old key stop working), or set SECRET_KEY"
        )
    return key


def _publish_new_key(path: Path) -> None:
    """Write a new key in full to a private temporary file, then link it into place unless one is there.

    NOTE: a reader sees no key file or a complete one, never an empty or partial one (the old
    create-then-write left a moment with an empty file). os.link fails when the name exists, so
    when several processes start together exactly one key wins and every process reads it.
    """
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)  # mode 600
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_hex(32))
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(temporary, path)
        except FileExistsError:
            pass  # another process published its key first: that one is read
    finally:
        os.unlink(temporary)


def _unwritable(instance_path: Path, error: OSError) -> InvalidInput:
    """The one-line error for an instance folder that cannot be used."""
    return InvalidInput(
        f"ENABLEMENT_INSTANCE_PATH must be a folder this user can write to; "
        f"{instance_path}: {error.strerror or error}"
    )


def _writable_folder(instance_path: Path) -> None:
    """Create the instance folder if needed and check that files can be created in it."""
    try:
        instance_path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise _unwritable(instance_path, e) from None
    if not os.access(instance_path, os.W_OK | os.X_OK):
        raise _unwritable(instance_path, PermissionError(13, "Permission denied"))


@dataclass(frozen=True)
class Settings:
    """Everything the service is configured with; built once, passed everywhere."""

    instance_path: Path = DEFAULT_INSTANCE
    database_url: str = ""
    secret_key: str = ""
    public_base_url: str = "http://127.0.0.1:5000"
    # False when PUBLIC_BASE_URL was not given: `serve` then puts its own host and port in links.
    public_base_url_set: bool = False
    port: int = DEFAULT_PORT
    hubspot_access_token: str | None = None
    hubspot_client_secret: str | None = None
    # The HubSpot account (portal) whose app-card requests are accepted.
    hubspot_portal_id: str | None = None
    hubspot_api_base: str = "https://api.hubapi.com"
    hubspot_api_version: str = HUBSPOT_API_VERSION
    hubspot_rate_limit: tuple[int, float] = (100, 10.0)
    hubspot_writeback: str = "off"
    hubspot_industry_property: str = "industry"
    hubspot_personas_property: str = "personas"
    hubspot_topics_property: str = "topics"
    recommendation_holdout: float = 0.0
    # How long a process reuses its read of the effectiveness report's effects: a newly computed
    # report reaches recommendations within this time, and a request skips a transaction.
    recommendation_effects_max_age: timedelta = timedelta(seconds=5)
    # How often a process re-reads the assets' fingerprint: an asset change (a new piece, a
    # retirement) reaches recommendations within this time; a share of a piece retired meanwhile
    # is still refused by the share rule.
    recommendation_assets_check_every: timedelta = timedelta(seconds=2)
    product_terms: tuple[str, ...] = ()
    coverage_min_assets: int = 2
    max_body_bytes: int = 5 * 1024 * 1024
    # Where background work runs (JOB_QUEUES). Unset: "inline" when testing, else "redis" with
    # REDIS_URL and "embedded" without.
    job_queue: str = ""
    # The job engine's key prefix in Redis: processes with the same one share one queue.
    jobs_namespace: str = "enablement"
    # A running job whose worker has not said it is alive for this long is run again elsewhere.
    jobs_lease: timedelta = timedelta(seconds=60)
    # The first retry of a failed job waits this long, each next one twice as long (at most 1 h).
    jobs_min_backoff: timedelta = timedelta(seconds=15)
    worker_processes: int = 1
    worker_threads: int = 2
    # `enablement scheduler` runs an incremental HubSpot sync this often; 0: never.
    sync_every_minutes: int = 15
    # The shared store of every process and host (Redis); None: each process keeps its own.
    redis_url: str | None = None
    # PostgreSQL connections per process: kept open, and opened beyond those at busy moments.
    database_pool_size: int = DEFAULT_POOL_SIZE
    database_max_overflow: int = DEFAULT_MAX_OVERFLOW
    # Nudges (docs/nudges.md): delivery off|task|note|webhook, an optional signed outgoing
    # webhook, how old a stage entry may be and still be nudged, pieces per nudge, attempts.
    nudges: str = "off"
    nudge_webhook_url: str | None = None
    nudge_webhook_secret: str | None = None
    nudge_window: timedelta = timedelta(days=1)
    nudge_limit: int = 3
    nudge_max_attempts: int = 5
    # Hostile timing (docs/operating.md "Slow clients", docs/webhooks.md "Clock skew"): seconds a
    # client has for its request headers and for its body under the shipped gunicorn worker, and
    # how far past this host's clock an event's own time may be before it is rejected.
    request_header_timeout: int = 10
    request_body_timeout: int = 30
    webhook_future_skew: timedelta = timedelta(minutes=5)
    check_schema: bool = True
    testing: bool = False
    extra: dict = field(default_factory=dict)

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None, **overrides) -> Settings:
        """Build settings from environment variables (and an optional .env file)."""
        if environ is None:
            from dotenv import dotenv_values

            environ = {**dotenv_values(".env"), **os.environ}
        env = {k: v for k, v in environ.items() if v is not None}
        instance_path = Path(env.get("ENABLEMENT_INSTANCE_PATH") or DEFAULT_INSTANCE)
        writeback = env.get("HUBSPOT_WRITEBACK", "off").strip().lower() or "off"
        if writeback not in {"off", "notes"}:
            raise InvalidInput(f"HUBSPOT_WRITEBACK must be 'off' or 'notes', got {writeback!r}")
        port = _integer("PORT", env.get("PORT") or str(DEFAULT_PORT), 1, 65535)
        given_base = (env.get("PUBLIC_BASE_URL") or "").strip()
        settings = cls(
            instance_path=instance_path,
            database_url=_database_url(env["DATABASE_URL"]) if env.get("DATABASE_URL") else "",
            secret_key=_secret_key(env.get("SECRET_KEY") or ""),
            public_base_url=(
                _web_url("PUBLIC_BASE_URL", given_base)
                if given_base
                else f"http://127.0.0.1:{port}"
            ),
            public_base_url_set=bool(given_base),
            port=port,
            hubspot_access_token=env.get("HUBSPOT_ACCESS_TOKEN") or None,
            hubspot_client_secret=env.get("HUBSPOT_CLIENT_SECRET") or None,
            hubspot_portal_id=_portal_id(env.get("HUBSPOT_PORTAL_ID")),
            hubspot_api_base=_web_url(
                "HUBSPOT_API_BASE", env.get("HUBSPOT_API_BASE") or "https://api.hubapi.com"
            ),
            hubspot_api_version=_api_version(env.get("HUBSPOT_API_VERSION") or HUBSPOT_API_VERSION),
            hubspot_rate_limit=parse_rate_limit(env.get("HUBSPOT_RATE_LIMIT") or "100/10s"),
            hubspot_writeback=writeback,
            hubspot_industry_property=_property_name(
                "HUBSPOT_INDUSTRY_PROPERTY", env.get("HUBSPOT_INDUSTRY_PROPERTY") or "industry"
            ),
            hubspot_personas_property=_property_name(
                "HUBSPOT_PERSONAS_PROPERTY", env.get("HUBSPOT_PERSONAS_PROPERTY") or "personas"
            ),
            hubspot_topics_property=_property_name(
                "HUBSPOT_TOPICS_PROPERTY", env.get("HUBSPOT_TOPICS_PROPERTY") or "topics"
            ),
            recommendation_holdout=_fraction(
                "RECOMMENDATION_HOLDOUT", env.get("RECOMMENDATION_HOLDOUT") or "0"
            ),
            product_terms=_split(env.get("PRODUCT_TERMS")),
            coverage_min_assets=_integer(
                "COVERAGE_MIN_ASSETS", env.get("COVERAGE_MIN_ASSETS") or "2", 0, 1000
            ),
            job_queue=_job_queue(env),
            jobs_namespace=_namespace(env.get("JOBS_NAMESPACE") or "enablement"),
            jobs_lease=timedelta(
                seconds=_integer(
                    "JOBS_HEARTBEAT_TIMEOUT", env.get("JOBS_HEARTBEAT_TIMEOUT") or "60", 5, 86400
                )
            ),
            jobs_min_backoff=timedelta(
                seconds=_integer("JOBS_MIN_BACKOFF", env.get("JOBS_MIN_BACKOFF") or "15", 1, 3600)
            ),
            worker_processes=_integer(
                "WORKER_PROCESSES", env.get("WORKER_PROCESSES") or "1", 1, 64
            ),
            worker_threads=_integer("WORKER_THREADS", env.get("WORKER_THREADS") or "2", 1, 64),
            sync_every_minutes=_integer(
                "SYNC_EVERY_MINUTES", env.get("SYNC_EVERY_MINUTES") or "15", 0, 10080
            ),
            redis_url=_redis_url(env.get("REDIS_URL")),
            database_pool_size=_integer(
                "DATABASE_POOL_SIZE",
                env.get("DATABASE_POOL_SIZE") or str(DEFAULT_POOL_SIZE),
                1,
                1000,
            ),
            database_max_overflow=_integer(
                "DATABASE_MAX_OVERFLOW",
                env.get("DATABASE_MAX_OVERFLOW") or str(DEFAULT_MAX_OVERFLOW),
                0,
                1000,
            ),
            nudges=_choice("NUDGES", env.get("NUDGES") or "off", NUDGE_DELIVERIES),
            nudge_webhook_url=(
                _web_url("NUDGE_WEBHOOK_URL", env["NUDGE_WEBHOOK_URL"])
                if env.get("NUDGE_WEBHOOK_URL")
                else None
            ),
            nudge_webhook_secret=env.get("NUDGE_WEBHOOK_SECRET") or None,
            nudge_window=timedelta(
                hours=_integer("NUDGE_WINDOW_HOURS", env.get("NUDGE_WINDOW_HOURS") or "24", 0, 8760)
            ),
            nudge_limit=_integer("NUDGE_LIMIT", env.get("NUDGE_LIMIT") or "3", 1, 10),
            nudge_max_attempts=_integer(
                "NUDGE_MAX_ATTEMPTS", env.get("NUDGE_MAX_ATTEMPTS") or "5", 1, 50
            ),
            request_header_timeout=_integer(
                "REQUEST_HEADER_TIMEOUT", env.get("REQUEST_HEADER_TIMEOUT") or "10", 1, 300
            ),
            request_body_timeout=_integer(
                "REQUEST_BODY_TIMEOUT", env.get("REQUEST_BODY_TIMEOUT") or "30", 1, 3600
            ),
            webhook_future_skew=timedelta(
                seconds=_integer(
                    "WEBHOOK_FUTURE_SKEW", env.get("WEBHOOK_FUTURE_SKEW") or "300", 0, 86400
                )
            ),
        )
        return settings.with_overrides(**overrides)

    def with_overrides(self, **overrides) -> Settings:
        """Return a copy with overrides applied and derived defaults filled in."""
        settings = replace(self, **overrides)
        for name in (
            "recommendation_effects_max_age",
            "recommendation_assets_check_every",
            "nudge_window",
        ):
            _duration(name, getattr(settings, name))
        if settings.nudge_webhook_url and not settings.nudge_webhook_secret:
            raise InvalidInput("NUDGE_WEBHOOK_URL needs NUDGE_WEBHOOK_SECRET to sign its requests")
        if settings.nudges == "webhook" and not settings.nudge_webhook_url:
            raise InvalidInput("NUDGES=webhook needs NUDGE_WEBHOOK_URL")
        if not settings.secret_key and settings.database_url and not settings.is_sqlite:
            # NOTE: a key generated per host would sign links, sessions and CSRF tokens that the
            # other hosts (and the next host after a move) reject.
            raise InvalidInput(
                "SECRET_KEY must be set when the database is not the embedded SQLite: every "
                f"process and host of the service must sign with the same key ({_NEW_KEY})"
            )
        if not settings.database_url or not settings.secret_key:
            # NOTE: only then is the instance folder used; checked here for a one-line error.
            _writable_folder(settings.instance_path)
        if not settings.database_url:
            db_file = settings.instance_path / "enablement.db"
            settings = replace(settings, database_url=f"sqlite:///{db_file}")
        if not settings.secret_key:
            settings = replace(settings, secret_key=_load_secret_key(settings.instance_path))
        if not settings.job_queue:
            # NOTE: like Celery's "always eager": a test sees the report in the first answer.
            default = "redis" if settings.redis_url else "embedded"
            settings = replace(settings, job_queue="inline" if settings.testing else default)
        if settings.job_queue not in JOB_QUEUES:
            raise InvalidInput(f"JOB_QUEUE must be one of {', '.join(JOB_QUEUES)}")
        if settings.job_queue == "redis" and not settings.redis_url:
            raise InvalidInput("JOB_QUEUE=redis needs REDIS_URL (the broker every worker reads)")
        return settings

    @property
    def is_sqlite(self) -> bool:
        """True when the database is an embedded SQLite file."""
        return self.database_url.startswith("sqlite")
