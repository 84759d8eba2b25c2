"""Several app "hosts" (gunicorn masters) on one PostgreSQL and one Redis, behind nginx on loopback.

    with AppHosts(database_url, redis_url, root, hosts=2) as farm:
        farm.proxy_url                      # round-robin over every host (nginx)
        farm.hosts[0].base_url              # one host, directly
        farm.cli(0, "tokens", "create", ...)  # `enablement ...` with host 0's environment
        worker = farm.spawn(1, "enablement", "worker")  # a long-running process like host 1's
        worker.kill()                       # SIGKILL to its whole process group

Each host has its own instance folder and port and the environment production gives every
host: one DATABASE_URL, one REDIS_URL, one SECRET_KEY (fresh per farm, so the shared
store's keys, which are prefixed by a digest of the key, are this farm's own), and
PUBLIC_BASE_URL set to the proxy's address (links and webhook signatures name the address
the outside world calls). Every process is started in a process group of its own and the
whole group is stopped (SIGTERM, then SIGKILL) on exit, whatever the block raised; the
farm's Redis keys (and the HubSpot budget of its access token) are deleted then too.

The proxy is Debian's nginx, as a real deployment would use: round robin, one worker
process (so requests alternate between hosts exactly), request and response bodies
streamed, never a retry on another host (a request is sent to exactly one host, so a
lost or doubled write cannot be hidden or made by the proxy), and an `X-Upstream` header
naming the host that answered. `.ci/run` installs nginx when it is missing.

Used by tests/web/test_two_hosts.py and by `make load` (benchmarks/load.py --rate).
"""

from __future__ import annotations

import atexit
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
STOP_GRACE_SECONDS = 20.0
# Settings a caller's own environment must not leak into the hosts (the farm sets its own).
FOREIGN_SETTINGS = ("DATABASE_", "HUBSPOT_", "REDIS_URL", "SECRET_KEY", "PUBLIC_BASE_URL", "PORT")


