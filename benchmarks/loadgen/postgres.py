"""PostgreSQL for a load run: a throwaway database on a running server, or a private cluster."""

from __future__ import annotations

import glob
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import NullPool

SERVER_USER = "postgres"  # initdb refuses root; the cluster runs as this user


def free_port() -> int:
    """A loopback TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ThrowawayDatabase:
    """A fresh database on an existing server, dropped (with its connections) on close."""

    def __init__(self, base_url: str) -> None:
        """Remember the server; nothing is created yet."""
        self.base = make_url(base_url)
        self.name = f"enablement_load_{secrets.token_hex(4)}"
        self.url: str | None = None

    def _admin(self):
        """An autocommit engine on the server's maintenance database."""
        return create_engine(
            self.base.set(database="postgres"), isolation_level="AUTOCOMMIT", poolclass=NullPool
        )

    def create(self) -> str:
        """Create the database; returns its URL."""
        engine = self._admin()
        try:
            with engine.connect() as conn:
                conn.execute(text(f'CREATE DATABASE "{self.name}"'))
        finally:
            engine.dispose()
        self.url = self.base.set(database=self.name).render_as_string(hide_password=False)
        return self.url

    def drop(self) -> None:
        """Drop the database if it was created; FORCE ends sessions a killed worker left."""
        if self.url is None:
            return
        engine = self._admin()
        try:
            with engine.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)'))
        except OperationalError as e:
            print(f"warning: could not drop database {self.name}: {e.orig}")
        finally:
            engine.dispose()
        self.url = None


def _binaries() -> Path:
    """The newest installed PostgreSQL's bin folder (Debian layout)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=_version_key)
    if not found:
        raise RuntimeError("no PostgreSQL server binaries under /usr/lib/postgresql/*/bin")
    return Path(found[-1]).parent


def _version_key(path: str) -> int:
    """Sort /usr/lib/postgresql/<major>/bin/initdb by major version."""
    major = Path(path).parent.parent.name
    return int(major) if major.isdigit() else 0


class PrivateCluster:
    """A PostgreSQL cluster of this run's own, on a free port, that can be restarted mid-run."""

    def __init__(self) -> None:
        """Pick binaries and a port; nothing runs yet."""
        self.bin = _binaries()
        self.port = free_port()
        self.root: Path | None = None
        # NOTE: a restart (in the fault thread) and the removal (on exit or a signal) never
        # interleave, so no server can start in a folder that is being deleted.
        self._lock = threading.Lock()

    @property
    def data(self) -> Path:
        """The data directory."""
        return self.root / "data"

    def _run(self, *args: str, timeout: float = 120) -> None:
        """Run a server binary as the cluster's owner; raise with its output on failure."""
        command = [str(self.bin / args[0]), *args[1:]]
        if os.geteuid() == 0:
            command = ["runuser", "-u", SERVER_USER, "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
        if done.returncode:
            raise RuntimeError(f"{args[0]} failed ({done.returncode}): {done.stderr.strip()}")

    def start(self) -> str:
        """initdb into a temp folder and start the server; returns a SQLAlchemy URL."""
        self.root = Path(tempfile.mkdtemp(prefix="enablement-load-pg-"))
        if os.geteuid() == 0:
            shutil.chown(self.root, SERVER_USER, SERVER_USER)
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust", "--no-sync")
        self._start_server()
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _start_server(self) -> None:
        """pg_ctl start and wait until it accepts connections."""
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1"
        self._run(
            "pg_ctl",
            "-D",
            str(self.data),
            "-l",
            str(self.root / "server.log"),
            "-o",
            options,
            "-w",
            "-t",
            "60",
            "start",
        )

    def restart(self, pause: float) -> tuple[float, float]:
        """Fast stop, wait `pause` seconds, start; returns (stop began, accepting again) monotonic."""
        with self._lock:
            if self.root is None:
                raise RuntimeError("the cluster was removed before the restart")
            began = time.monotonic()
            self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")
            time.sleep(pause)
            self._start_server()
            return began, time.monotonic()

    def remove(self) -> None:
        """Stop the server (immediately) and delete its folder; safe to call twice."""
        if self.root is None:
            return
        if (self.data / "postmaster.pid").exists():
            try:
                self._run(
                    "pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop", timeout=60
                )
            except (RuntimeError, subprocess.TimeoutExpired) as e:
                print(f"warning: stopping the private cluster: {e}")
        shutil.rmtree(self.root, ignore_errors=True)
        self.root = None
