"""The installed console script and gunicorn serve the app as the README says."""

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parent.parent


def run(*args, env):
    return subprocess.run(
        [str(BIN / "enablement"), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )


@pytest.fixture
def env(tmp_path):
    environ = {
        k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "HUBSPOT_"))
    }
    environ["ENABLEMENT_INSTANCE_PATH"] = str(tmp_path / "instance")
    return environ


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_console_script_bad_setting_exits_1_without_traceback(env):
    result = run("tokens", "list", env={**env, "HUBSPOT_RATE_LIMIT": "lots"})
    assert result.returncode == 1
    assert "HUBSPOT_RATE_LIMIT" in result.stderr
    assert "Traceback" not in result.stderr


def test_console_script_bad_usage_exits_2(env):
    assert run("no-such-command", env=env).returncode == 2


def test_gunicorn_refuses_an_empty_database_then_serves_after_init(env):
    port = free_port()
    cmd = [
        str(BIN / "gunicorn"),
        "-w",
        "1",
        "-b",
        f"127.0.0.1:{port}",
        "--timeout",
        "30",
        "wsgi:app",
    ]
    refused = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert refused.returncode != 0
    assert "run `enablement init`" in refused.stderr

    assert run("init", env=env).returncode == 0
    server = subprocess.Popen(
        cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=ROOT
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(
                    f"http://127.0.0.1:{port}/readyz", timeout=2
                ) as response:
                    assert response.status == 200
                    break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise
                time.sleep(0.2)
    finally:
        server.terminate()
        server.wait(timeout=30)
        server.stderr.close()
