"""`enablement report coverage|cycle-time|effectiveness|recommendations`: the reports the API serves."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import click

from enablement.cli import needs_schema
from enablement.context import ctx
from enablement.domain.effectiveness.verdicts import VERDICTS
from enablement.domain.report_filters import EffectFilter, filter_effectiveness
from enablement.domain.stages import BUYING_STAGES
from enablement.domain.timestamps import InvalidTimestamp, parse_timestamp
from enablement.errors import InvalidInput
from enablement.render import FORMATS, render
from enablement.services.reports import KINDS, get_report


def register(cli: click.Group) -> None:
    """Add `report` to the group."""
    cli.add_command(report_command)


def parse_as_of(text: str | None) -> datetime | None:
    """The --as-of moment by the product's one timestamp rule, or None."""
    if text is None:
        return None
    try:
        return parse_timestamp(text)
    except InvalidTimestamp as e:
        # NOTE: a bad timestamp is invalid input (exit 1) on every path: files, API, --as-of.
        raise InvalidInput(f"--as-of: {e}", {"as_of": text[:60]}) from None


@click.command("report")
@click.argument("kind", type=click.Choice(KINDS))
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True)
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path), help="Write to a file.")
@click.option(
    "--as-of", "as_of", help="Report as of this time (ISO 8601 with a zone); default now."
)
@click.option(
    "--verdict",
    type=click.Choice(VERDICTS, case_sensitive=False),
    help="Effectiveness: only rows with this verdict.",
)
@click.option(
    "--stage",
    type=click.Choice(BUYING_STAGES, case_sensitive=False),
    help="Effectiveness: only rows of this buying stage.",
)
@click.option("--asset", help="Effectiveness: only rows of this asset id.")
@click.option(
    "--include-insufficient",
    is_flag=True,
    help="Effectiveness: also list insufficient_data rows (otherwise only counted).",
)
@needs_schema
def report_command(
    kind: str,
    fmt: str,
    output: Path | None,
    as_of: str | None,
    verdict: str | None,
    stage: str | None,
    asset: str | None,
    include_insufficient: bool,
) -> None:
    """Coverage, cycle-time, effectiveness or recommendations report: table, JSON, CSV, (coverage) HTML."""
    when = parse_as_of(as_of)
    if fmt == "html" and kind != "coverage":
        raise click.UsageError("--format html is available for the coverage report only")
    wanted = EffectFilter(verdict, stage, asset, include_insufficient)
    if kind != "effectiveness" and wanted != EffectFilter():
        raise click.UsageError(
            "--verdict, --stage, --asset and --include-insufficient filter the effectiveness report"
        )
    container = ctx()
    report = get_report(
        container.sessions,
        container.settings,
        kind,
        when,
        on_compute=lambda: click.echo(
            f"computing the {kind} report (cached until the data change)...", err=True
        ),
    )
    if kind == "effectiveness":
        report = filter_effectiveness(report, wanted)
    text = render(kind, report, fmt)
    hidden = report.get("hidden_insufficient_data")
    if hidden and fmt == "table":
        text += (
            f"{hidden} row(s) with insufficient data hidden (--include-insufficient shows them)\n"
        )
    if output is None:
        click.echo(text, nl=False)
        return
    try:
        output.write_text(text, encoding="utf-8")
    except OSError as e:
        raise InvalidInput(f"cannot write {output}: {e.strerror}") from None
    click.echo(f"wrote {output}", err=True)
