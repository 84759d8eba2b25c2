"""The `enablement` command line: the same services the HTTP views call."""

from __future__ import annotations

import functools
import sys
import traceback

import click
from flask import has_app_context

from enablement import db
from enablement.context import ctx
from enablement.domain.storable import storable_text, text_problem
from enablement.errors import EnablementError


class EnablementGroup(click.Group):
    """A group whose product errors end as a one-line message and exit status 1."""

    def parse_args(self, ctx_, args):
        """Refuse what no command can store (a NUL byte, a lone surrogate) as bad usage (exit 2)."""
        for arg in args:
            problem = text_problem(arg)
            if problem:
                raise click.UsageError(f"the argument {storable_text(arg)[:60]!r} {problem}", ctx_)
        return super().parse_args(ctx_, args)

    def invoke(self, ctx_):
        """Run the command; EnablementError prints to stderr and exits 1 (traceback with --debug)."""
        # NOTE: click empties ctx.args before the group's callback runs; remember --help here.
        ctx_.meta["enablement.help"] = "--help" in ctx_.args
        try:
            try:
                return super().invoke(ctx_)
            except Exception as e:
                # The same one line as the API's 503 (by cause), exit 1; anything else propagates.
                if db.is_database_failure(e):
                    raise db.outage(e) from e
                raise
        except EnablementError as e:
            if (ctx_.obj or {}).get("debug"):
                traceback.print_exc()
            click.echo(f"error: {e.message}", err=True)
            for key, value in (e.details or {}).items():
                if value in (None, "", [], {}):
                    continue
                if isinstance(value, list | tuple):  # people read lists, not Python reprs
                    value = ", ".join(str(v) for v in value)
                click.echo(f"  {key}: {value}", err=True)
            sys.exit(1)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise  # usage errors, --help, Ctrl-C: click's own answers
        except OSError as e:
            # NOTE: a file a command reads or writes (--output in a missing folder, a device
            # that fails): one line naming it, never a traceback.
            if (ctx_.obj or {}).get("debug"):
                traceback.print_exc()
            where = f"{e.filename}: " if e.filename else ""
            click.echo(f"error: {where}{e.strerror or e}", err=True)
            sys.exit(1)
        except Exception as e:  # noqa: BLE001 - NOTE: the last resort, so no command prints a traceback wall
            if (ctx_.obj or {}).get("debug"):
                traceback.print_exc()
            click.echo(f"error: {unexpected(e)}", err=True)
            sys.exit(1)


def unexpected(error: Exception) -> str:
    """One line for an error no rule expected: its kind and first line, and how to see more."""
    first = (str(error).strip().splitlines() or [""])[0][:300]
    kind = type(error).__name__
    return f"unexpected {kind}: {first} (run again with --debug for the traceback)"


@click.group(cls=EnablementGroup)
@click.option("--debug", is_flag=True, help="Show tracebacks on errors.")
@click.pass_context
def cli(context: click.Context, debug: bool) -> None:
    """Thought-leadership enablement for B2B sales."""
    context.ensure_object(dict)["debug"] = debug
    # NOTE: `enablement tokens --help` answers without settings: a bad one must not hide the help.
    if not has_app_context() and not context.meta.get("enablement.help"):
        # NOTE: the console script builds the app here, not in main(), so that `--help`
        # (answered by click before this runs) needs no app, database or settings.
        from enablement import create_app
        from enablement.config import Settings

        app = create_app(Settings.from_env(), check_schema=False)
        context.with_resource(app.app_context())


def needs_schema(command):
    """Refuse to run a command against a database whose schema is not current."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        db.check_schema(ctx().engine)
        return command(*args, **kwargs)

    return wrapper


class ProgressBar:
    """A progress callback on_progress(done, total) drawn as a bar on a terminal; silent otherwise."""

    def __init__(self, label: str):
        self.label = label
        self.bar = None
        self.done = 0

    def __call__(self, done: int, total: int) -> None:
        """Move the bar to done of total."""
        if not sys.stderr.isatty():
            return
        if self.bar is None:
            self.bar = click.progressbar(length=total, label=self.label, file=sys.stderr)
            self.bar.__enter__()
        self.bar.update(done - self.done)
        self.done = done

    def close(self) -> None:
        """End the bar's line."""
        if self.bar is not None:
            self.bar.__exit__(None, None, None)
            self.bar = None


# NOTE: imported after the group and helpers above exist, because the command modules use them.
from enablement.cli import (  # noqa: E402
    admin,
    assets,
    demo,
    files,
    hubspot,
    jobs,
    recommend,
    reports,
    stage_map,
    sync,
)

for _module in (admin, files, stage_map, demo, reports, sync, assets, recommend, hubspot, jobs):
    _module.register(cli)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: the group builds the app once and runs the command inside it."""
    cli.main(args=argv, prog_name="enablement")
