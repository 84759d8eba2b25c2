"""`enablement demo`: load the demo dataset and print fresh sign-in tokens."""

from __future__ import annotations

import click

from enablement.cli import needs_schema
from enablement.context import ctx
from enablement.services import demo


def register(cli: click.Group) -> None:
    """Add the demo command to the group."""
    cli.add_command(demo_command)


@click.command("demo")
@click.option("--deals", default=2000, show_default=True, type=click.IntRange(1, 200_000))
@click.option("--assets", default=300, show_default=True, type=click.IntRange(20, 20_000))
@click.option("--seed", default=42, show_default=True, type=click.IntRange(min=0))
@click.option(
    "--if-empty",
    is_flag=True,
    help="Do nothing (but still print tokens) when the database already has deals or assets.",
)
@click.option(
    "--print-tokens/--no-print-tokens",
    default=True,
    show_default=True,
    help="Revoke earlier demo tokens and print new ones (sales, marketing, admin).",
)
@needs_schema
def demo_command(deals: int, assets: int, seed: int, if_empty: bool, print_tokens: bool) -> None:
    """Load demo pipelines, reps, deals, assets, shares and views (dates end today)."""
    container = ctx()
    result = demo.load_demo(
        container.sessions,
        container.settings,
        deals=deals,
        assets=assets,
        seed=seed,
        if_empty=if_empty,
    )
    if result.loaded:
        c = result.counts
        click.echo(
            f"demo data loaded in {result.seconds:.1f} s (seed {seed}, as of {result.as_of}): "
            f"{c['deals']} deals ({c['won']} won, {c['lost']} lost, {c['open']} open), "
            f"{c['stage_changes']} stage changes, {c['assets']} assets, "
            f"{c['shares']} shares, {c['views']} views"
        )
    else:
        click.echo(
            f"demo data not loaded: the database already has {result.existing_deals} deals "
            f"and {result.existing_assets} assets"
        )
    if print_tokens:
        _print_tokens(
            demo.issue_demo_tokens(container.sessions), container.settings.public_base_url
        )


def _print_tokens(issued: list[demo.DemoToken], base_url: str) -> None:
    """Print the tokens and a curl line to try; they are not stored in plain and not shown again."""
    click.echo("")
    click.echo("Sign-in tokens (new on every run; earlier demo tokens are now revoked):")
    for t in issued:
        who = f"  (rep {t.owner_name}, owner id {t.owner_id})" if t.owner_id else ""
        click.echo(f"  {t.role:<10} {t.token}{who}")
    admin = next((t.token for t in issued if t.role == "admin"), issued[-1].token)
    sales = next((t.token for t in issued if t.role == "sales"), admin)
    click.echo("")
    click.echo("Try:")
    click.echo(f'  curl -H "Authorization: Bearer {sales}" {base_url}/api/v1/assets')
    click.echo(f'  curl -H "Authorization: Bearer {sales}" "{base_url}/api/v1/deals?q=logistics"')
    click.echo(f'  curl -H "Authorization: Bearer {admin}" {base_url}/api/v1/stage-map')
    click.echo("")
