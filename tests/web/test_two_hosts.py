"""Two hosts (gunicorn masters) on one PostgreSQL and one Redis behind a round-robin nginx: nothing lives on one host.

Links made through one host open through the other, a session signed in on one host
(and a form's CSRF token) works on the other, and two hosts calling the fake HubSpot at
once (syncs and the deal fetches webhooks start) stay together within its limit. The
hosts are real processes (tests/hosts.py); the fake HubSpot is served over HTTP from this
process.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests
from sqlalchemy import create_engine, func, select
from sqlalchemy.pool import NullPool

from enablement.db.models import Deal, LinkView, Share, WebhookEvent
from integrations.hubspot.signatures import sign_v3
from tests.databases import throwaway_postgres
from tests.hosts import BIN, AppHosts, nginx_available
from tests.integrations.fake_hubspot import (
    CLIENT_SECRET,
    PORTAL_ID,
    FakeHubSpot,
    generate_deals,
    standard_portal,
)
from tests.redis_store import redis_url_or_skip

# HubSpot's limit in the fake and in both hosts' settings: small, so a few requests more
# than one window's worth (the test's whole HubSpot load) takes seconds, not minutes.
LIMIT = 10
WINDOW = 10.0
SYNCED_DEALS = 400  # 8 pages: the sync alone needs more than one window of LIMIT
WEBHOOK_DEALS = list(range(5001, 5009))  # deals only HubSpot knows until a webhook names them
T1 = datetime(2026, 2, 2, 10, 0, tzinfo=UTC)
HTML = {"Accept": "text/html"}
# Views are counted for people, not for link checkers: clicks come from a browser.
BROWSER = {
    "User-Agent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0 Safari/537.36"
}


def _needs(problem: str) -> None:
    """Skip without a prerequisite; in CI (which provides them all) fail instead."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"the two-host tests cannot run in CI: {problem}")
    pytest.skip(problem)


@pytest.fixture(scope="module")
def fake():
    """A fake HubSpot enforcing LIMIT per 10 s that keeps its rate-limit headers to itself.

    NOTE: without the headers no process learns of the others' requests from HubSpot: only
    the budget they share through Redis keeps them within the limit. Its token is this
    run's own, so the shared budget (keyed by the token) is too.
    """
    server = FakeHubSpot(
        token=f"two-hosts-{uuid.uuid4().hex}", rate_limit=(LIMIT, WINDOW), rate_headers=False
    )
    standard_portal(server)
    generate_deals(server, SYNCED_DEALS)
    for deal_id in WEBHOOK_DEALS:
        server.add_deal(
            deal_id,
            [("appointmentscheduled", T1), ("qualifiedtobuy", T1 + timedelta(days=2))],
            dealname=f"Webhook deal {deal_id}",
            hubspot_owner_id="101",
        )
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module", params=["postgresql"])
def farm(fake, tmp_path_factory):
    """Two hosts, two sync workers each, on a fresh PostgreSQL database with demo data, behind nginx."""
    base = os.environ.get("TEST_DATABASE_URL")
    if not base:
        _needs("TEST_DATABASE_URL is not set (.ci/run sets it)")
    redis_url = redis_url_or_skip()
    if not nginx_available():
        _needs("nginx is not installed (apt-get install -y nginx; .ci/run does)")
    settings = {
        "HUBSPOT_ACCESS_TOKEN": fake.token,
        "HUBSPOT_API_BASE": fake.url,
        "HUBSPOT_CLIENT_SECRET": CLIENT_SECRET,
        "HUBSPOT_PORTAL_ID": PORTAL_ID,
        "HUBSPOT_RATE_LIMIT": f"{LIMIT}/{WINDOW:g}s",
        # The job queue of this deployment alone (other tests share the Redis database).
        "JOBS_NAMESPACE": f"two-hosts-{uuid.uuid4().hex[:12]}",
    }
    with throwaway_postgres(base, "enablement_hosts", migrate=False) as url:
        root = tmp_path_factory.mktemp("two-hosts")
        with AppHosts(url, redis_url, root, hosts_count=2, workers=2, settings=settings) as hosts:
            hosts.cli(0, "demo", "--deals", "60", "--assets", "40", "--no-print-tokens")
            # One job worker per host: webhook follow-ups (deal fetches) run there, and their
            # HubSpot calls count against the same shared budget as the syncs.
            for host in (0, 1):
                hosts.spawn(host, "enablement", "worker", "--processes", "1", "--threads", "1")
            yield hosts


