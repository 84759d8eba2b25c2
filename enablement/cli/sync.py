"""`enablement sync [--full]`: pipelines, owners, deals and stage history from HubSpot."""

from __future__ import annotations

import sys

import click

from enablement.cli import needs_schema
from enablement.context import ctx
from enablement.errors import Unavailable
from enablement.services.sync import sync_crm


class _Ticker:
    """One updating status line on stderr when it is a terminal; silent otherwise."""

    def __init__(self):
        self.live = sys.stderr.isatty()
        self.counts: dict[str, int] = {}

    def __call__(self, phase: str, count: int) -> None:
        """Record progress of a phase and redraw the line."""
        self.counts[phase] = count
        if self.live:
            text = "  ".join(f"{name}: {n:,}" for name, n in self.counts.items())
            click.echo(f"\rsyncing… {text}", nl=False, err=True)

    def close(self) -> None:
        """End the status line."""
        if self.live and self.counts:
            click.echo("", err=True)


def register(cli: click.Group) -> None:
    """Add this module's commands to the group."""

    @cli.command("sync")
    @click.option(
        "--full", is_flag=True, help="Read every deal (resumes an interrupted full sync)."
    )
    @needs_schema
    def sync_command(full: bool) -> None:
        """Pipelines, owners, deals and stage history from HubSpot; incremental by default."""
        container = ctx()
        if container.crm is None:
            raise Unavailable("HubSpot is not configured: set HUBSPOT_ACCESS_TOKEN")
        ticker = _Ticker()
        try:
            summary = sync_crm(
                container.sessions,
                container.crm,
                full=full,
                writeback=container.settings.hubspot_writeback == "notes",
                on_progress=ticker,
            )
        finally:
            ticker.close()
        for line in summary.lines():
            click.echo(line)
