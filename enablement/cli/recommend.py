"""`enablement recommend DEAL_ID`: the same recommendations the API and the app card give."""

from __future__ import annotations

import getpass
import json

import click

from enablement.cli import needs_schema
from enablement.context import ctx
from enablement.domain.recommend import MAX_LIMIT
from enablement.render import text_table
from enablement.services.tokens import cli_actor


def register(cli: click.Group) -> None:
    """Add `recommend` to the group."""
    cli.add_command(recommend_command)


def _who() -> str:
    """Who asked, for the impression log: the operating-system user running the command."""
    try:
        return cli_actor(getpass.getuser())
    except (KeyError, OSError):
        return cli_actor(None)


@click.command("recommend")
@click.argument("deal_id")
@click.option("--limit", type=click.IntRange(1, MAX_LIMIT), default=5, show_default=True)
@click.option(
    "--format", "fmt", type=click.Choice(("table", "json")), default="table", show_default=True
)
@needs_schema
def recommend_command(deal_id: str, limit: int, fmt: str) -> None:
    """What to send this deal's buyer now: ranked assets with scores and reasons (logged)."""
    from enablement.services.recommendations import recommend_for_deal

    container = ctx()
    answer = recommend_for_deal(
        container.sessions, container.settings, deal_id, limit, requested_by=_who(), source="cli"
    )
    if fmt == "json":
        click.echo(json.dumps(answer, indent=2, ensure_ascii=False))
        return
    deal = answer["deal"]
    click.echo(f"{deal['id']} {deal['name']!r}: {deal['buying_stage'] or 'no buying stage'}")
    if answer["message"]:
        click.echo(answer["message"])
    if answer["items"]:
        rows = [
            {
                "rank": item["rank"],
                "score": f"{item['score']:.3f}",
                "asset": item["asset"]["id"],
                "title": item["asset"]["title"],
                # The stage reason is the same for most items; show what sets this one apart.
                "why": ("exploration; " if item["exploration"] else "")
                + "; ".join(item["reasons"][1:3] or item["reasons"][:1]),
            }
            for item in answer["items"]
        ]
        click.echo(text_table(["rank", "score", "asset", "title", "why"], rows))
    click.echo(f"impression {answer['impression_id']}")
