"""The test Redis (TEST_REDIS_URL) and a key prefix per test, removed afterwards."""

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest


def redis_url_or_skip() -> str:
    """TEST_REDIS_URL, or skip like the PostgreSQL lane when it is not set."""
    url = os.environ.get("TEST_REDIS_URL")
    if not url:
        pytest.skip("TEST_REDIS_URL is not set (e.g. redis://127.0.0.1:6379/15)")
    return url


@contextmanager
def private_secret_key(url: str) -> Iterator[str]:
    """A SECRET_KEY of the test's own (so its shared-store keys are its own); its keys dropped after."""
    from enablement import shared_store

    key = f"test-secret-{uuid.uuid4().hex}"
    try:
        yield key
    finally:
        client = shared_store.client(url)
        prefix = shared_store.app_prefix(key)
        stale = list(client.scan_iter(match=prefix + "*", count=1000))
        if stale:
            client.delete(*stale)
