"""HubSpot's limits over real HTTP: pacing from its headers, no 429 whatever the latency, the daily limit, deletions."""

from __future__ import annotations

import io
import math
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from enablement.db.models import Deal, StageChange, SyncState
from enablement.domain.crm import CrmDailyLimit
from enablement.services.sync import CURSOR_KEY, FULL_KEY, sync_crm
from integrations.hubspot.client import HubSpotCrm
from integrations.hubspot.ratelimit import RateLimiter, RetryPolicy, rate_headers
from tests.integrations.fake_hubspot import TOKEN, FakeHubSpot, generate_deals, standard_portal

T0 = datetime(2024, 3, 1, 9, 0, tzinfo=UTC)


def serve(**limits) -> FakeHubSpot:
    """A started fake portal with the given limits."""
    fake = FakeHubSpot(**limits)
    standard_portal(fake)
    fake.start()
    return fake


@pytest.fixture
def servers():
    """Fakes started by a test, stopped after it."""
    started: list[FakeHubSpot] = []
    yield started
    for fake in started:
        fake.stop()


def most_in_a_window(stamps: list[float], period: float) -> int:
    """The most arrivals inside any window of `period` seconds."""
    stamps = sorted(stamps)
    return max((sum(s <= t < s + period for t in stamps) for s in stamps), default=0)


def histories(sessions) -> dict[str, list]:
    """Every stored deal's stage history, oldest first."""
    with sessions() as session:
        out: dict[str, list] = {d: [] for d in session.scalars(select(Deal.id))}
        for deal_id, stage, at in session.execute(
            select(StageChange.deal_id, StageChange.stage_id, StageChange.entered_at).order_by(
                StageChange.deal_id, StageChange.entered_at
            )
        ):
            out[deal_id].append((stage, at))
    return out


def deleted(sessions) -> set[str]:
    """Ids of deals stored as deleted."""
    with sessions() as session:
        return set(session.scalars(select(Deal.id).where(Deal.deleted_at.is_not(None))))


# -- pacing ------------------------------------------------------------------------------


def test_rate_headers_are_read_without_regard_to_case_and_bad_ones_are_ignored():
    good = {
        "x-hubspot-ratelimit-max": "100",
        "X-HUBSPOT-RATELIMIT-REMAINING": "7",
        "X-HubSpot-RateLimit-Interval-Milliseconds": "10000",
    }
    assert rate_headers(good) == (100, 7, 10.0)
    assert rate_headers({**good, "x-hubspot-ratelimit-max": "ten"}) is None
    assert rate_headers({**good, "X-HUBSPOT-RATELIMIT-REMAINING": "101"}) is None
    assert rate_headers({}) is None and rate_headers(None) is None


def test_a_request_waits_for_the_answer_of_the_one_a_full_window_before_it():
    clock = [0.0]
    limiter = RateLimiter(
        2, 10.0, clock=lambda: clock[0], sleep=lambda s: clock.__setitem__(0, clock[0] + s)
    )
    with limiter.slot():
        clock[0] += 3.0  # a slow answer: the request may have arrived at any moment until now
    limiter.acquire()
    limiter.acquire()
    assert clock[0] == pytest.approx(13.0)  # ten seconds after the first answer, not its send


def test_foreign_requests_reported_by_hubspot_make_the_client_wait(servers):
    fake = serve(rate_limit=(10, 1.0))
    servers.append(fake)
    fake.spend(8)  # another process of the same app just used 8 of the 10
    crm = HubSpotCrm(TOKEN, fake.url, rate_limit=(10, 1.0))
    for _ in range(6):
        crm.fetch_pipelines()
    assert fake.rejected == {} and crm.stats.by_status == {}
    # Learnt from the first answer's Remaining. On a slow machine one of our own requests can
    # leave our window before HubSpot's and be counted as foreign too: an overestimate only
    # makes the client wait longer, which is the safe side.
    assert 8 <= crm.limiter.foreign <= 9
    ours = [r[0] for r in fake.requests("/crm/pipelines")]
    assert ours[2] - ours[0] >= 0.9  # the third waited for the foreign ones to leave the window
    assert most_in_a_window([*fake.foreign, *ours], 1.0) <= 10


