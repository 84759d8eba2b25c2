"""The documented production server keeps answering /healthz while slow clients hold connections."""

import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from enablement import serving

BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parent.parent
SLOW_CLIENTS = 12  # more than the server's processes: each would hold a sync worker for good
DEADLINE = 2  # REQUEST_HEADER_TIMEOUT and REQUEST_BODY_TIMEOUT of the server under test


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_command(port: int) -> list[str]:
    """The README's production command, with fewer processes for a 2-core machine."""
    return [
        str(BIN / "gunicorn"),
        "-c",
        "python:enablement.serving",
        "-w",
        "2",
        "-b",
        f"127.0.0.1:{port}",
        "wsgi:app",
    ]


@pytest.fixture
def server(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "HUBSPOT_"))}
    env["ENABLEMENT_INSTANCE_PATH"] = str(tmp_path / "instance")
    env["REQUEST_HEADER_TIMEOUT"] = env["REQUEST_BODY_TIMEOUT"] = str(DEADLINE)
    init = subprocess.run(
        [str(BIN / "enablement"), "init"], env=env, capture_output=True, timeout=120, cwd=ROOT
    )
    assert init.returncode == 0, init.stderr
    port = free_port()
    log = tmp_path / "gunicorn.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            server_command(port), env=env, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT
        )
    try:
        deadline = time.monotonic() + 30
        while healthz(port, timeout=1) != 200:
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "gunicorn did not answer /healthz in 30 s"
            time.sleep(0.2)
        yield port
    finally:
        process.terminate()
        process.wait(timeout=30)


def healthz(port: int, timeout: float) -> int | None:
    """The status of GET /healthz, or None when it does not answer within `timeout` seconds."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            status_line = s.recv(64).split(b"\r\n", 1)[0]
        return int(status_line.split()[1])
    except (OSError, IndexError, ValueError):
        return None


def trickle(port: int, opening: bytes, closed_after: list[float], stop: threading.Event) -> None:
    """Send `opening`, then one byte every 0.3 s; record how long until the server closes."""
    start = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(opening)
        s.settimeout(0.3)
        while not stop.is_set():
            try:
                s.sendall(b"x")
                if s.recv(4096) == b"":
                    break
            except TimeoutError:
                continue
            except OSError:
                break
        else:
            return
    closed_after.append(time.monotonic() - start)


def test_slow_clients_neither_stop_healthz_nor_keep_their_connection(server):
    port = server
    stop = threading.Event()
    closed_after: list[float] = []
    openings = [b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: "] * (SLOW_CLIENTS - 2) + [
        b"POST /api/v1/assets HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n",
        b"POST /api/v1/assets HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n4000\r\n",
    ]
    threads = [
        threading.Thread(target=trickle, args=(port, opening, closed_after, stop), daemon=True)
        for opening in openings
    ]
    for thread in threads:
        thread.start()
    time.sleep(0.5)
    probes = []
    for _ in range(10):
        started = time.monotonic()
        probes.append((healthz(port, timeout=1.5), time.monotonic() - started))
        time.sleep(0.3)
    stop.set()
    for thread in threads:
        thread.join(timeout=5)

    assert [status for status, _ in probes] == [200] * 10, probes
    assert max(seconds for _, seconds in probes) < 1.5
    # Every slow connection was closed by the server after its deadline, not held for good.
    assert len(closed_after) == SLOW_CLIENTS, closed_after
    assert all(DEADLINE - 0.5 < seconds < DEADLINE + 2 for seconds in closed_after), closed_after


def test_a_chunk_announcing_more_than_the_body_limit_is_refused_at_once(server):
    with socket.create_connection(("127.0.0.1", server), timeout=5) as s:
        started = time.monotonic()
        s.sendall(
            b"POST /api/v1/assets HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"FFFFFFFFFFFFFFFFFFFF\r\nabc"
        )
        answer = s.recv(4096)
    assert answer.startswith(b"HTTP/1.1 400"), answer
    assert time.monotonic() - started < DEADLINE


@pytest.mark.parametrize(
    "name, value", [("REQUEST_HEADER_TIMEOUT", "0"), ("REQUEST_BODY_TIMEOUT", "soon")]
)
def test_a_bad_read_deadline_is_one_clear_error(name, value):
    from enablement.config import Settings
    from enablement.errors import InvalidInput

    with pytest.raises(InvalidInput, match=f"{name} must be a whole number"):
        Settings.from_env({name: value})
    assert Settings.from_env({}).request_header_timeout == 10
    assert Settings.from_env({}).request_body_timeout == 30


def test_every_documented_production_command_uses_the_slow_client_setup():
    commands = {
        "README.md": (ROOT / "README.md").read_text(encoding="utf-8"),
        "docs/operating.md": (ROOT / "docs" / "operating.md").read_text(encoding="utf-8"),
        "deploy/Procfile": (ROOT / "deploy" / "Procfile").read_text(encoding="utf-8"),
        "deploy/systemd/enablement-web.service": (
            ROOT / "deploy" / "systemd" / "enablement-web.service"
        ).read_text(encoding="utf-8"),
    }
    for name, text in commands.items():
        lines = [line for line in text.splitlines() if "gunicorn -" in line]
        assert lines, name
        assert all("-c python:enablement.serving" in line for line in lines), (name, lines)
    assert serving.worker_class == "enablement.serving.BoundedReadWorker"
    assert serving.threads > 1
