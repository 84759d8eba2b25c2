"""The command line given hostile arguments: a one-line error and exit 1 or 2, never a traceback."""

from __future__ import annotations

import pytest

# (arguments, exit status, what the one error line says)
CASES = [
    (["tokens", "revoke", "99999999999999999999"], 1, "no token with id 99999999999999999999"),
    (["tokens", "revoke", "2147483648"], 1, "no token with id 2147483648"),
    (["tokens", "revoke", "0"], 1, "no token with id 0"),
    (["tokens", "revoke", "\u0661\u0662"], 2, "plain digits"),
    (["tokens", "revoke", "1_0"], 2, "plain digits"),
    (["export", "deals", "--output", "/nonexistent/dir/x.jsonl"], 1, "No such file or directory"),
    (["export", "assets", "--format", "csv", "--output", "/nonexistent/x.csv"], 1, "/nonexistent"),
    (["export", "shares", "--output", "/proc/version/x"], 1, "/proc/version/x"),
    (["report", "coverage", "--output", "/nonexistent/dir/x.json"], 1, "cannot write"),
    (["recommend", "a\x00b"], 2, "NUL byte"),
    (["stage-map", "set", "p\x00", "s", "none"], 2, "NUL byte"),
    (["tokens", "create", "--role", "sales", "--name", "a\x00b"], 2, "NUL byte"),
    (["tokens", "create", "--role", "sales", "--name", "x", "--owner-id", "o" * 300], 1, "64"),
    (["demo", "--seed", "-1", "--deals", "5", "--assets", "20"], 2, "--seed"),
]


@pytest.mark.parametrize(("args", "status", "says"), CASES, ids=lambda v: repr(v)[:40])
def test_hostile_arguments_end_in_one_clear_line(runner, args, status, says):
    from enablement.cli import cli

    with runner.app.app_context():
        result = runner.runner.invoke(cli, args, obj={}, catch_exceptions=True)
    assert result.exit_code == status, (result.output, result.exception)
    assert isinstance(result.exception, SystemExit)  # no exception escaped: no traceback
    assert "Traceback" not in result.output
    assert says in result.output
    error_lines = [
        line for line in result.output.splitlines() if line.startswith(("error", "Error"))
    ]
    assert len(error_lines) == 1