def test_without_the_headers_the_same_client_is_refused(servers):
    fake = serve(rate_limit=(10, 1.0), rate_headers=False)
    servers.append(fake)
    fake.spend(8)
    crm = HubSpotCrm(TOKEN, fake.url, rate_limit=(10, 1.0), policy=RetryPolicy(max_attempts=6))
    for _ in range(6):
        crm.fetch_pipelines()
    assert fake.rejected.get("TEN_SECONDLY_ROLLING", 0) >= 1  # what the headers prevent


def test_hubspots_tighter_limit_replaces_the_configured_one(servers):
    fake = serve(rate_limit=(5, 0.5))
    servers.append(fake)
    crm = HubSpotCrm(TOKEN, fake.url, rate_limit=(1_000, 0.1))
    for _ in range(12):
        crm.fetch_pipelines()
    assert (crm.limiter.calls, crm.limiter.period) == (5, 0.5)
    assert crm.call_counts().rate == pytest.approx(10.0)
    assert fake.rejected == {}


def test_no_window_holds_more_than_the_limit_whatever_the_latency(servers, sessions):
    # Requests take 0-40 ms to arrive: a limiter that stamps sends would let a late one
    # and an early one of the next window arrive together.
    fake = serve(rate_limit=(6, 0.5), delay=(0.0, 0.04))
    servers.append(fake)
    generate_deals(fake, 600, archived_every=10)
    crm = HubSpotCrm(TOKEN, fake.url, rate_limit=(6, 0.5))
    summary = sync_crm(sessions, crm, full=True)
    assert summary.rate_limited == 0 and fake.rejected == {}
    assert fake.peak_window <= 6
    assert most_in_a_window([r[0] for r in fake.requests()], 0.5) <= 6
    assert summary.deals.created == 600


# -- the daily limit ---------------------------------------------------------------------


def test_the_daily_limit_stops_the_sync_in_one_line_and_the_next_run_resumes_exactly(
    servers, runner, container, sessions
):
    fake = serve(daily_limit=7)  # pipelines, two owner pages, then four deal pages
    servers.append(fake)
    generate_deals(fake, 400, archived_every=8)
    container.crm = HubSpotCrm(TOKEN, fake.url, rate_limit=(1_000, 1.0))

    stopped = runner("sync", "--full")

    assert stopped.exit_code == 1
    assert stopped.stderr.count("\n") == 1  # one line, no traceback, no details
    assert "daily API limit is used up" in stopped.stderr and "resets at midnight" in stopped.stderr
    assert "resumes where it stopped" in stopped.stderr
    assert fake.rejected == {"DAILY": 1}
    assert len(histories(sessions)) == 4 * 50
    with sessions() as session:
        assert session.get(SyncState, FULL_KEY).value["phase"] == "active"
        assert session.get(SyncState, CURSOR_KEY) is None

    fake.daily_limit, fake.daily_used = None, 0  # midnight in the portal's time zone
    before = len(fake.requests("/crm/objects/deals"))
    resumed = runner("sync")

    assert resumed.exit_code == 0, resumed.stderr
    assert "sync: full (resumed)" in resumed.stdout
    expected = {str(d.id): list(d.history) for d in fake.deals.values()}
    assert histories(sessions) == expected
    assert deleted(sessions) == {str(d.id) for d in fake.deals.values() if d.archived}
    active = sum(not d.archived for d in fake.deals.values())
    pages = math.ceil(active / 50) + math.ceil((400 - active) / 50)
    assert len(fake.requests("/crm/objects/deals")) - before == pages - 4  # none read twice


def test_a_daily_limit_error_says_by_when_it_resets(servers):
    fake = serve(daily_limit=0)
    servers.append(fake)
    crm = HubSpotCrm(TOKEN, fake.url)
    with pytest.raises(CrmDailyLimit) as caught:
        crm.fetch_pipelines()
    assert caught.value.resume_by - datetime.now(UTC) <= timedelta(days=1)
    assert f"{caught.value.resume_by:%Y-%m-%d %H:%M} UTC" in caught.value.message
    assert len(fake.requests()) == 1  # not retried


