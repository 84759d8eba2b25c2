"""`enablement sync [--full] [--sweep/--no-sweep]`: pipelines, owners, deals and stage history from HubSpot."""

from __future__ import annotations

import sys
import time

import click

from enablement.cli import needs_schema
from enablement.context import ctx
from enablement.errors import Unavailable
from enablement.services.jobs import apply_held
from enablement.services.sync import SyncSummary, sync_crm

# Held webhook events re-tried after each sync (the oldest first).


class _Ticker:
    """One status line on stderr when it is a terminal (pages, deals, calls, the pace held); silent otherwise."""

    def __init__(self, crm, stream=None, live: bool | None = None, every: float = 0.2):
        self.crm = crm
        self.stream = stream or sys.stderr
        self.live = self.stream.isatty() if live is None else live
        self.every = every  # seconds between redraws: a terminal need not see every page
        self.counts: dict[str, int] = {}
        self._drawn = 0.0
        self._width = 0

    def __call__(self, phase: str, count: int) -> None:
        """Record progress of a phase and redraw the line (at most every `every` seconds)."""
        self.counts[phase] = count
        if phase == "pages":  # NOTE: the page's deals follow at once; draw both together
            return
        now = time.monotonic()
        if self.live and now - self._drawn >= self.every:
            self._drawn = now
            self._draw(self._status())

    def _status(self) -> str:
        """The status line: each phase's count, the calls so far and the rate they are held to."""
        calls = self.crm.call_counts()
        parts = [f"{name} {n:,}" for name, n in self.counts.items()]
        parts.append(f"calls {calls.calls:,}")
        if calls.rate:
            parts.append(f"held to {calls.rate:.1f}/s")
        if calls.rate_limited:
            parts.append(f"429s {calls.rate_limited}")
        return "syncing… " + "  ".join(parts)

    def _draw(self, text: str) -> None:
        """Overwrite the line (padding out what a longer earlier line left)."""
        self.stream.write("\r" + text.ljust(self._width))
        self.stream.flush()
        self._width = len(text)

    def close(self, final: str | None = None) -> None:
        """Replace the status line with a final one (or just end it)."""
        if not self.live:
            return
        if final is not None:
            self._draw(final)
        if final is not None or self._width:
            self.stream.write("\n")
            self.stream.flush()


def summary_line(summary: SyncSummary) -> str:
    """The whole run in one line (what replaces the status line)."""
    d = summary.deals
    pace = f", held to {summary.rate:.1f}/s" if summary.rate else ""
    return (
        f"synced ({summary.mode}{', resumed' if summary.resumed else ''}): "
        f"{summary.deals_read:,} deals read ({d.created:,} new, {d.updated:,} updated, "
        f"{summary.deals_deleted:,} deleted) in {summary.api_calls:,} calls over "
        f"{summary.seconds:.1f} s{pace}, {summary.rate_limited} rate-limited"
    )


def summary_lines(summary: SyncSummary) -> list[str]:
    """The summary as short human-readable lines."""
    s, d = summary, summary.deals
    out = [
        f"sync: {s.mode}{' (resumed)' if s.resumed else ''}",
        f"pipelines: {s.pipelines.created} created, {s.pipelines.updated} updated",
        f"owners: {s.owners.created} created, {s.owners.updated} updated",
        f"deals: {s.deals_read} read, {d.created} created, {d.updated} updated, "
        f"{s.deals_deleted} deleted, {d.unchanged} unchanged, {s.skipped} skipped",
        f"stage changes: {d.stage_changes_added} added, {d.stage_changes_removed} removed",
        f"api calls: {s.api_calls} ({s.retries} retries, {s.rate_limited} rate-limited)",
    ]
    if s.swept is not None:
        out.append(
            f"deletion sweep: {s.swept} deals listed in the CRM, "
            f"{s.deleted_by_sweep} gone from the CRM marked deleted"
        )
    if s.notes_written or s.notes_failed:
        out.append(f"notes: {s.notes_written} written, {s.notes_failed} failed (retried next sync)")
    out += [f"warning: {w}" for w in s.warnings]
    return out


def register(cli: click.Group) -> None:
    """Add this module's commands to the group."""

    @cli.command("sync")
    @click.option(
        "--full", is_flag=True, help="Read every deal (resumes an interrupted full sync)."
    )
    @click.option(
        "--sweep/--no-sweep",
        default=None,
        help="Run (or skip) the deletion sweep with an incremental sync; by default it runs "
        "once a day.",
    )
    @needs_schema
    def sync_command(full: bool, sweep: bool | None) -> None:
        """Pipelines, owners, deals and stage history from HubSpot; incremental by default."""
        container = ctx()
        if container.crm is None:
            raise Unavailable("HubSpot is not configured: set HUBSPOT_ACCESS_TOKEN")
        ticker = _Ticker(container.crm)
        try:
            summary = sync_crm(
                container.sessions,
                container.crm,
                full=full,
                writeback=container.settings.hubspot_writeback == "notes",
                on_progress=ticker,
                sweep=sweep,
                settings=container.settings,
            )
        except BaseException:
            ticker.close()
            raise
        ticker.close(summary_line(summary))
        for line in summary_lines(summary):
            click.echo(line)
        held = apply_held(container)
        if held.received:
            click.echo(
                f"held webhook events: {held.applied + held.ignored} settled, "
                f"{held.pending} still held, {held.rejected} rejected"
            )
