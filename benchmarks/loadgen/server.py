"""The app under load: schema, demo data and tokens through the CLI, then gunicorn."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import requests
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


@dataclass(frozen=True)
class Tokens:
    """The bearer tokens the clients use (never printed)."""

    admin: str
    marketing: str
    sales_owner: str  # bound to owner_id
    sales_team: str  # no owner: reaches every deal
    owner_id: str


def app_environment(database_url: str, port: int, instance: Path) -> dict[str, str]:
    """The environment of every enablement process of the run."""
    env = dict(os.environ)
    env.update(
        DATABASE_URL=database_url,
        PUBLIC_BASE_URL=f"http://127.0.0.1:{port}",
        SECRET_KEY=secrets.token_urlsafe(32),
        ENABLEMENT_INSTANCE_PATH=str(instance),
    )
    return env


def run_cli(env: dict[str, str], *args: str) -> str:
    """Run `enablement ARGS`; returns stdout; raises with stderr when it fails."""
    done = subprocess.run(
        [str(BIN / "enablement"), *args], env=env, cwd=REPO, capture_output=True, text=True
    )
    if done.returncode:
        raise RuntimeError(f"enablement {args[0]} failed: {done.stderr.strip()[-2000:]}")
    return done.stdout


def busiest_owner(database_url: str) -> str:
    """The CRM owner with the most live deals: the owner-bound sales token acts for them."""
    engine = create_engine(database_url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            return conn.execute(
                text(
                    "SELECT owner_id FROM deals WHERE deleted_at IS NULL AND owner_id IS NOT NULL "
                    "GROUP BY owner_id ORDER BY count(*) DESC, owner_id LIMIT 1"
                )
            ).scalar_one()
    finally:
        engine.dispose()


def fill(env: dict[str, str], deals: int) -> tuple[str, Tokens]:
    """Schema, demo data and four tokens; returns the demo summary line and the tokens."""
    run_cli(env, "init")
    summary = run_cli(env, "demo", "--deals", str(deals), "--no-print-tokens").strip()
    owner = busiest_owner(env["DATABASE_URL"])

    def token(role: str, name: str, *owner_args: str) -> str:
        """Create one token; the CLI prints it on its first line."""
        return run_cli(
            env, "tokens", "create", "--role", role, "--name", name, *owner_args
        ).split()[0]

    tokens = Tokens(
        admin=token("admin", "load admin"),
        marketing=token("marketing", "load marketing"),
        sales_owner=token("sales", "load sales (owner)", "--owner-id", owner),
        sales_team=token("sales", "load sales (team)"),
        owner_id=owner,
    )
    return summary, tokens


class Gunicorn:
    """gunicorn serving wsgi:app as production does (enablement.serving), N processes, on loopback."""

    def __init__(self, env: dict[str, str], port: int, workers: int, log: Path) -> None:
        """Remember how to start; nothing runs yet."""
        self.env, self.port, self.workers, self.log = env, port, workers, log
        self.process: subprocess.Popen | None = None

    @property
    def base_url(self) -> str:
        """Where it serves."""
        return f"http://127.0.0.1:{self.port}"

    def start(self, wait: float = 60) -> None:
        """Start gunicorn and wait until /healthz answers 200."""
        command = [
            str(BIN / "gunicorn"),
            "-c",
            "python:enablement.serving",
            "--workers",
            str(self.workers),
            "--bind",
            f"127.0.0.1:{self.port}",
            "--error-logfile",
            str(self.log),
            "--capture-output",
            "wsgi:app",
        ]
        self.process = subprocess.Popen(command, env=self.env, cwd=REPO, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"gunicorn exited with {self.process.returncode}; see {self.log}"
                )
            try:
                if requests.get(self.base_url + "/healthz", timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"gunicorn did not answer /healthz within {wait:.0f} s; see {self.log}")

    def worker_pids(self) -> list[int]:
        """The current worker processes (children of the master)."""
        if self.process is None:
            return []
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        try:
            return [int(p) for p in children.read_text().split()]
        except OSError:
            return []

    def stop(self) -> None:
        """Graceful stop (SIGTERM), then SIGKILL after 30 s; safe to call twice."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
