"""`enablement import KIND FILE` and `enablement export KIND`: one command each, for the kinds in services.transfers."""

from __future__ import annotations

import sys
from contextlib import ExitStack
from pathlib import Path

import click

from enablement.cli import ProgressBar, needs_schema
from enablement.context import ctx
from enablement.files.formats import ImportResult, detect_format, warning_text
from enablement.services.transfers import DEAL_SOURCES, EXPORTERS, IMPORTERS

IMPORT_KINDS = tuple(IMPORTERS)
EXPORT_KINDS = tuple(EXPORTERS)
# Kinds whose records nest lists of objects, which a CSV row cannot hold.
JSONL_ONLY = ("pipelines",)


def register(cli: click.Group) -> None:
    """Add import and export to the group."""
    cli.add_command(import_command)
    cli.add_command(export_command)


@click.command("import")
@click.argument("kind", type=click.Choice(IMPORT_KINDS))
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--skip-invalid", is_flag=True, help="Import the valid records and list the rest.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["jsonl", "csv"]),
    default=None,
    help="File format (default: from the file name).",
)
@click.option(
    "--check", is_flag=True, help="Check the file and report what would change; write nothing."
)
@click.option(
    "--from",
    "source",
    type=click.Choice(DEAL_SOURCES),
    default=None,
    help="Deals only: the file is HubSpot's deal export or Salesforce's opportunity report.",
)
@click.option(
    "--history",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="With --from salesforce: the Opportunity History (or field history) report.",
)
@click.option(
    "--mapping",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Deals only: a JSON file mapping another CRM's CSV headers to the deal fields.",
)
@click.option(
    "--timezone",
    default=None,
    help="The IANA time zone of an export's times without a zone (Europe/Berlin, UTC).",
)
@click.option(
    "--day-first",
    is_flag=True,
    help="The export writes dates day first (4/3/2026 is March 4), as day-first locales do.",
)
@needs_schema
def import_command(
    kind: str,
    file: Path,
    skip_invalid: bool,
    fmt: str | None,
    check: bool,
    source: str | None,
    history: Path | None,
    mapping: Path | None,
    timezone: str | None,
    day_first: bool,
) -> None:
    """Import pipelines, deals, assets or shares from a JSON Lines or CSV file, or deals from a CRM's export."""
    fmt = fmt or detect_format(file.name)
    if kind in JSONL_ONLY and fmt != "jsonl":
        raise click.UsageError(f"{kind} are imported from JSON Lines only (stages are nested)")
    if kind != "deals" and (source or history or mapping or timezone or day_first):
        raise click.UsageError(
            "--from, --history, --mapping, --timezone and --day-first are for deals"
        )
    if history is not None and source != "salesforce":
        raise click.UsageError("--history goes with --from salesforce")
    if mapping is not None and source not in (None, "enablement"):
        raise click.UsageError("--mapping is for other CRMs' exports; leave out --from")
    fn = IMPORTERS[kind]
    options: dict = {"check": check}
    bar = ProgressBar(f"importing {kind}") if kind == "deals" else None
    if kind == "deals":
        options.update(on_progress=bar, source=source, timezone=timezone, day_first=day_first)
    with ExitStack() as files:
        stream = files.enter_context(file.open("rb"))
        if history is not None:
            options["history"] = files.enter_context(history.open("rb"))
        if mapping is not None:
            options["mapping"] = files.enter_context(mapping.open("rb"))
        try:
            crm = {"crm": ctx().crm} if kind == "deals" else {}  # nudges go through the CRM
            result: ImportResult = fn(
                ctx().sessions, ctx().settings, stream, fmt, skip_invalid, **options, **crm
            )
        finally:
            if bar is not None:
                bar.close()
    _report(result, skip_invalid)


def _report(result: ImportResult, skip_invalid: bool) -> None:
    """Every problem as a sentence on stderr, then the summary (exit 1 when nothing imported)."""
    for error in result.errors:
        for message in error.messages():
            click.echo(message, err=True)
    if result.warnings:
        from enablement.render import duplicate_text
        from enablement.services.assets import asset_titles

        ids = [w.get(k) for w in result.warnings for k in ("asset_id", "of")]
        titles = asset_titles(ctx().sessions, ids) if result.kind == "assets" else {}
        for warning in result.warnings:
            if warning.get("kind") == "near_duplicate":
                click.echo(f"warning: {duplicate_text(warning, titles)}", err=True)
            else:
                click.echo(f"warning: {warning_text(warning)}", err=True)
    if result.errors and not skip_invalid:
        lines = len({(e.file, e.line) for e in result.errors})
        click.echo(
            f"error: {lines} invalid record(s); nothing imported "
            "(use --skip-invalid to import the valid ones)",
            err=True,
        )
        sys.exit(1)
    prefix = "check only, nothing written: " if result.checked else ""
    verbs = ("would be created", "would be updated") if result.checked else ("created", "updated")
    click.echo(
        f"{result.kind}: {prefix}{result.created} {verbs[0]}, {result.updated} {verbs[1]}, "
        f"{result.unchanged} unchanged, {result.skipped} skipped"
    )


@click.command("export")
@click.argument("kind", type=click.Choice(EXPORT_KINDS))
@click.option(
    "--format", "fmt", type=click.Choice(["jsonl", "csv"]), default="jsonl", show_default=True
)
@click.option(
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write to this file instead of standard output.",
)
@needs_schema
def export_command(kind: str, fmt: str, output: Path | None) -> None:
    """Export pipelines, deals, assets or shares in the same format the import reads."""
    if kind in JSONL_ONLY and fmt != "jsonl":
        raise click.UsageError(f"{kind} are exported as JSON Lines only (stages are nested)")
    fn = EXPORTERS[kind]
    if output is None:
        count = fn(ctx().sessions, ctx().settings, sys.stdout, fmt)
    else:
        with output.open("w", encoding="utf-8", newline="") as out:
            count = fn(ctx().sessions, ctx().settings, out, fmt)
    click.echo(f"exported {count} {kind}", err=True)
