"""HubSpot sync against a fake HubSpot over real HTTP: exact histories under faults, limits and interruptions."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from enablement.db.models import CrmStage, Deal, Owner, StageChange, SyncState
from enablement.errors import ExternalServiceError
from enablement.services.sync import CURSOR_KEY, FULL_KEY, sync_crm
from integrations.hubspot.client import HubSpotAuthError, HubSpotCrm
from integrations.hubspot.ratelimit import RetryPolicy
from tests.integrations.fake_hubspot import (
    TOKEN,
    FakeHubSpot,
    generate_deals,
    served_standard_portal,
)

T0 = datetime(2024, 3, 1, 9, 0, tzinfo=UTC)


class Sleeps:
    """An injected sleep: records each wait instead of spending it (the HTTP path stays real)."""

    def __init__(self):
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


@pytest.fixture
def fake():
    """A fake HubSpot portal with two pipelines and four owners, served on loopback."""
    with served_standard_portal() as server:
        yield server


@pytest.fixture
def sleeps() -> Sleeps:
    """The waits the client asked for."""
    return Sleeps()


@pytest.fixture
def crm(fake, sleeps) -> HubSpotCrm:
    """A client of the fake with generous limits and instant retries."""
    return HubSpotCrm(
        TOKEN,
        fake.url,
        rate_limit=(10_000, 1.0),
        search_rate=(1_000, 1.0),
        policy=RetryPolicy(max_attempts=4, backoff_base=0.01),
        sleep=sleeps,
    )


def stored_histories(sessions) -> dict[str, list[tuple[str, datetime]]]:
    """Every stored deal's stage history, oldest first."""
    with sessions() as session:
        out: dict[str, list] = {d: [] for d in session.scalars(select(Deal.id))}
        rows = session.execute(
            select(StageChange.deal_id, StageChange.stage_id, StageChange.entered_at).order_by(
                StageChange.deal_id, StageChange.entered_at
            )
        )
        for deal_id, stage, at in rows:
            out[deal_id].append((stage, at))
    return out


def fake_histories(fake: FakeHubSpot) -> dict[str, list[tuple[str, datetime]]]:
    """The fake's histories in the same shape."""
    return {str(d.id): list(d.history) for d in fake.deals.values()}


def deleted_ids(sessions) -> set[str]:
    """Ids of deals stored as deleted."""
    with sessions() as session:
        return set(session.scalars(select(Deal.id).where(Deal.deleted_at.is_not(None))))


def cursor(sessions) -> dict | None:
    """The incremental cursor, if set."""
    with sessions() as session:
        row = session.get(SyncState, CURSOR_KEY)
        return dict(row.value) if row else None


def test_a_full_sync_stores_every_deal_with_its_exact_history_in_the_minimum_of_calls(
    fake, crm, sessions
):
    generate_deals(fake, 130, archived_every=10)
    summary = sync_crm(sessions, crm, full=True)

    assert stored_histories(sessions) == fake_histories(fake)
    assert deleted_ids(sessions) == {str(d.id) for d in fake.deals.values() if d.archived}
    active = sum(not d.archived for d in fake.deals.values())
    minimum = 1 + 2 + math.ceil(active / 50) + math.ceil((130 - active) / 50)
    assert crm.stats.calls == minimum == summary.api_calls
    assert summary.deals.created == 130 and summary.retries == 0
    with sessions() as session:
        assert session.get(Owner, "199").archived is True
        stage = session.get(CrmStage, ("default", "decisionmakerboughtin"))
        assert stage.mapping_source == "suggested" and stage.buying_stage is not None
    assert cursor(sessions) is not None


