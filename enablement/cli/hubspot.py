"""`enablement hubspot check`: what works with the configured HubSpot credentials, in plain lines."""

from __future__ import annotations

import sys

import click
from flask import current_app

from enablement.context import ctx


def register(cli: click.Group) -> None:
    """Add this module's commands to the group."""

    @cli.group("hubspot")
    def hubspot() -> None:
        """The HubSpot app: check the configured credentials."""

    @hubspot.command("check")
    @click.option(
        "--client-id",
        help="The app's client id (its Auth tab), if HubSpot's token introspection asks for it.",
    )
    def check_command(client_id: str | None) -> None:
        """Token, scopes, portal, webhooks and card: one line each; exit 1 when anything fails."""
        # NOTE: imported here so that the other commands never load the HubSpot SDK.
        from integrations.hubspot.check import FAIL, check_hubspot

        container = ctx()
        urls = current_app.url_map.bind("")
        paths = {
            "webhooks": urls.build("webhooks.hubspot_webhook"),
            "card": urls.build("hubspot_card.card"),
        }
        findings = check_hubspot(container.settings, container.crm, paths, client_id)
        for finding in findings:
            click.echo(finding.line())
        if any(f.status == FAIL for f in findings):
            sys.exit(1)
