"""`make test-fast`'s --sqlite-only: PostgreSQL variants are left out even with TEST_DATABASE_URL set."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ONE_TEST = "tests/web/test_basics.py::test_openapi_document_is_public_and_openapi_3"


def test_sqlite_only_deselects_postgresql_and_never_connects_to_it():
    # NOTE: a URL nothing listens on: reaching for it would fail the run at set-up.
    env = {**os.environ, "TEST_DATABASE_URL": "postgresql+psycopg://nobody@127.0.0.1:9/none"}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--sqlite-only", ONE_TEST],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed, 1 deselected" in result.stdout
    assert "skipped" not in result.stdout