@pytest.mark.parametrize("version", ["2026-09", "2026-03", "v3"])
def test_each_api_version_family_syncs_the_same_exact_histories_on_its_own_paths(
    sessions, sleeps, version
):
    with served_standard_portal(serve_versions=(version,)) as fake:
        generate_deals(fake, 130, archived_every=10)
        crm = HubSpotCrm(
            TOKEN,
            fake.url,
            rate_limit=(10_000, 1.0),
            search_rate=(1_000, 1.0),
            sleep=sleeps,
            api_version=version,
        )
        full = sync_crm(sessions, crm, full=True)
        fake.move(3, "closedwon", datetime.now(UTC) - timedelta(minutes=1))
        incremental = sync_crm(sessions, crm)
        assert stored_histories(sessions) == fake_histories(fake)
        # Every request went to the chosen family (the fake answers any other with a 404).
        assert set(fake.versions) == {version}
        assert full.retries == incremental.retries == 0
        paths = {r[4] for r in fake.requests()}
    prefix = "/crm/v3/objects/deals" if version == "v3" else f"/crm/objects/{version}/deals"
    assert prefix in paths and f"{prefix}/search" in paths and f"{prefix}/batch/read" in paths


def test_every_deal_list_request_asks_for_history_pages_of_at_most_fifty(fake, crm, sessions):
    generate_deals(fake, 60)
    sync_crm(sessions, crm, full=True)
    lists = [r for r in fake.requests("/crm/objects/deals") if r[1] == "GET"]
    assert len(lists) == 3  # 60 active in pages of 50, one (empty) archived page
    assert all(r[3] == 200 for r in lists)


def test_re_entered_stages_are_kept_in_order(fake, crm, sessions):
    fake.add_deal(
        7,
        [
            ("appointmentscheduled", T0),
            ("qualifiedtobuy", T0 + timedelta(days=1)),
            ("appointmentscheduled", T0 + timedelta(days=2)),
            ("qualifiedtobuy", T0 + timedelta(days=3, milliseconds=5)),
        ],
    )
    sync_crm(sessions, crm, full=True)
    assert stored_histories(sessions)["7"] == fake.deals[7].history
    with sessions() as session:
        assert session.get(Deal, "7").current_stage_id == "qualifiedtobuy"


def test_a_second_full_sync_changes_nothing(fake, crm, sessions):
    generate_deals(fake, 40)
    sync_crm(sessions, crm, full=True)
    again = sync_crm(sessions, crm, full=True)
    assert again.deals.unchanged == 40
    assert again.deals.stage_changes_added == again.deals.stage_changes_removed == 0


def test_an_incremental_sync_reads_only_changed_deals_and_applies_stage_changes(
    fake, crm, sessions
):
    generate_deals(fake, 80, archived_every=0)
    now = datetime.now(UTC)
    for deal in fake.deals.values():  # everything last modified long ago
        deal.modified = T0
    sync_crm(sessions, crm, full=True)
    fake.move(3, "closedwon", now - timedelta(minutes=1))
    fake.move(5, "appointmentscheduled", now - timedelta(minutes=1))  # a re-entry
    fake.add_deal(500, [("r-open", now - timedelta(minutes=2))], pipeline="renewals")
    fake.archive(9, now)
    before = len(fake.requests())

    summary = sync_crm(sessions, crm, sweep=True)

    assert summary.mode == "incremental"
    assert stored_histories(sessions) == fake_histories(fake)
    assert deleted_ids(sessions) == {"9"}
    assert summary.deals.created == 1 and summary.deals.updated == 2
    new = fake.requests()[before:]
    # No deal pages with history: one page of ids (up to 100) for the deletion sweep.
    assert sum(r[2] == "/crm/objects/deals" and r[1] == "GET" for r in new) == 1
    assert sum(r[2].endswith("/search") for r in new) == 1
    assert sum(r[2].endswith("/batch/read") for r in new) == 1
    assert summary.deleted_by_sweep == 1 and summary.swept == 80  # 80 - 1 archived + 1 new


def test_windows_above_the_search_cap_are_halved_until_each_fits(fake, crm, sessions):
    fake.search_cap = crm.search_cap = 30
    for i in range(1, 101):
        fake.add_deal(i, [("appointmentscheduled", T0 + timedelta(hours=i))])
    with sessions.begin() as session:  # start incremental from before every change
        session.add(
            SyncState(
                key=CURSOR_KEY, value={"modified_since": (T0 - timedelta(days=1)).isoformat()}
            )
        )
    sync_crm(sessions, crm)
    assert stored_histories(sessions) == fake_histories(fake)
    totals = [t for t, _, _ in fake.search_totals]
    assert max(totals) > 30  # the first look saw too many
    consumed = [t for t, _, n in fake.search_totals if n and t <= 30]
    assert consumed and all(t <= 30 for t in consumed)
    assert all(r[3] != 400 for r in fake.requests())


