"""What works with the configured HubSpot credentials: the lines `enablement hubspot check` prints.

Each finding is one plain line: the token (valid, its account, its scopes by name), and
whether HubSpot can reach the webhooks and the card at PUBLIC_BASE_URL. Nothing here
changes anything in HubSpot or in the database.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from enablement.domain.assets import internal_host
from enablement.errors import EnablementError
from integrations.hubspot.client import SYNC_SCOPES, WRITEBACK_SCOPES, HubSpotCrm

OK, FAIL, INFO = "ok", "FAIL", "--"


@dataclass(frozen=True)
class Finding:
    """One line of the check: ok, FAIL or -- (information) and what it means."""

    status: str
    text: str

    def line(self) -> str:
        """The finding as printed."""
        return f"{self.status:<4} {self.text}"


def check_hubspot(
    settings, crm: HubSpotCrm | None, paths: dict[str, str], client_id: str | None = None
) -> list[Finding]:
    """Every finding, in order; `paths` holds the service's webhook and card paths."""
    findings: list[Finding] = []
    token_info = _check_token(settings, crm, client_id, findings)
    _check_account(settings, token_info, findings)
    base = _check_base_url(settings.public_base_url, findings)
    secret = settings.hubspot_client_secret
    for name, path in (("webhooks", paths["webhooks"]), ("card", paths["card"])):
        if not secret:
            findings.append(
                Finding(
                    FAIL,
                    f"{name}: HUBSPOT_CLIENT_SECRET is not set (the app's client secret verifies HubSpot's signature)",
                )
            )
        elif base is None:
            findings.append(
                Finding(FAIL, f"{name}: HubSpot cannot reach {settings.public_base_url}{path}")
            )
        else:
            findings.append(Finding(OK, f"{name}: HubSpot signs and sends to {base}{path}"))
    return findings


def _check_token(settings, crm, client_id, findings):
    """The token reads the CRM, and what HubSpot says it is (with the client secret to ask)."""
    if crm is None or not settings.hubspot_access_token:
        findings.append(
            Finding(FAIL, "access token: HUBSPOT_ACCESS_TOKEN is not set (nothing can sync)")
        )
        return None
    try:
        pipelines = crm.fetch_pipelines()
    except EnablementError as e:
        findings.append(Finding(FAIL, f"access token: HubSpot refused a read ({e.message})"))
        return None
    findings.append(
        Finding(
            OK,
            f"access token: valid on API version {crm.paths.version}; {len(pipelines)} deal pipeline(s) read",
        )
    )
    if not settings.hubspot_client_secret:
        findings.append(
            Finding(
                INFO,
                "scopes: not checked (HubSpot's token introspection needs HUBSPOT_CLIENT_SECRET)",
            )
        )
        return None
    try:
        info = crm.introspect_token(settings.hubspot_client_secret, client_id)
    except EnablementError as e:
        hint = "" if client_id else "; try --client-id with the app's client id"
        findings.append(
            Finding(FAIL, f"scopes: HubSpot's token introspection refused ({e.message}){hint}")
        )
        return None
    granted = set(info.scopes)
    writeback = settings.hubspot_writeback == "notes"
    for scope in SYNC_SCOPES:
        findings.append(_scope(scope, granted, "sync"))
    for scope in WRITEBACK_SCOPES:
        if writeback or scope in granted:
            findings.append(_scope(scope, granted, "note write-back"))
        else:
            findings.append(
                Finding(INFO, f"scope {scope}: missing, needed only for HUBSPOT_WRITEBACK=notes")
            )
    return info


def _scope(scope: str, granted: set[str], use: str) -> Finding:
    if scope in granted:
        return Finding(OK, f"scope {scope}: granted")
    return Finding(FAIL, f"scope {scope}: missing (needed for {use})")


def _check_account(settings, info, findings) -> None:
    """HUBSPOT_PORTAL_ID: set, and the account the token belongs to when HubSpot said which."""
    configured = settings.hubspot_portal_id
    actual = info.hub_id if info else None
    if not configured:
        suggestion = f" (the token's account is {actual})" if actual else ""
        findings.append(
            Finding(
                FAIL,
                f"portal: HUBSPOT_PORTAL_ID is not set{suggestion}; webhooks and the card need it",
            )
        )
    elif actual and actual != configured:
        findings.append(
            Finding(
                FAIL,
                f"portal: HUBSPOT_PORTAL_ID is {configured} but the token belongs to account {actual}",
            )
        )
    elif actual:
        findings.append(Finding(OK, f"portal: HubSpot account {configured}, the token's own"))
    else:
        findings.append(
            Finding(
                OK,
                f"portal: HUBSPOT_PORTAL_ID is {configured} (not compared with the token's account)",
            )
        )


def _check_base_url(base_url: str, findings) -> str | None:
    """PUBLIC_BASE_URL as HubSpot must call it: https and a public host; None when it cannot."""
    parts = urlsplit(base_url)
    reason = internal_host(parts.hostname or "") if parts.hostname else "no host"
    if parts.scheme != "https":
        findings.append(
            Finding(FAIL, f"PUBLIC_BASE_URL: {base_url} is not https (HubSpot calls only https)")
        )
        return None
    if reason:
        findings.append(
            Finding(
                FAIL, f"PUBLIC_BASE_URL: {base_url} points to {reason}, which HubSpot cannot reach"
            )
        )
        return None
    findings.append(Finding(OK, f"PUBLIC_BASE_URL: {base_url} is https on a public host"))
    return base_url.rstrip("/")