@pytest.fixture(scope="module")
def database(farm):
    """An engine on the hosts' database, for checking what they stored."""
    engine = create_engine(farm.database_url, poolclass=NullPool)
    yield engine
    engine.dispose()


@pytest.fixture(scope="module")
def sales_token(farm) -> str:
    """A team sales token (every deal), made with host B's CLI."""
    return farm.cli(1, "tokens", "create", "--role", "sales", "--name", "two hosts").split()[0]


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def open_deal_with_recommendations(base_url: str, token: str) -> tuple[str, dict]:
    """An open demo deal that has recommendations, and its first one."""
    deals = requests.get(
        base_url + "/api/v1/deals", params={"per_page": 50}, headers=bearer(token), timeout=30
    )
    assert deals.status_code == 200
    for item in deals.json()["items"]:
        recs = requests.get(
            f"{base_url}/api/v1/deals/{item['id']}/recommendations",
            headers=bearer(token),
            timeout=30,
        )
        if recs.status_code == 200 and recs.json()["items"]:
            return item["id"], recs.json()["items"][0]
    raise AssertionError("no demo deal has recommendations")


def count(database, model, *where) -> int:
    with database.connect() as conn:
        return conn.execute(select(func.count()).select_from(model).where(*where)).scalar_one()


# -- links ---------------------------------------------------------------------------------


def test_a_link_made_through_one_host_redirects_through_the_other_and_the_proxy(
    farm, database, sales_token
):
    a, b = farm.hosts
    deal_id, rec = open_deal_with_recommendations(a.base_url, sales_token)
    made = requests.post(
        f"{a.base_url}/api/v1/deals/{deal_id}/shares",
        json={"asset_id": rec["asset"]["id"]},
        headers=bearer(sales_token),
        timeout=30,
    )
    assert made.status_code == 201, made.text
    link = made.json()["link"]
    # Links name the address the buyer reaches, the proxy, whichever host made them.
    assert link.startswith(farm.proxy_url + "/l/")
    path = link.removeprefix(farm.proxy_url)
    asset_url = requests.get(
        f"{a.base_url}/api/v1/assets/{rec['asset']['id']}", headers=bearer(sales_token), timeout=30
    ).json()["url"]

    on_b = requests.get(b.base_url + path, headers=BROWSER, allow_redirects=False, timeout=30)
    assert on_b.status_code == 302, on_b.text
    assert on_b.headers["Location"] == asset_url
    through_proxy = [
        requests.get(link, headers=BROWSER, allow_redirects=False, timeout=30) for _ in range(2)
    ]
    assert [r.status_code for r in through_proxy] == [302, 302]
    assert {r.headers["Location"] for r in through_proxy} == {asset_url}
    # Round robin: the two clicks through the proxy were answered by different hosts.
    assert {farm.host_of(r.headers.get("X-Upstream")).name for r in through_proxy} == {
        "host-a",
        "host-b",
    }
    # A token signed with another key (or altered) opens nowhere.
    forged = path[:-4] + ("aaaa" if not path.endswith("aaaa") else "bbbb")
    refused = requests.get(b.base_url + forged, headers=BROWSER, allow_redirects=False, timeout=30)
    assert refused.status_code == 404

    share_id = made.json()["id"]
    deadline = time.monotonic() + 10
    while count(database, LinkView, LinkView.share_id == share_id) < 3:
        assert time.monotonic() < deadline, "three clicks on two hosts did not record 3 views"
        time.sleep(0.2)
    time.sleep(0.5)
    assert count(database, LinkView, LinkView.share_id == share_id) == 3  # each click once


# -- sessions and CSRF -----------------------------------------------------------------------


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "the page has no CSRF token"
    return match.group(1)


