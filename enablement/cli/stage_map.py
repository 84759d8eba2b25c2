"""`enablement stage-map [show | set PIPELINE_ID STAGE_ID BUYING_STAGE|none]`."""

from __future__ import annotations

import click

from enablement.cli import needs_schema
from enablement.context import ctx
from enablement.domain.stages import BUYING_STAGES
from enablement.services.stage_map import set_stage_mapping, show_stage_map


def register(cli: click.Group) -> None:
    """Add stage-map to the group."""
    cli.add_command(stage_map)


@click.group("stage-map", invoke_without_command=True)
@click.pass_context
def stage_map(context: click.Context) -> None:
    """Show the stage map (default) or confirm a stage's buying stage."""
    if context.invoked_subcommand is None:
        context.invoke(show)


@stage_map.command("show")
@needs_schema
def show() -> None:
    """A table of every CRM stage; '!' marks stages that need review."""
    result = show_stage_map(ctx().sessions)
    rows = [
        (
            _flag(item),
            item.get("pipeline_label") or item["pipeline_id"],
            item["pipeline_id"],
            item["stage_id"],
            item["label"],
            "" if item["probability"] is None else f"{item['probability']:.2f}",
            item["buying_stage"] or "-",
            item["source"],
            "" if item["confidence"] is None else f"{item['confidence']:.2f}",
        )
        for item in result["items"]
    ]
    if not rows:
        click.echo("no pipelines yet: run `enablement sync` or `enablement import pipelines FILE`")
        return
    header = (
        "",
        "pipeline",
        "pipeline id",
        "stage id",
        "label",
        "prob",
        "buying stage",
        "source",
        "confidence",
    )
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        click.echo("  ".join(str(v).ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())
    review = result["needs_review"]
    if review:
        click.echo(
            f"\n{len(review)} stage(s) need review (! unmapped, ? low confidence): "
            "confirm with `enablement stage-map set PIPELINE_ID STAGE_ID BUYING_STAGE|none`"
        )


def _flag(item: dict) -> str:
    if item["archived"]:
        return ""
    if item["unmapped"]:
        return "!"
    return "?" if item["low_confidence"] else ""


@stage_map.command("set")
@click.argument("pipeline_id")
@click.argument("stage_id")
@click.argument("buying_stage", type=click.Choice([*BUYING_STAGES, "none"], case_sensitive=False))
@needs_schema
def set_command(pipeline_id: str, stage_id: str, buying_stage: str) -> None:
    """Confirm the buying stage of a CRM stage ('none': it maps to no buying stage)."""
    value = None if buying_stage.lower() == "none" else buying_stage.lower()
    item = set_stage_mapping(ctx().sessions, pipeline_id, stage_id, value, "cli")
    click.echo(
        f"{item['pipeline_id']}/{item['stage_id']} ({item['label']}) -> "
        f"{item['buying_stage'] or 'none'} (confirmed)"
    )