def test_a_429_is_retried_after_its_retry_after_on_get_and_post(fake, crm, sessions, sleeps):
    generate_deals(fake, 20)
    fake.fail(429, times=2, path="/crm/objects/deals", method="GET", headers={"Retry-After": "1"})
    sync_crm(sessions, crm, full=True)
    for deal in fake.deals.values():
        deal.modified = datetime.now(UTC) - timedelta(minutes=1)
    fake.fail(429, times=1, path="/crm/objects/deals/search", headers={"Retry-After": "2"})
    fake.fail(429, times=1, path="/crm/objects/deals/batch/read", headers={"Retry-After": "1"})
    summary = sync_crm(sessions, crm)
    assert sleeps.waits == [1.0, 1.0, 2.0, 1.0]
    assert summary.retries == 2
    assert stored_histories(sessions) == fake_histories(fake)


def test_a_real_retry_after_is_waited_for(fake):
    fake.fail(429, times=1, path="/crm/pipelines", headers={"Retry-After": "1"})
    crm = HubSpotCrm(TOKEN, fake.url, rate_limit=(100, 1.0))
    crm.fetch_pipelines()
    (first, second) = [r[0] for r in fake.requests("/crm/pipelines")]
    assert second - first >= 0.95


def test_bursts_of_server_errors_back_off_and_the_data_stays_exact(fake, crm, sessions, sleeps):
    generate_deals(fake, 120, archived_every=7)
    fake.fail(503, times=3, path="/crm/objects/deals", method="GET", skip=1)
    fake.fail(502, times=2, path="/crm/owners")
    summary = sync_crm(sessions, crm, full=True)
    assert summary.retries == 5
    assert sleeps.waits[2] < sleeps.waits[4]  # exponential: first and third retry of the deal page
    assert all(w <= 0.04 for w in sleeps.waits)
    assert stored_histories(sessions) == fake_histories(fake)


def test_errors_that_do_not_clear_end_the_sync_without_moving_the_cursor(fake, crm, sessions):
    generate_deals(fake, 10)
    fake.fail(500, times=10, path="/crm/objects/deals")
    with pytest.raises(ExternalServiceError):
        sync_crm(sessions, crm, full=True)
    assert cursor(sessions) is None


@pytest.mark.parametrize("status", [401, 403])
def test_a_refused_token_stops_the_command_with_a_clear_message(
    fake, crm, runner, container, status
):
    fake.fail(status, times=1)
    container.crm = crm
    result = runner("sync", "--full")
    assert result.exit_code == 1
    assert f"HubSpot refused the access token ({status})" in result.stderr
    assert "crm.objects.deals.read" in result.stderr
    assert len(fake.requests()) == 1  # not retried


def test_a_wrong_token_is_refused_by_the_fake_too(fake, sessions):
    crm = HubSpotCrm("wrong", fake.url)
    with pytest.raises(HubSpotAuthError):
        sync_crm(sessions, crm, full=True)


def test_the_sync_command_prints_a_summary(fake, crm, runner, container):
    generate_deals(fake, 12)
    container.crm = crm
    result = runner("sync", "--full")
    assert result.exit_code == 0, result.stderr
    assert "deals: 12 read, 12 created" in result.stdout
    assert "api calls: 5 (0 retries, 0 rate-limited)" in result.stdout


def test_the_sync_command_without_a_token_says_what_to_set(runner):
    result = runner("sync")
    assert result.exit_code == 1
    assert "HUBSPOT_ACCESS_TOKEN" in result.stderr


