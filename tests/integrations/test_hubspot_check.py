"""`enablement hubspot check` against the fake HubSpot: what works with the configured credentials, line by line."""

from __future__ import annotations

import pytest

from enablement import create_app
from tests.conftest import Cli
from tests.integrations.fake_hubspot import CLIENT_SECRET, PORTAL_ID, TOKEN, served_standard_portal

BASE = "https://enablement.example.com"


@pytest.fixture
def fake():
    """The standard fake portal, its token granted every scope the app asks for."""
    with served_standard_portal() as server:
        yield server


@pytest.fixture
def check(settings, fake):
    """Run `enablement hubspot check` with these HubSpot settings (a complete install by default)."""
    apps = []

    def run(*args: str, **overrides):
        values = {
            "hubspot_access_token": TOKEN,
            "hubspot_api_base": fake.url,
            "hubspot_client_secret": CLIENT_SECRET,
            "hubspot_portal_id": PORTAL_ID,
            "public_base_url": BASE,
            **overrides,
        }
        app = create_app(settings, **values)
        apps.append(app)
        result = Cli(app)("hubspot", "check", *args)
        return result.exit_code, result.output.splitlines()

    yield run
    for app in apps:
        app.extensions["enablement"].engine.dispose()


def test_a_complete_install_passes_every_line_and_exits_0(check, fake):
    status, lines = check()
    assert status == 0, lines
    assert lines[0] == "ok   access token: valid on API version 2026-09; 2 deal pipeline(s) read"
    assert "ok   scope crm.objects.deals.read: granted" in lines
    assert "ok   scope crm.objects.contacts.write: granted" in lines
    assert f"ok   portal: HubSpot account {PORTAL_ID}, the token's own" in lines
    assert f"ok   webhooks: HubSpot signs and sends to {BASE}/webhooks/hubspot" in lines
    assert f"ok   card: HubSpot signs and sends to {BASE}/integrations/hubspot/card" in lines
    assert not [line for line in lines if line.startswith("FAIL")]
    assert set(fake.versions) == {"2026-09"}  # the check itself uses the configured version


def test_a_missing_sync_scope_fails_by_name_and_write_back_scopes_matter_only_when_on(check, fake):
    fake.scopes = ("crm.schemas.deals.read", "crm.objects.owners.read")
    status, lines = check()
    assert status == 1
    assert "FAIL scope crm.objects.deals.read: missing (needed for sync)" in lines
    assert (
        "--   scope crm.objects.deals.write: missing, needed only for HUBSPOT_WRITEBACK=notes"
        in lines
    )
    status, lines = check(hubspot_writeback="notes")
    assert "FAIL scope crm.objects.contacts.write: missing (needed for note write-back)" in lines


def test_a_refused_token_fails_and_nothing_claims_to_sync(check):
    status, lines = check(hubspot_access_token="not-the-token")
    assert status == 1
    assert lines[0].startswith("FAIL access token: HubSpot refused a read")
    assert not [line for line in lines if "scope" in line and line.startswith("ok")]


def test_a_service_key_alone_syncs_but_cannot_receive_webhooks_or_serve_the_card(check):
    status, lines = check(hubspot_client_secret=None, hubspot_portal_id=None)
    assert status == 1
    assert lines[0].startswith("ok   access token: valid")
    assert any(line.startswith("--   scopes: not checked") for line in lines)
    assert any(line.startswith("FAIL portal: HUBSPOT_PORTAL_ID is not set") for line in lines)
    for name in ("webhooks", "card"):
        assert f"FAIL {name}: HUBSPOT_CLIENT_SECRET is not set" in " ".join(lines)


@pytest.mark.parametrize(
    ("base_url", "reason"),
    [
        ("http://enablement.example.com", "is not https"),
        ("https://localhost:5000", "the internal host 'localhost'"),
        ("https://127.0.0.1", "the internal address 127.0.0.1"),
        ("https://10.1.2.3", "the internal address 10.1.2.3"),
    ],
)
def test_a_public_base_url_hubspot_cannot_call_fails_webhooks_and_card(check, base_url, reason):
    status, lines = check(public_base_url=base_url)
    assert status == 1
    assert any(line.startswith("FAIL PUBLIC_BASE_URL") and reason in line for line in lines)
    assert any(line.startswith("FAIL webhooks: HubSpot cannot reach") for line in lines)
    assert any(line.startswith("FAIL card: HubSpot cannot reach") for line in lines)


def test_a_portal_id_of_another_account_fails_with_both_ids(check):
    status, lines = check(hubspot_portal_id="999")
    assert status == 1
    assert (
        f"FAIL portal: HUBSPOT_PORTAL_ID is 999 but the token belongs to account {PORTAL_ID}"
        in (lines)
    )


def test_a_wrong_client_secret_is_named_as_the_introspection_failing(check):
    status, lines = check(hubspot_client_secret="another-secret")
    assert status == 1
    assert any(
        line.startswith("FAIL scopes: HubSpot's token introspection refused")
        and "--client-id" in line
        for line in lines
    )


def test_the_legacy_api_version_is_checked_on_its_own_paths(check, fake):
    status, lines = check(hubspot_api_version="v3")
    assert status == 0, lines
    assert lines[0].startswith("ok   access token: valid on API version v3")
    assert set(fake.versions) == {"v3"}