def share_form(html: str) -> dict:
    """The fields of the deal page's first share form."""
    form = re.search(r'<form method="post" action="([^"]+/share)">(.*?)</form>', html, re.S)
    assert form, "the deal page has no share form"
    fields = dict(re.findall(r'name="([a-z_]+)" value="([^"]*)"', form.group(2)))
    return {"action": form.group(1), **fields}


def test_a_session_and_a_form_from_one_host_work_on_the_other(farm, database, sales_token):
    a, b = farm.hosts
    browser = (
        requests.Session()
    )  # cookies are per host name, not port: like one site behind a balancer
    signin = browser.get(a.base_url + "/signin", headers=HTML, timeout=30)
    assert signin.status_code == 200
    signed_in = browser.post(
        b.base_url + "/signin",
        data={"token": sales_token, "csrf_token": csrf_of(signin.text), "next": ""},
        allow_redirects=False,
        timeout=30,
    )
    assert signed_in.status_code == 302, signed_in.text[:500]
    for host in (a, b):
        deals = browser.get(
            host.base_url + "/deals", headers=HTML, allow_redirects=False, timeout=30
        )
        assert deals.status_code == 200, f"{host.name}: {deals.status_code}"
    # Without the cookie the same page sends the visitor to sign in, on either host.
    anonymous = requests.get(b.base_url + "/deals", headers=HTML, allow_redirects=False, timeout=30)
    assert anonymous.status_code == 302

    deal_id, _ = open_deal_with_recommendations(a.base_url, sales_token)
    page = browser.get(f"{a.base_url}/deals/{deal_id}", headers=HTML, timeout=30)
    assert page.status_code == 200
    form = share_form(page.text)
    before = count(database, Share, Share.deal_id == deal_id)
    fields = {k: form[k] for k in ("csrf_token", "asset_id", "impression_id")}

    forged = browser.post(
        b.base_url + form["action"],
        data={**fields, "csrf_token": "not-" + fields["csrf_token"]},
        allow_redirects=False,
        timeout=30,
    )
    assert forged.status_code == 400  # B checks CSRF; it does not wave foreign forms through
    assert count(database, Share, Share.deal_id == deal_id) == before

    posted = browser.post(
        b.base_url + form["action"], data=fields, allow_redirects=False, timeout=30
    )
    assert posted.status_code == 302, posted.text[:500]
    assert count(database, Share, Share.deal_id == deal_id) == before + 1
    # The link B flashed into the (signed) session is shown by A.
    shown = browser.get(f"{a.base_url}/deals/{deal_id}", headers=HTML, timeout=30)
    assert farm.proxy_url + "/l/" in shown.text


# -- one HubSpot budget ---------------------------------------------------------------------


def stage_event(event_id: int, deal_id: int) -> dict:
    """A dealstage change of a deal the service has never seen, as HubSpot sends it."""
    return {
        "eventId": event_id,
        "subscriptionId": 12,
        "portalId": int(PORTAL_ID),
        "occurredAt": int((T1 + timedelta(days=2)).timestamp() * 1000),
        "subscriptionType": "deal.propertyChange",
        "objectId": deal_id,
        "propertyName": "dealstage",
        "propertyValue": "qualifiedtobuy",
    }


def post_webhook(farm: AppHosts, events: list[dict]) -> requests.Response:
    """A signed delivery through the proxy (signed for PUBLIC_BASE_URL, as HubSpot signs it)."""
    body = json.dumps(events).encode()
    stamp = str(int(time.time() * 1000))
    url = farm.proxy_url + "/webhooks/hubspot"
    headers = {
        "Content-Type": "application/json",
        "X-HubSpot-Signature-v3": sign_v3(CLIENT_SECRET, "POST", url, body, stamp),
        "X-HubSpot-Request-Timestamp": stamp,
    }
    return requests.post(url, data=body, headers=headers, timeout=30)


def webhook_deals_complete(database) -> bool:
    """Every webhook deal stored with HubSpot's copy, and no event of theirs left waiting."""
    ids = [str(d) for d in WEBHOOK_DEALS]
    with database.connect() as conn:
        names = dict(conn.execute(select(Deal.id, Deal.name).where(Deal.id.in_(ids))).all())
        waiting = conn.execute(
            select(func.count())
            .select_from(WebhookEvent)
            .where(WebhookEvent.object_id.in_(ids), WebhookEvent.status == "pending")
        ).scalar_one()
    return waiting == 0 and all(names.get(d) == f"Webhook deal {d}" for d in ids)