def test_an_interrupted_full_sync_resumes_and_ends_with_the_same_data(fake, crm, sessions):
    generate_deals(fake, 260, archived_every=9)
    fake.fail(500, times=4, skip=3, path="/crm/objects/deals", method="GET")
    with pytest.raises(ExternalServiceError):
        sync_crm(sessions, crm, full=True)
    with sessions() as session:
        assert session.get(SyncState, FULL_KEY) is not None
    partial = len(stored_histories(sessions))
    assert 0 < partial < 260
    before = len(fake.requests("/crm/objects/deals"))

    summary = sync_crm(sessions, crm, full=True)

    assert summary.resumed
    assert stored_histories(sessions) == fake_histories(fake)
    assert deleted_ids(sessions) == {str(d.id) for d in fake.deals.values() if d.archived}
    reread = len(fake.requests("/crm/objects/deals")) - before
    archived = sum(d.archived for d in fake.deals.values())
    pages = math.ceil((260 - archived) / 50) + math.ceil(archived / 50)
    assert reread == pages - 3  # the three committed pages are not read again
    with sessions() as session:
        assert session.get(SyncState, FULL_KEY) is None
    assert cursor(sessions) is not None


def test_an_interrupted_incremental_sync_run_again_ends_with_the_same_data(fake, crm, sessions):
    generate_deals(fake, 50)
    for deal in fake.deals.values():
        deal.modified = T0
    sync_crm(sessions, crm, full=True)
    first_cursor = cursor(sessions)
    now = datetime.now(UTC)
    for i in range(1, 51, 2):
        fake.move(i, "closedlost", now - timedelta(seconds=i))
    fake.fail(500, times=4, path="/crm/objects/deals/batch/read")
    with pytest.raises(ExternalServiceError):
        sync_crm(sessions, crm)
    assert cursor(sessions) == first_cursor
    sync_crm(sessions, crm)
    assert stored_histories(sessions) == fake_histories(fake)
    assert cursor(sessions) != first_cursor


def test_a_deal_in_an_unknown_pipeline_is_skipped_with_a_warning_after_one_refetch(
    fake, crm, sessions
):
    fake.add_deal(1, [("appointmentscheduled", T0)])
    fake.add_deal(2, [("ghost-stage", T0)], pipeline="ghost")
    summary = sync_crm(sessions, crm, full=True)
    assert summary.skipped == 1
    assert any("unknown pipeline 'ghost'" in w for w in summary.warnings)
    assert len(fake.requests("/crm/pipelines")) == 2
    assert set(stored_histories(sessions)) == {"1"}


def test_a_stage_removed_from_its_pipeline_stays_in_the_history(fake, crm, sessions):
    fake.add_deal(1, [("deleted-stage", T0), ("qualifiedtobuy", T0 + timedelta(days=1))])
    fake.add_deal(
        2, [("r-open", T0), ("qualifiedtobuy", T0 + timedelta(days=2))]
    )  # moved pipelines
    sync_crm(sessions, crm, full=True)
    assert stored_histories(sessions) == fake_histories(fake)
    with sessions() as session:
        pipelines = dict(
            session.execute(
                select(StageChange.stage_id, StageChange.pipeline_id).where(
                    StageChange.deal_id == "2"
                )
            ).all()
        )
    assert pipelines == {"r-open": "renewals", "qualifiedtobuy": "default"}


def test_search_requests_never_exceed_four_per_second(fake):
    for i in range(1, 7):
        fake.add_deal(i, [("appointmentscheduled", T0 + timedelta(hours=i))])
    crm = HubSpotCrm(TOKEN, fake.url, rate_limit=(100, 1.0))
    crm.search_cap = 1  # every window splits: many small searches
    list(crm.iter_deals_modified_between(T0, T0 + timedelta(hours=7)))
    stamps = [r[0] for r in fake.requests("/crm/objects/deals/search")]
    assert len(stamps) >= 8
    for i, start in enumerate(stamps):
        assert sum(start <= s < start + 0.9 for s in stamps[i:]) <= 4


def test_requests_never_exceed_the_configured_rate_limit(fake):
    generate_deals(fake, 400)
    crm = HubSpotCrm(TOKEN, fake.url, rate_limit=(3, 0.5))
    assert sum(len(page.deals) for page in crm.iter_all_deals()) == 400
    stamps = [r[0] for r in fake.requests()]
    assert len(stamps) == 8
    for i, start in enumerate(stamps):
        assert sum(start <= s < start + 0.45 for s in stamps[i:]) <= 3


