"""`enablement worker`, `enablement scheduler` and `enablement jobs`: the job engine's processes."""

from __future__ import annotations

import os
import sys
import time

import click

from enablement.cli import needs_schema
from enablement.context import ctx
from enablement.db.jobs import STATES
from enablement.domain.timestamps import format_for_people
from enablement.errors import InvalidInput
from enablement.queue import QUEUES
from enablement.render import text_table
from enablement.services import jobs as job_service

# The scheduler's pass runs this often (sync periods, pending events, stranded jobs).
TICK_SECONDS = 60


def register(cli: click.Group) -> None:
    """Add this module's commands to the group."""
    cli.add_command(worker)
    cli.add_command(scheduler)
    cli.add_command(jobs_command)


def _needs_redis() -> None:
    if ctx().settings.job_queue != "redis":
        raise InvalidInput(
            "workers and the scheduler need a shared broker: set REDIS_URL (without it, "
            "`enablement serve` runs every job in its own process)"
        )


@click.command()
@click.option(
    "--processes",
    type=click.IntRange(1, 64),
    default=None,
    help="Worker processes (default WORKER_PROCESSES).",
)
@click.option(
    "--threads",
    type=click.IntRange(1, 64),
    default=None,
    help="Threads per process (default WORKER_THREADS).",
)
@click.option(
    "--queues",
    default=",".join(QUEUES),
    show_default=True,
    help="Comma-separated queues to take jobs from.",
)
@needs_schema
def worker(processes: int | None, threads: int | None, queues: str) -> None:
    """Run jobs from the shared queue (Dramatiq on REDIS_URL) until stopped (SIGTERM, Ctrl-C)."""
    _needs_redis()
    settings = ctx().settings
    wanted = [q.strip() for q in queues.split(",") if q.strip()]
    unknown = sorted(set(wanted) - set(QUEUES))
    if unknown or not wanted:
        raise InvalidInput(f"--queues takes {', '.join(QUEUES)}; got {queues[:60]!r}")
    argv = [
        sys.executable, "-m", "dramatiq", "enablement.worker:broker",
        "--processes", str(processes or settings.worker_processes),
        "--threads", str(threads or settings.worker_threads),
        "--queues", *wanted,
    ]  # fmt: skip
    # NOTE: Dramatiq's own command line supervises the processes and stops them gracefully.
    os.execv(sys.executable, argv)  # noqa: S606 - our own interpreter, no shell


@click.command()
@click.option("--once", is_flag=True, help="One pass, then exit (run it from cron every minute).")
@needs_schema
def scheduler(once: bool) -> None:
    """Queue the periodic jobs: HubSpot syncs (SYNC_EVERY_MINUTES), the pending-events pass,
    spooled link views; send again jobs whose worker died. Run one or more; jobs are deduplicated."""
    _needs_redis()
    container = ctx()
    if once:
        click.echo(_pass(container))
        return
    from apscheduler.schedulers.blocking import BlockingScheduler

    schedule = BlockingScheduler(timezone="UTC")
    schedule.add_job(
        lambda: click.echo(_pass(container)), "interval", seconds=TICK_SECONDS,
        next_run_time=_now(), max_instances=1, coalesce=True,
    )  # fmt: skip
    click.echo(f"scheduler: a pass every {TICK_SECONDS} s (Ctrl-C to stop)")
    try:
        schedule.start()
    except (KeyboardInterrupt, SystemExit):
        pass


def _now():
    from datetime import UTC, datetime

    return datetime.now(UTC)


def _pass(container) -> str:
    started = time.perf_counter()
    done = job_service.tick(container)
    ms = (time.perf_counter() - started) * 1000
    return f"scheduler pass: {done['resent']} stranded sent again, {done['pruned']} pruned ({ms:.0f} ms)"


@click.command("jobs")
@click.option(
    "--state",
    "states",
    multiple=True,
    type=click.Choice(STATES),
    help="Only jobs in this state (repeatable).",
)
@click.option("--kind", type=click.Choice(sorted(job_service.KINDS)), default=None)
@click.option("--limit", type=click.IntRange(1, 1000), default=20, show_default=True)
@needs_schema
def jobs_command(states: tuple[str, ...], kind: str | None, limit: int) -> None:
    """Background jobs: how many per state, and the latest (queued, running, failed...)."""
    listed = job_service.list_jobs(ctx().sessions, states, kind, limit)
    click.echo(", ".join(f"{state}: {n}" for state, n in listed["counts"].items()))
    if not listed["jobs"]:
        return
    rows = [
        {
            **row,
            "attempts": f"{row['attempts']}/{row['max_attempts']}",
            "updated_at": format_for_people(row["updated_at"]),
            "last_error": (row["last_error"] or "")[:60],
        }
        for row in listed["jobs"]
    ]
    click.echo(
        text_table(["id", "kind", "state", "attempts", "updated_at", "key", "last_error"], rows)
    )
