"""What a new user meets first: settings errors, choosing the port, which instance answers."""

import json
import subprocess
import time
import urllib.request

import pytest

from tests.test_serving import BIN, ROOT, free_port, run


@pytest.fixture
def env(tmp_path):
    import os

    environ = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DATABASE_URL", "HUBSPOT_", "PUBLIC_BASE_URL", "PORT"))
    }
    environ["ENABLEMENT_INSTANCE_PATH"] = str(tmp_path / "instance")
    return environ


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("COVERAGE_MIN_ASSETS", "abc"),
        ("COVERAGE_MIN_ASSETS", "-1"),
        ("DATABASE_URL", "postgres//oops"),
        ("PUBLIC_BASE_URL", "ftp://x"),
    ],
)
def test_a_bad_setting_is_one_line_and_exit_1_for_a_command(env, name, value):
    result = run("tokens", "list", env={**env, name: value})
    assert result.returncode == 1
    assert result.stderr.startswith(f"error: {name} must")
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr


def test_help_works_even_with_a_bad_setting(env):
    for args in (["--help"], ["tokens", "--help"], ["report", "--help"]):
        result = run(*args, env={**env, "COVERAGE_MIN_ASSETS": "abc"})
        assert result.returncode == 0, result.stderr
        assert "Usage:" in result.stdout


def test_an_unwritable_instance_folder_is_one_line(env, tmp_path):
    (tmp_path / "file").write_text("x")
    result = run("init", env={**env, "ENABLEMENT_INSTANCE_PATH": str(tmp_path / "file" / "sub")})
    assert result.returncode == 1
    assert result.stderr.startswith("error: ENABLEMENT_INSTANCE_PATH must be a folder")
    assert "Traceback" not in result.stderr


def test_gunicorn_with_a_bad_setting_says_one_line_without_a_traceback(env):
    cmd = [str(BIN / "gunicorn"), "-w", "1", "-b", f"127.0.0.1:{free_port()}", "wsgi:app"]
    result = subprocess.run(
        cmd,
        env={**env, "COVERAGE_MIN_ASSETS": "abc"},
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert result.returncode != 0
    assert "error: COVERAGE_MIN_ASSETS must be a whole number from 0 to 1000" in result.stderr
    assert "Traceback" not in result.stderr


def _get_json(url: str, deadline: float, server: subprocess.Popen) -> dict:
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return json.load(response)
        except OSError:
            if time.monotonic() > deadline or server.poll() is not None:
                raise
            time.sleep(0.2)


@pytest.mark.parametrize("how", ["option", "environment"])
def test_serve_listens_on_the_chosen_port_and_links_follow_it(env, how):
    assert run("init", env=env).returncode == 0
    port = free_port()
    args = ["serve", "--port", str(port)] if how == "option" else ["serve"]
    environ = env if how == "option" else {**env, "PORT": str(port)}
    server = subprocess.Popen(
        [str(BIN / "enablement"), *args],
        env=environ,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=ROOT,
    )
    try:
        health = _get_json(f"http://127.0.0.1:{port}/healthz", time.monotonic() + 30, server)
    finally:
        server.terminate()
        out, _ = server.communicate(timeout=30)
    assert health["status"] == "ok"
    assert health["name"] == "enablement"
    from importlib.metadata import version

    assert health["version"] == version("enablement")
    assert f"links use http://127.0.0.1:{port}" in out


def test_the_demo_prints_links_for_the_port_chosen(env):
    assert run("init", env=env).returncode == 0
    result = run("demo", "--deals", "40", "--assets", "20", env={**env, "PORT": "8123"})
    assert result.returncode == 0, result.stderr
    assert "http://127.0.0.1:8123/api/v1/assets" in result.stdout
    assert ":5000" not in result.stdout


def test_make_run_passes_the_port_on():
    dry = subprocess.run(
        ["make", "-n", "run", "PORT=8080"], capture_output=True, text=True, cwd=ROOT, timeout=30
    )
    assert "PORT=8080 .venv/bin/enablement serve" in dry.stdout
    assert "PORT=8080 .venv/bin/enablement demo --if-empty" in dry.stdout
