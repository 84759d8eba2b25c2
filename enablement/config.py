"""Settings: the only module that reads the environment."""

from __future__ import annotations

import os
import re
import secrets
from dataclasses import dataclass, field, replace
from pathlib import Path

from enablement.errors import InvalidInput

DEFAULT_INSTANCE = Path(__file__).resolve().parent.parent / "instance"
_RATE = re.compile(r"^\s*(\d+)\s*/\s*(\d+(?:\.\d+)?)\s*s\s*$")


def parse_rate_limit(text: str) -> tuple[int, float]:
    """Parse '100/10s' into (requests, window seconds)."""
    match = _RATE.match(text or "")
    if not match or int(match.group(1)) < 1 or float(match.group(2)) <= 0:
        raise InvalidInput(f"HUBSPOT_RATE_LIMIT must look like '100/10s', got {text!r}")
    return int(match.group(1)), float(match.group(2))


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


def _load_secret_key(instance_path: Path) -> str:
    """Read the generated secret key from the instance folder, creating it once."""
    path = instance_path / "secret_key"
    if path.exists():
        return path.read_text().strip()
    instance_path.mkdir(parents=True, exist_ok=True)
    key = secrets.token_hex(32)
    # NOTE: O_EXCL so two workers starting at once agree on one key.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(fd, "w") as handle:
        handle.write(key)
    return key


@dataclass(frozen=True)
class Settings:
    """Everything the service is configured with; built once, passed everywhere."""

    instance_path: Path = DEFAULT_INSTANCE
    database_url: str = ""
    secret_key: str = ""
    public_base_url: str = "http://127.0.0.1:5000"
    hubspot_access_token: str | None = None
    hubspot_client_secret: str | None = None
    hubspot_api_base: str = "https://api.hubapi.com"
    hubspot_rate_limit: tuple[int, float] = (100, 10.0)
    hubspot_writeback: str = "off"
    hubspot_industry_property: str = "industry"
    hubspot_personas_property: str = "personas"
    hubspot_topics_property: str = "topics"
    recommendation_holdout: float = 0.0
    product_terms: tuple[str, ...] = ()
    coverage_min_assets: int = 2
    max_body_bytes: int = 5 * 1024 * 1024
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
        settings = cls(
            instance_path=instance_path,
            database_url=env.get("DATABASE_URL") or "",
            secret_key=env.get("SECRET_KEY") or "",
            public_base_url=(env.get("PUBLIC_BASE_URL") or "http://127.0.0.1:5000").rstrip("/"),
            hubspot_access_token=env.get("HUBSPOT_ACCESS_TOKEN") or None,
            hubspot_client_secret=env.get("HUBSPOT_CLIENT_SECRET") or None,
            hubspot_api_base=(env.get("HUBSPOT_API_BASE") or "https://api.hubapi.com").rstrip("/"),
            hubspot_rate_limit=parse_rate_limit(env.get("HUBSPOT_RATE_LIMIT") or "100/10s"),
            hubspot_writeback=writeback,
            hubspot_industry_property=env.get("HUBSPOT_INDUSTRY_PROPERTY") or "industry",
            hubspot_personas_property=env.get("HUBSPOT_PERSONAS_PROPERTY") or "personas",
            hubspot_topics_property=env.get("HUBSPOT_TOPICS_PROPERTY") or "topics",
            recommendation_holdout=_fraction(
                "RECOMMENDATION_HOLDOUT", env.get("RECOMMENDATION_HOLDOUT") or "0"
            ),
            product_terms=_split(env.get("PRODUCT_TERMS")),
            coverage_min_assets=int(env.get("COVERAGE_MIN_ASSETS") or 2),
        )
        return settings.with_overrides(**overrides)

    def with_overrides(self, **overrides) -> Settings:
        """Return a copy with overrides applied and derived defaults filled in."""
        settings = replace(self, **overrides)
        if not settings.database_url:
            db_file = settings.instance_path / "enablement.db"
            settings = replace(settings, database_url=f"sqlite:///{db_file}")
        if not settings.secret_key:
            settings = replace(settings, secret_key=_load_secret_key(settings.instance_path))
        return settings

    @property
    def is_sqlite(self) -> bool:
        """True when the database is an embedded SQLite file."""
        return self.database_url.startswith("sqlite")
