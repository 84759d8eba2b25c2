"""The store every process and host of the service shares (Redis at REDIS_URL): clients and key names."""

from __future__ import annotations

import hashlib
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import redis

# A shared store that does not answer is given up on after this long: it is a fallback and a
# budget, never a reason for a request to hang.
CONNECT_TIMEOUT_SECONDS = 1.0
COMMAND_TIMEOUT_SECONDS = 2.0

_CLIENTS: dict[str, redis.Redis] = {}
_CLIENTS_LOCK = threading.Lock()


def store_errors() -> tuple[type[Exception], ...]:
    """What a shared store that is down, unreachable or refusing raises."""
    import redis

    return (redis.RedisError, OSError)


def client(url: str) -> redis.Redis:
    """The process's client for this URL (one connection pool per URL, safe across threads and forks)."""
    # NOTE: imported here so that an app without REDIS_URL never loads redis-py.
    import redis

    with _CLIENTS_LOCK:
        if url not in _CLIENTS:
            _CLIENTS[url] = redis.Redis.from_url(
                url,
                socket_connect_timeout=CONNECT_TIMEOUT_SECONDS,
                socket_timeout=COMMAND_TIMEOUT_SECONDS,
                health_check_interval=30,
            )
        return _CLIENTS[url]


def app_prefix(secret_key: str) -> str:
    """The key prefix of one deployment: its hosts share SECRET_KEY, so they share these keys.

    NOTE: derived from the key (never the key itself), so two deployments (staging and
    production) on one Redis never read each other's links or views; links signed with
    another key could not be resolved by this deployment anyway.
    """
    digest = hashlib.sha256(b"enablement-shared-store\0" + secret_key.encode("utf-8"))
    return f"enablement:{digest.hexdigest()[:16]}:"
