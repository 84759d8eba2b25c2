"""Asset maintenance commands (import and export live under `enablement import|export`)."""

from __future__ import annotations

import click

from enablement.cli import needs_schema
from enablement.context import ctx
from enablement.services.assets import rescore_assets


def register(cli: click.Group) -> None:
    """Add the assets group."""
    cli.add_command(assets_group)


@click.group("assets")
def assets_group() -> None:
    """Asset maintenance."""


@assets_group.command("rescore")
@needs_schema
def rescore() -> None:
    """Recompute every asset's product-pitch score, e.g. after PRODUCT_TERMS changed."""
    container = ctx()
    changed = rescore_assets(container.sessions, container.settings)
    terms = ", ".join(container.settings.product_terms) or "none"
    click.echo(f"rescored assets with product terms: {terms}; {changed} changed")