def free_port() -> int:
    """A loopback TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def nginx_available() -> bool:
    """Whether the nginx binary is installed."""
    return Path(NGINX).is_file() and os.access(NGINX, os.X_OK)


def wait_for_http(url: str, process: Process, wait: float) -> None:
    """Poll `url` until it answers 200; raise if the process exits or time runs out."""
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"{process.name} exited with {process.poll()} before answering; see {process.log}"
            )
        try:
            with urllib.request.urlopen(url, timeout=2) as answer:
                if answer.status == 200:
                    return
        except (OSError, urllib.error.HTTPError):
            pass
        time.sleep(0.1)
    raise RuntimeError(
        f"{process.name} did not answer {url} within {wait:.0f} s; see {process.log}"
    )


class Process:
    """A child process in a process group of its own, its output in a log file."""

    def __init__(
        self, name: str, argv: Sequence[str], env: Mapping[str, str], log: Path, cwd: Path = ROOT
    ):
        """Start it now."""
        self.name, self.argv, self.log = name, list(argv), log
        self._stopped = False
        self._log = open(log, "ab")  # noqa: SIM115 (closed in stop())
        self.popen = subprocess.Popen(
            self.argv,
            env=dict(env),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stop() reaches its children too
        )
        _LIVE.add(self)

    @property
    def pid(self) -> int:
        """The process id (also its process group id)."""
        return self.popen.pid

    def poll(self) -> int | None:
        """The exit status, or None while it runs."""
        return self.popen.poll()

    def children(self) -> list[int]:
        """Its direct children (a gunicorn master's workers)."""
        path = Path(f"/proc/{self.pid}/task/{self.pid}/children")
        try:
            return [int(p) for p in path.read_text().split()]
        except OSError:
            return []

    def _signal_group(self, sig: int) -> None:
        """Send a signal to the whole process group (gone already: nothing to do)."""
        try:
            os.killpg(self.pid, sig)
        except ProcessLookupError:
            pass

    def kill(self) -> None:
        """SIGKILL the whole group at once (a crash: nothing gets to clean up)."""
        self._signal_group(signal.SIGKILL)
        self.popen.wait()

    def wait(self, timeout: float | None = None) -> int:
        """Wait for it to exit; its status."""
        return self.popen.wait(timeout=timeout)

    def stop(self, grace: float = STOP_GRACE_SECONDS) -> None:
        """SIGTERM the group, SIGKILL it after `grace` seconds; safe to call twice."""
        if self._stopped:
            return
        self._stopped = True
        if self.popen.poll() is None:
            self._signal_group(signal.SIGTERM)
            try:
                self.popen.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                pass
        # Whatever is left of the group (a worker that outlived its master) goes too.
        self._signal_group(signal.SIGKILL)
        if self.popen.poll() is None:
            self.popen.wait()
        self._log.close()
        _LIVE.discard(self)

    def output(self) -> str:
        """What it has written so far."""
        self._log.flush()
        return self.log.read_text(errors="replace")


# Every process still running when the interpreter exits (a crash in a fixture, Ctrl-C) is stopped.
_LIVE: set[Process] = set()


@atexit.register
def _stop_leftovers() -> None:
    for process in list(_LIVE):
        process.stop(grace=5)


@dataclass
class Host:
    """One app host: a gunicorn master with its workers, its own instance folder and port."""

    name: str
    port: int
    instance: Path
    env: dict[str, str]
    server: Process | None = None

    @property
    def base_url(self) -> str:
        """Where this host answers directly."""
        return f"http://127.0.0.1:{self.port}"

    def worker_pids(self) -> list[int]:
        """The gunicorn workers serving right now."""
        return self.server.children() if self.server else []


@dataclass
class AppHosts:
    """N hosts of one app behind a round-robin nginx; a context manager that tears it all down."""

    database_url: str
    redis_url: str | None
    root: Path
    hosts_count: int = 2
    workers: int = 2
    settings: Mapping[str, str] = field(default_factory=dict)  # more environment for every process
    gunicorn_args: Sequence[str] = ()
    secret_key: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    hosts: list[Host] = field(default_factory=list)
    proxy_port: int = field(default_factory=free_port)
    proxy: Process | None = None
    processes: list[Process] = field(default_factory=list)

    def __post_init__(self) -> None:
        """Folders, ports and environments; nothing runs until start()."""
        self.root.mkdir(parents=True, exist_ok=True)
        self._cleanup = ExitStack()
        base = {k: v for k, v in os.environ.items() if not k.startswith(FOREIGN_SETTINGS)}
        for n in range(self.hosts_count):
            name = f"host-{chr(ord('a') + n)}"
            instance = self.root / name
            instance.mkdir(exist_ok=True)
            env = {
                **base,
                "DATABASE_URL": self.database_url,
                "SECRET_KEY": self.secret_key,
                "PUBLIC_BASE_URL": self.proxy_url,
                "ENABLEMENT_INSTANCE_PATH": str(instance),
                **({"REDIS_URL": self.redis_url} if self.redis_url else {}),
                **self.settings,
            }
            self.hosts.append(Host(name, free_port(), instance, env))

    @property
    def proxy_url(self) -> str:
        """The round-robin address every host's links and signatures name."""
        return f"http://127.0.0.1:{self.proxy_port}"

    # -- lifecycle ----------------------------------------------------------------------

    def __enter__(self) -> AppHosts:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def start(self, wait: float = 60) -> None:
        """The schema (`enablement init`), every host's gunicorn, then nginx; each answering /healthz."""
        self._cleanup.callback(self._forget_shared_keys)
        self.cli(0, "init")
        for host in self.hosts:
            command = [
                str(BIN / "gunicorn"),
                "--workers",
                str(self.workers),
                "--bind",
                f"127.0.0.1:{host.port}",
                "--timeout",
                "60",
                "--graceful-timeout",
                "10",
                *self.gunicorn_args,
                "wsgi:app",
            ]
            host.server = self._start(f"{host.name} gunicorn", command, host.env)
        for host in self.hosts:
            wait_for_http(host.base_url + "/healthz", host.server, wait)
        if not nginx_available():
            raise RuntimeError(f"nginx is not installed ({NGINX}): apt-get install -y nginx")
        conf = self._write_nginx_conf()
        folder = conf.parent
        self.proxy = self._start(
            "nginx",
            [NGINX, "-p", str(folder), "-c", str(conf), "-e", str(folder / "error.log")],
            os.environ,
        )
        wait_for_http(self.proxy_url + "/healthz", self.proxy, wait)

    def close(self) -> None:
        """Stop every process (extra ones first, then nginx, then the hosts) and forget the shared keys."""
        for process in reversed(self.processes):
            process.stop()
        self.processes.clear()
        self._cleanup.close()

    def _start(self, name: str, argv: Sequence[str], env: Mapping[str, str]) -> Process:
        """Start a process whose log is in the farm's folder; it is stopped by close()."""
        log = self.root / f"{name.replace(' ', '-')}.log"
        process = Process(name, argv, env, log)
        self._cleanup.callback(process.stop)
        return process

    def _write_nginx_conf(self) -> Path:
        """nginx's configuration: round robin over the hosts, streaming, no retries elsewhere."""
        folder = self.root / "nginx"
        folder.mkdir(exist_ok=True)
        servers = "\n".join(f"    server 127.0.0.1:{h.port} max_fails=0;" for h in self.hosts)
        # NOTE: as root the workers would run as `nobody`; keep them as the user we are.
        user = "user root;" if os.geteuid() == 0 else ""
        conf = folder / "nginx.conf"
        conf.write_text(
            f"""{user}
worker_processes 1;
daemon off;
master_process on;
pid {folder}/nginx.pid;
error_log {folder}/error.log warn;
events {{ worker_connections 1024; }}
http {{
  access_log {folder}/access.log;
  client_body_temp_path {folder}/client_body;
  proxy_temp_path {folder}/proxy;
  fastcgi_temp_path {folder}/fastcgi;
  uwsgi_temp_path {folder}/uwsgi;
  scgi_temp_path {folder}/scgi;
  upstream app {{
{servers}
  }}
  server {{
    listen 127.0.0.1:{self.proxy_port};
    # The app enforces its own body limits (413); the proxy passes any size on.
    client_max_body_size 0;
    location / {{
      proxy_pass http://app;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $http_host;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto $scheme;
      proxy_request_buffering off;
      proxy_buffering off;
      # A request goes to exactly one host: never replayed on another after a failure.
      proxy_next_upstream off;
      proxy_read_timeout 120s;
      add_header X-Upstream $upstream_addr always;
    }}
  }}
}}
"""
        )
        return conf

    def _forget_shared_keys(self) -> None:
        """Delete the farm's keys from the shared store (its prefix, and its HubSpot budget)."""
        if not self.redis_url:
            return
        from enablement import shared_store
        from integrations.hubspot.ratelimit import budget_key

        patterns = [shared_store.app_prefix(self.secret_key) + "*"]
        token = self.settings.get("HUBSPOT_ACCESS_TOKEN")
        if token:
            patterns.append(budget_key(token, "*"))
        try:
            client = shared_store.client(self.redis_url)
            for pattern in patterns:
                stale = list(client.scan_iter(match=pattern, count=1000))
                if stale:
                    client.delete(*stale)
        except shared_store.store_errors() as e:
            print(f"warning: could not delete the farm's Redis keys: {e}", file=sys.stderr)

    # -- using it -------------------------------------------------------------------------

    def host_of(self, upstream: str | None) -> Host | None:
        """The host an `X-Upstream` header (127.0.0.1:port) names."""
        return next((h for h in self.hosts if upstream == f"127.0.0.1:{h.port}"), None)

    def cli(self, host: int, *args: str, timeout: float = 300) -> str:
        """Run `enablement ARGS` with a host's environment; its stdout; raises with stderr on failure."""
        done = subprocess.run(
            [str(BIN / "enablement"), *args],
            env=self.hosts[host].env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if done.returncode:
            raise RuntimeError(
                f"enablement {' '.join(args[:2])} failed ({done.returncode}): {done.stderr.strip()[-2000:]}"
            )
        return done.stdout

    def spawn(
        self, host: int, *argv: str, name: str | None = None, env: Mapping[str, str] | None = None
    ) -> Process:
        """Start a long-running process with a host's environment (plus `env`), e.g. a worker.

        A first word that is one of the virtualenv's programs (enablement, gunicorn, python)
        runs from there. The process is stopped by close(); kill() it to crash it.
        """
        argv = list(argv)
        program = BIN / argv[0]
        if program.exists():
            argv[0] = str(program)
        label = name or f"{self.hosts[host].name} {Path(argv[0]).name} {len(self.processes) + 1}"
        log = self.root / f"{label.replace(' ', '-')}.log"
        process = Process(label, argv, {**self.hosts[host].env, **(env or {})}, log)
        self.processes.append(process)
        return process