# -- deletions and the incremental cost --------------------------------------------------


def incremental_calls(sessions, archived: int) -> tuple[int, HubSpotCrm, FakeHubSpot]:
    """Calls of an incremental run after 40 changes, in a portal of 300 deals plus `archived` archived ones."""
    fake = serve()
    generate_deals(fake, 300)
    for deal in fake.deals.values():
        deal.modified = T0
    crm = HubSpotCrm(TOKEN, fake.url, rate_limit=(100_000, 1.0), search_rate=(1_000, 1.0))
    sync_crm(sessions, crm, full=True)
    for i in range(archived):
        fake.add_deal(1_000 + i, [("appointmentscheduled", T0)], modified=T0)
        fake.deals[1_000 + i].archived = True
    now = datetime.now(UTC)
    for i in range(1, 41):
        fake.move(i, "closedwon", now - timedelta(seconds=i))
    summary = sync_crm(sessions, crm)
    assert summary.deals_read == 40 and summary.swept is None
    return summary.api_calls, crm, fake


def test_the_incremental_cost_does_not_grow_with_the_archive(servers, sessions):
    calls_without, _, fake = incremental_calls(sessions, 0)
    servers.append(fake)
    for table in ("stage_changes", "deals", "sync_state"):
        with sessions.begin() as session:
            session.execute(Deal.metadata.tables[table].delete())
    calls_with, _, fake = incremental_calls(sessions, 1_200)
    servers.append(fake)
    assert calls_without == calls_with == 5  # pipelines, 2 owner pages, 1 search, 1 batch read


def test_the_sweep_finds_archived_and_purged_deals_and_spares_those_changed_meanwhile(
    servers, sessions
):
    fake = serve()
    servers.append(fake)
    generate_deals(fake, 150)
    crm = HubSpotCrm(TOKEN, fake.url, rate_limit=(100_000, 1.0))
    sync_crm(sessions, crm, full=True)
    fake.archive(4, datetime.now(UTC))
    fake.purge(9)  # gone for good: in neither listing
    before = len(fake.requests())

    summary = sync_crm(sessions, crm, sweep=True)

    assert deleted(sessions) == {"4", "9"}
    assert summary.deleted_by_sweep == 2 and summary.swept == 148
    sweep_pages = [r for r in fake.requests()[before:] if r[2] == "/crm/objects/deals"]
    assert len(sweep_pages) == 2  # 148 ids in pages of 100: the archive is never listed
    assert "9" in histories(sessions)  # the history is kept


def test_a_full_sync_marks_purged_deals_deleted(servers, sessions):
    fake = serve()
    servers.append(fake)
    generate_deals(fake, 60, archived_every=6)
    crm = HubSpotCrm(TOKEN, fake.url, rate_limit=(100_000, 1.0))
    sync_crm(sessions, crm, full=True)
    fake.purge(7)
    fake.purge(12)  # an archived one, purged later

    summary = sync_crm(sessions, crm, full=True)

    archived = {str(d.id) for d in fake.deals.values() if d.archived}
    assert deleted(sessions) == archived | {"7", "12"}
    assert summary.deleted_by_sweep == 1  # 12 was already deleted


# -- progress on a terminal --------------------------------------------------------------


def test_the_sync_command_draws_pages_deals_calls_and_the_pace_then_one_line(servers, sessions):
    from enablement.cli.sync import _Ticker, summary_line

    fake = serve(rate_limit=(50, 1.0))
    servers.append(fake)
    generate_deals(fake, 120)
    crm = HubSpotCrm(TOKEN, fake.url, rate_limit=(50, 1.0))
    screen = io.StringIO()
    ticker = _Ticker(crm, stream=screen, live=True, every=0.0)
    summary = sync_crm(sessions, crm, full=True, on_progress=ticker)
    ticker.close(summary_line(summary))
    drawn = screen.getvalue()
    status = drawn.split("\r")[-2]
    assert "pages 3  deals 120" in status and "held to 50.0/s" in status
    assert "calls " in status
    last = drawn.split("\r")[-1]
    assert last.endswith("\n") and last.count("\n") == 1
    assert last.startswith("synced (full): 120 deals read (120 new") and "7 calls" in last
