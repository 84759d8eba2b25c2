"""Commands for set-up and operations: init, serve, tokens."""

from __future__ import annotations

import click

from enablement import db
from enablement.cli import needs_schema
from enablement.context import ctx
from enablement.services import tokens


def register(cli: click.Group) -> None:
    """Add init, serve and tokens to the group."""
    cli.add_command(init)
    cli.add_command(serve)
    cli.add_command(tokens_group)


@click.command()
def init() -> None:
    """Create or upgrade the database schema."""
    engine = ctx().engine
    before = db.current_revision(engine)
    db.upgrade(engine)
    after = db.current_revision(engine)
    if before == after:
        click.echo(f"schema is current ({after})")
    else:
        click.echo(f"schema upgraded from {before or 'empty'} to {after}")


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=click.IntRange(1, 65535))
@needs_schema
def serve(host: str, port: int) -> None:
    """Development server; in production run gunicorn 'wsgi:app'."""
    from flask import current_app

    current_app.run(host=host, port=port, debug=False, use_reloader=False)


@click.group("tokens")
def tokens_group() -> None:
    """API tokens: create (shown once), list, revoke."""


@tokens_group.command("create")
@click.option("--role", required=True, type=click.Choice(tokens.ROLES))
@click.option("--name", required=True)
@click.option("--owner-id", default=None, help="CRM owner id of a salesperson.")
@needs_schema
def tokens_create(role: str, name: str, owner_id: str | None) -> None:
    """Create a token and print it once; only its hash is kept."""
    token, record = tokens.create_token(ctx().sessions, role, name, owner_id)
    click.echo(token)
    click.echo(
        f"created token {record.id} ({record.role}, {record.name}); store it now, it is not shown again",
        err=True,
    )


@tokens_group.command("list")
@needs_schema
def tokens_list() -> None:
    """List tokens (id, role, name, prefix, last use); never the tokens."""
    for t in tokens.list_tokens(ctx().sessions):
        state = "revoked" if t.revoked_at else "active"
        used = t.last_used_at.isoformat() if t.last_used_at else "never"
        click.echo(f"{t.id}\t{t.role}\t{t.name}\t{t.prefix}…\t{state}\tlast used {used}")


@tokens_group.command("revoke")
@click.argument("token_id", type=int)
@needs_schema
def tokens_revoke(token_id: int) -> None:
    """Revoke a token by its id."""
    tokens.revoke_token(ctx().sessions, token_id)
    click.echo(f"revoked token {token_id}")
