"""`enablement import KIND FILE` and `enablement export KIND`: one command each, kinds registered by features."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from enablement.cli import needs_schema
from enablement.context import ctx
from enablement.errors import InvalidInput
from enablement.services.files import (
    EXPORTERS,
    IMPORTERS,
    ImportResult,
    detect_format,
    load_features,
)

IMPORT_KINDS = ("pipelines", "deals", "assets", "shares")
EXPORT_KINDS = ("deals", "assets", "shares")


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
@needs_schema
def import_command(kind: str, file: Path, skip_invalid: bool, fmt: str | None) -> None:
    """Import pipelines, deals, assets or shares from a JSON Lines or CSV file."""
    load_features()
    fn = IMPORTERS.get(kind)
    if fn is None:
        raise InvalidInput(f"importing {kind} is not available yet")
    with file.open("rb") as stream:
        result: ImportResult = fn(ctx(), stream, fmt or detect_format(file.name), skip_invalid)
    _report(result, skip_invalid)


def _report(result: ImportResult, skip_invalid: bool) -> None:
    for error in result.errors:
        click.echo(f"line {error.line}: {json.dumps(error.errors, ensure_ascii=False)}", err=True)
    for warning in result.warnings:
        click.echo(f"warning: {json.dumps(warning, ensure_ascii=False)}", err=True)
    if result.errors and not skip_invalid:
        click.echo(
            f"error: {len(result.errors)} invalid record(s); nothing imported "
            "(use --skip-invalid to import the valid ones)",
            err=True,
        )
        sys.exit(1)
    click.echo(
        f"{result.kind}: {result.created} created, {result.updated} updated, "
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
    """Export deals, assets or shares in the same format the import reads."""
    load_features()
    fn = EXPORTERS.get(kind)
    if fn is None:
        raise InvalidInput(f"exporting {kind} is not available yet")
    if output is None:
        count = fn(ctx(), sys.stdout, fmt)
    else:
        with output.open("w", encoding="utf-8", newline="") as out:
            count = fn(ctx(), out, fmt)
    click.echo(f"exported {count} {kind}", err=True)