def test_the_app_wires_the_hubspot_client_from_settings(fake, settings):
    from click.testing import CliRunner

    from enablement import create_app
    from enablement.cli import cli

    generate_deals(fake, 5)
    app = create_app(
        settings.with_overrides(
            hubspot_access_token=TOKEN, hubspot_api_base=fake.url, hubspot_rate_limit=(50, 1.0)
        )
    )
    try:
        assert isinstance(app.extensions["enablement"].crm, HubSpotCrm)
        with app.app_context():
            result = CliRunner().invoke(cli, ["sync"], obj={}, catch_exceptions=False)
        assert result.exit_code == 0, result.stderr
        assert "sync: full" in result.stdout  # no cursor yet: the first sync reads everything
        assert stored_histories(app.extensions["enablement"].sessions) == fake_histories(fake)
    finally:
        app.extensions["enablement"].engine.dispose()


def test_connection_errors_back_off_a_bounded_number_of_times(sleeps):
    import socket

    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    crm = HubSpotCrm(
        TOKEN,
        f"http://127.0.0.1:{port}",
        policy=RetryPolicy(max_attempts=3, backoff_base=0.01),
        sleep=sleeps,
    )
    with pytest.raises(ExternalServiceError, match="after 3 attempts"):
        crm.fetch_pipelines()
    assert (
        len(sleeps.waits) == 2 and crm.stats.retries == 2 and crm.stats.by_status == {"network": 2}
    )


def test_an_unreachable_hubspot_names_the_host_and_the_cause_in_one_line(sleeps):
    import socket

    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    refused = HubSpotCrm(
        TOKEN,
        f"http://127.0.0.1:{port}",
        policy=RetryPolicy(max_attempts=2, backoff_base=0.01),
        sleep=sleeps,
    )
    with pytest.raises(ExternalServiceError) as caught:
        refused.fetch_pipelines()
    message = caught.value.message
    assert f"HubSpot at 127.0.0.1:{port} could not be reached (connection refused)" in message
    assert "MaxRetryError" not in message and "\n" not in message
    assert caught.value.details == {}  # the CLI prints details as further lines
    # .invalid never resolves (RFC 2606): the cause is the name, not the network.
    unknown = HubSpotCrm(
        TOKEN, "http://hubspot.invalid", policy=RetryPolicy(max_attempts=1), sleep=sleeps
    )
    with pytest.raises(ExternalServiceError, match=r"hubspot\.invalid .*does not resolve"):
        unknown.fetch_pipelines()


def test_an_exhausted_daily_limit_is_not_retried(fake, crm, sleeps):
    fake.fail(429, times=5, body={"status": "error", "policyName": "DAILY"})
    with pytest.raises(ExternalServiceError, match="daily API limit"):
        crm.fetch_pipelines()
    assert sleeps.waits == [] and len(fake.requests()) == 1


def test_the_configured_rate_limit_reaches_the_client(settings):
    crm = HubSpotCrm.from_settings(
        settings.with_overrides(hubspot_access_token=TOKEN, hubspot_rate_limit=(7, 3.0))
    )
    assert (crm.limiter.calls, crm.limiter.period) == (7, 3.0)
    assert (crm.search_limiter.calls, crm.search_limiter.period) == (4, 1.0)


def test_at_hubspots_real_cap_a_window_of_more_than_10000_deals_is_split(fake):
    for i in range(1, 10_002):
        fake.add_deal(i, [("appointmentscheduled", T0 + timedelta(seconds=i))])
    crm = HubSpotCrm(TOKEN, fake.url, rate_limit=(100_000, 1.0), search_rate=(1_000, 1.0))
    pages = list(crm.iter_deals_modified_between(T0, T0 + timedelta(days=1)))
    ids = [d.id for p in pages for d in p.deals]
    assert sorted(ids, key=int) == [str(i) for i in range(1, 10_002)]  # each once
    totals = [t for t, _, _ in fake.search_totals]
    assert totals[0] == 10_001
    # A window over the cap is looked at once (one page) and split; only windows within it are paged.
    assert sum(t > 10_000 for t in totals) == 4  # 24h, 12h, 6h and 3h windows: split, not paged
    assert all(r[3] == 200 for r in fake.requests())