def test_two_hosts_syncing_and_fetching_at_once_stay_within_hubspots_limit_together(
    farm, fake, database
):
    # NOTE: the last test of the module: the full sync replaces the CRM data the others used.
    answers: list[requests.Response] = []
    deliveries = [
        threading.Thread(
            target=lambda n=n, d=d: answers.append(post_webhook(farm, [stage_event(n, d)]))
        )
        for n, d in enumerate(WEBHOOK_DEALS, start=1)
    ]
    syncs = [farm.spawn(n, "enablement", "sync", "--full") for n in (0, 1)]
    for delivery in deliveries:
        delivery.start()
    for delivery in deliveries:
        delivery.join()
    statuses = [sync.wait(timeout=180) for sync in syncs]

    assert [r.status_code for r in answers] == [200] * len(WEBHOOK_DEALS)
    # Both hosts took deliveries, so both hosts' web workers fetch deals from HubSpot.
    assert {farm.host_of(r.headers.get("X-Upstream")).name for r in answers} == {"host-a", "host-b"}
    # One sync per database: the other host's either waited its turn or was refused, in words.
    assert 0 in statuses, [s.output()[-1000:] for s in syncs]
    for sync, status in zip(syncs, statuses, strict=True):
        if status:
            assert "another sync is running" in sync.output(), sync.output()[-1000:]

    # Each delivery named a deal nobody had seen: the hosts ask HubSpot for it after answering
    # (some wait for the next window of the budget), and the sync reads it too.
    deadline = time.monotonic() + 90
    while not webhook_deals_complete(database):
        assert time.monotonic() < deadline, "webhook deals were not completed from HubSpot"
        time.sleep(0.5)
    assert fake.requests("/crm/objects/deals/batch/read")  # the hosts' own fetches
    synced = [str(d) for d in range(1, SYNCED_DEALS + 1)]
    assert count(database, Deal, Deal.id.in_(synced), Deal.deleted_at.is_(None)) == SYNCED_DEALS

    # The load needed more than one window, and the processes of both hosts together (two web
    # workers each, the syncs) never had more than LIMIT requests arrive in any 10 s.
    assert len(fake.arrived) > LIMIT
    assert fake.most_in_any_window(WINDOW) <= LIMIT
    assert fake.rejected == {}


# -- the harness itself ------------------------------------------------------------------------


def alive(pid: int) -> bool:
    """Whether a process runs (a zombie waiting for its parent counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@pytest.mark.parametrize("backend", ["postgresql"])  # left out by --sqlite-only
def test_every_process_is_gone_after_a_failing_block_and_kill_is_sigkill(backend, tmp_path):
    base = os.environ.get("TEST_DATABASE_URL")
    if not base:
        _needs("TEST_DATABASE_URL is not set (.ci/run sets it)")
    if not nginx_available():
        _needs("nginx is not installed (apt-get install -y nginx; .ci/run does)")
    sleeper = ("python", "-c", "import time; time.sleep(600)")
    pids: list[int] = []
    with throwaway_postgres(base, "enablement_hosts") as url:
        with pytest.raises(RuntimeError, match="the test failed"):
            with AppHosts(url, None, tmp_path, hosts_count=2, workers=1) as farm:
                crashed = farm.spawn(0, *sleeper, name="worker 1")
                kept = farm.spawn(1, *sleeper, name="worker 2")
                # Like host B's: the same database, key and public URL.
                assert kept.popen.args[0] == str(BIN / "python")
                crashed.kill()
                assert crashed.poll() == -9  # SIGKILL: no clean-up ran
                assert kept.poll() is None
                pids = [farm.proxy.pid, kept.pid]
                for host in farm.hosts:
                    pids += [host.server.pid, *host.worker_pids()]
                assert len(pids) == 2 + 2 * 2 and all(alive(p) for p in pids)
                raise RuntimeError("the test failed")
    assert not [p for p in pids if alive(p)]
