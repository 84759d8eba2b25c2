"""The `enablement` command line: the same services the HTTP views call."""

from __future__ import annotations

import functools
import importlib
import sys
import traceback

import click

from enablement import db
from enablement.context import ctx
from enablement.errors import EnablementError

# Each module has register(cli) adding its commands; listed here so the group stays one place.
COMMAND_MODULES = (
    "enablement.cli.admin",
    "enablement.cli.files",
    "enablement.cli.stage_map",
    "enablement.cli.demo",
    "enablement.cli.reports",
    "enablement.cli.sync",
    "enablement.cli.assets",
)


class EnablementGroup(click.Group):
    """A group whose product errors end as a one-line message and exit status 1."""

    def invoke(self, ctx_):
        """Run the command; EnablementError prints to stderr and exits 1 (traceback with --debug)."""
        try:
            return super().invoke(ctx_)
        except EnablementError as e:
            if (ctx_.obj or {}).get("debug"):
                traceback.print_exc()
            click.echo(f"error: {e.message}", err=True)
            for key, value in (e.details or {}).items():
                click.echo(f"  {key}: {value}", err=True)
            sys.exit(1)


@click.group(cls=EnablementGroup)
@click.option("--debug", is_flag=True, help="Show tracebacks on errors.")
@click.pass_context
def cli(context: click.Context, debug: bool) -> None:
    """Thought-leadership enablement for B2B sales."""
    context.ensure_object(dict)["debug"] = debug


def needs_schema(command):
    """Refuse to run a command against a database whose schema is not current."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        db.check_schema(ctx().engine)
        return command(*args, **kwargs)

    return wrapper


def progress(iterable, length: int | None = None, label: str = ""):
    """A progress bar on a terminal; the bare iterable when output is not a terminal."""
    if not sys.stderr.isatty():
        return _nullcontext(iterable)
    return click.progressbar(iterable, length=length, label=label, file=sys.stderr)


class _nullcontext:
    def __init__(self, iterable):
        self.iterable = iterable

    def __enter__(self):
        return self.iterable

    def __exit__(self, *exc):
        return False


for _name in COMMAND_MODULES:
    importlib.import_module(_name).register(cli)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: build the app once, run the command inside it."""
    from enablement import create_app
    from enablement.config import Settings

    try:
        app = create_app(Settings.from_env(), check_schema=False)
    except EnablementError as e:
        click.echo(f"error: {e.message}", err=True)
        sys.exit(1)
    with app.app_context():
        cli.main(args=argv, prog_name="enablement")
