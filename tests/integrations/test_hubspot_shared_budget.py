"""One HubSpot budget for every process of an app (REDIS_URL): together they never exceed HubSpot's limit."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import pytest

from enablement import shared_store
from integrations.hubspot.client import HubSpotCrm
from integrations.hubspot.ratelimit import (
    RateLimiter,
    SharedRateLimiter,
    budget_key,
    rate_limiter,
)
from tests.integrations.fake_hubspot import TOKEN, FakeHubSpot, standard_portal
from tests.integrations.test_hubspot_limits import most_in_a_window
from tests.redis_store import redis_url_or_skip

ROOT = Path(__file__).resolve().parents[2]
LIMIT = (12, 1.0)  # requests per second, HubSpot's and each client's


@pytest.fixture
def redis_url():
    """The test Redis, with the fake token's budget emptied before and after."""
    url = redis_url_or_skip()
    client = shared_store.client(url)

    def empty():
        for name in ("all", "search"):
            keys = list(client.scan_iter(match=budget_key(TOKEN, name) + ":*"))
            if keys:
                client.delete(*keys)

    empty()
    yield url
    empty()


@pytest.fixture
def fake():
    """A fake HubSpot enforcing LIMIT that keeps its rate-limit headers to itself.

    NOTE: without the headers no client can learn of the other's requests from HubSpot: only
    a shared budget keeps the two within the limit.
    """
    server = FakeHubSpot(rate_limit=LIMIT, rate_headers=False)
    standard_portal(server)
    server.start()
    yield server
    server.stop()


def fetch_together(clients: list[HubSpotCrm], each: int) -> None:
    """Every client fetches the pipelines `each` times, all at once (like separate processes)."""
    threads = [
        threading.Thread(target=lambda c=c: [c.fetch_pipelines() for _ in range(each)])
        for c in clients
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def test_the_limiter_is_shared_only_with_a_redis_url(redis_url):
    assert isinstance(rate_limiter(LIMIT, None, TOKEN), RateLimiter)
    assert isinstance(rate_limiter(LIMIT, redis_url, TOKEN), SharedRateLimiter)
    assert budget_key(TOKEN, "all") != budget_key("another-app", "all")
    assert TOKEN not in budget_key(TOKEN, "all")


def test_two_clients_sharing_redis_never_exceed_the_limit_together(fake, redis_url):
    clients = [HubSpotCrm(TOKEN, fake.url, rate_limit=LIMIT, redis_url=redis_url) for _ in "ab"]
    fetch_together(clients, 18)  # three windows' worth
    assert fake.rejected == {}
    assert fake.peak_window <= LIMIT[0]
    assert most_in_a_window([r[0] for r in fake.requests()], LIMIT[1]) <= LIMIT[0]
    assert fake.most_in_any_window(LIMIT[1]) <= LIMIT[0]
    assert sum(c.call_counts().calls for c in clients) == 36


def test_without_redis_two_clients_each_spend_the_whole_limit(fake):
    clients = [HubSpotCrm(TOKEN, fake.url, rate_limit=LIMIT) for _ in "ab"]
    fetch_together(clients, 18)
    assert fake.rejected  # what the shared budget prevents: HubSpot answers 429
    # The fake's own sliding count sees the refused requests arrive too.
    assert fake.most_in_any_window(LIMIT[1]) > LIMIT[0]
    assert fake.most_in_any_window(LIMIT[1]) == most_in_a_window(fake.arrived, LIMIT[1])


_PROCESS = """
import sys
from integrations.hubspot.client import HubSpotCrm
crm = HubSpotCrm(sys.argv[1], sys.argv[2], rate_limit=(12, 1.0), redis_url=sys.argv[3])
for _ in range(12):
    crm.fetch_pipelines()
print(crm.call_counts().calls, crm.call_counts().rate_limited)
"""


def test_processes_sharing_redis_never_exceed_the_limit_together(fake, redis_url):
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", _PROCESS, TOKEN, fake.url, redis_url],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    results = [p.communicate(timeout=120) for p in processes]
    assert [p.returncode for p in processes] == [0, 0, 0], [err for _, err in results]
    assert fake.rejected == {}
    assert most_in_a_window([r[0] for r in fake.requests()], LIMIT[1]) <= LIMIT[0]
    assert len(fake.requests()) == 36


def test_hubspots_headers_still_tighten_the_shared_budget(redis_url):
    server = FakeHubSpot(rate_limit=(5, 0.5))
    standard_portal(server)
    server.start()
    try:
        crm = HubSpotCrm(TOKEN, server.url, rate_limit=(1_000, 0.1), redis_url=redis_url)
        for _ in range(12):
            crm.fetch_pipelines()
    finally:
        server.stop()
    assert (crm.limiter.calls, crm.limiter.period) == (5, 0.5)
    assert server.rejected == {}


def test_requests_hubspot_counted_from_elsewhere_take_slots_of_the_shared_budget(redis_url):
    server = FakeHubSpot(rate_limit=(10, 1.0))
    standard_portal(server)
    server.start()
    try:
        server.spend(8)  # another app with the same token, unseen by the budget
        crm = HubSpotCrm(TOKEN, server.url, rate_limit=(10, 1.0), redis_url=redis_url)
        for _ in range(6):
            crm.fetch_pipelines()
    finally:
        server.stop()
    assert crm.limiter.foreign >= 7
    assert server.rejected == {}


def test_a_redis_that_is_down_leaves_each_client_its_own_limiter(fake, caplog):
    import socket

    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        url = f"redis://127.0.0.1:{closed.getsockname()[1]}/0"
        crm = HubSpotCrm(TOKEN, fake.url, rate_limit=LIMIT, redis_url=url)
        for _ in range(LIMIT[0] + 3):
            crm.fetch_pipelines()
    assert fake.rejected == {}  # one client alone, held by its own limiter
    assert crm.limiter.local.waited > 0
    assert "budget not shared" in caplog.text
