"""The CLI starts fast: statistics libraries load when a report runs, not at start-up."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent
HEAVY = ("numpy", "pandas", "scipy", "statsmodels", "lifelines")
# Loaded when a command needs them (migrations, HubSpot, page fetches, the API document).
ON_DEMAND = ("alembic", "requests", "urllib3", "hubspot", "psycopg", "apispec", "integrations")
# `enablement --help` imports about 590 modules today (Flask, SQLAlchemy and click are most of
# them); numpy alone would add about 130 and pandas several hundred.
HELP_MODULES = 700
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


def imported_by(command: list[str], env: dict, cwd: Path) -> set[str]:
    """Every module a command's Python imports, read from -X importtime (the same on a busy machine)."""
    result = subprocess.run(
        command,
        capture_output=True,
        text=True,
        env={**env, "PYTHONPROFILEIMPORTTIME": "1"},
        cwd=cwd,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "Usage:" in result.stdout
    # "import time: self [us] | cumulative | imported package", nested names indented
    return {
        line.rsplit("|", 1)[1].strip()
        for line in result.stderr.splitlines()
        if line.startswith("import time:") and line.split(":", 1)[1].split("|")[0].strip().isdigit()
    }


def test_help_imports_only_what_the_command_line_needs(env, tmp_path):
    # NOTE: the modules imported, not the seconds taken: the same count on an idle laptop and a
    # loaded CI machine, so the test cannot flake, and a library coming back shows by its name.
    modules = imported_by([str(BIN / "enablement"), "--help"], env, tmp_path)
    packages = {name.split(".")[0] for name in modules}
    assert "enablement.cli" in modules
    assert packages.isdisjoint(HEAVY + ON_DEMAND), sorted(packages & {*HEAVY, *ON_DEMAND})
    postgres_dialect = {m for m in modules if m.startswith("sqlalchemy.dialects.postgresql")}
    assert not postgres_dialect, sorted(postgres_dialect)
    assert len(modules) <= HELP_MODULES, len(modules)
