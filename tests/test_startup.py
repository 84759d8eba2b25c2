"""The CLI starts fast: statistics libraries load when a report runs, not at start-up."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent
HEAVY = ("numpy", "pandas", "scipy", "statsmodels", "lifelines")
# Generous: the statistics libraries alone add over a second, so this catches their return.
# NOTE: idle, `--help` takes about 0.5-0.8 s here (Flask and SQLAlchemy are most of it); the
# bound leaves room for a busy CI machine, while the sys.modules checks catch the real regression.
HELP_SECONDS = 1.5
LOADED = f"import sys; print(' '.join(m for m in {HEAVY!r} if m in sys.modules))"


@pytest.fixture
def env(tmp_path):
    """The environment of a fresh shell, with the instance folder in tmp_path."""
    environ = {
        k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "HUBSPOT_"))
    }
    environ["ENABLEMENT_INSTANCE_PATH"] = str(tmp_path / "instance")
    return environ


def python(code: str, env: dict, cwd: Path) -> subprocess.CompletedProcess:
    """Run Python code in a new interpreter; a failure fails the test with its output."""
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=cwd, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return result


def test_importing_the_cli_loads_no_statistics_library(env, tmp_path):
    result = python(f"import enablement.cli; {LOADED}", env, tmp_path)
    assert result.stdout.split() == []


def test_help_loads_no_statistics_library(env, tmp_path):
    # The console script's own steps (today main() also builds the app, web views included).
    code = (
        "from enablement.cli import main\n"
        "try:\n"
        "    main(['--help'])\n"
        "except SystemExit as e:\n"
        "    assert e.code == 0, e.code\n"
        f"{LOADED}"
    )
    result = python(code, env, tmp_path)
    assert "Usage:" in result.stdout
    assert result.stdout.splitlines()[-1].split() == []


def test_help_answers_within_a_second(env, tmp_path):
    timings = []
    # Best of five: the bound is about this code, not about a busy machine's worst moment.
    for _ in range(5):
        started = time.perf_counter()
        result = subprocess.run(
            [BIN / "enablement", "--help"],
            capture_output=True,
            text=True,
            env=env,
            cwd=tmp_path,
            timeout=60,
        )
        timings.append(time.perf_counter() - started)
        assert result.returncode == 0, result.stderr
    print(f"enablement --help: {', '.join(f'{t:.2f}' for t in timings)} s")
    assert min(timings) < HELP_SECONDS
