"""Commands for set-up and operations: init, serve, tokens."""

from __future__ import annotations

import click

from enablement import db
from enablement.cli import needs_schema
from enablement.context import ctx
from enablement.domain.timestamps import format_for_people
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
@click.option(
    "--port",
    default=None,
    type=click.IntRange(1, 65535),
    help="Port to listen on  [default: $PORT, else 5000]",
)
@needs_schema
def serve(host: str, port: int | None) -> None:
    """Development server; in production run gunicorn 'wsgi:app'."""
    from flask import current_app

    container = ctx()
    port = port or container.settings.port
    use_served_address(container, host, port)
    click.echo(f"serving on http://{host}:{port} (links use {container.settings.public_base_url})")
    from enablement.warmup import maintain, warm

    app = current_app._get_current_object()  # the thread below runs outside this app context
    warm(app)
    maintain(app)
    current_app.run(host=host, port=port, debug=False, use_reloader=False)


def use_served_address(container, host: str, port: int) -> None:
    """Unless PUBLIC_BASE_URL was given, make links point at the address `serve` listens on."""
    from dataclasses import replace

    if not container.settings.public_base_url_set:
        container.settings = replace(
            container.settings, public_base_url=served_base_url(host, port), port=port
        )


def served_base_url(host: str, port: int) -> str:
    """The base URL a browser on this machine reaches `serve` at (any-address binds become loopback)."""
    any_address = {"", "::", "0.0.0.0"}  # noqa: S104 (compared, not bound)
    shown = "127.0.0.1" if host in any_address else host
    if ":" in shown and not shown.startswith("["):
        shown = f"[{shown}]"
    return f"http://{shown}:{port}"


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
@click.option("--all", "show_all", is_flag=True, help="Include revoked tokens.")
@needs_schema
def tokens_list(show_all: bool) -> None:
    """List active tokens (id, role, name, owner, prefix, created, last use); never the tokens."""
    from enablement.render import text_table

    listed = [t for t in tokens.list_tokens(ctx().sessions) if show_all or not t.revoked_at]
    columns = ["id", "role", "name", "owner_id", "prefix", "state", "created", "last_used"]
    if show_all:
        columns.append("revoked")
    rows = [
        {
            "id": t.id,
            "role": t.role,
            "name": t.name,
            "owner_id": t.owner_id or "",
            "prefix": f"{tokens.shown_prefix(t.prefix)}…",
            "state": "revoked" if t.revoked_at else "active",
            "created": format_for_people(t.created_at),
            "last_used": format_for_people(t.last_used_at) or "never",
            "revoked": format_for_people(t.revoked_at) or "",
        }
        for t in listed
    ]
    if not rows:
        click.echo("no active tokens: create one with `enablement tokens create`")
        return
    click.echo(text_table(columns, rows))


class RowIdType(click.ParamType):
    """A row id on the command line: digits only (click's int also reads "١٢" and "1_2")."""

    name = "id"

    def convert(self, value, param, ctx_):
        """Plain ASCII digits, else a usage error (exit 2); the service says which ids exist."""
        if isinstance(value, int) or (value.isascii() and value.isdigit()):
            return int(value)
        self.fail(f"{value!r} must be a token id in plain digits (enablement tokens list)")


@tokens_group.command("revoke")
@click.argument("token_id", type=RowIdType())
@needs_schema
def tokens_revoke(token_id: int) -> None:
    """Revoke a token by its id."""
    tokens.revoke_token(ctx().sessions, token_id)
    click.echo(f"revoked token {token_id}")
