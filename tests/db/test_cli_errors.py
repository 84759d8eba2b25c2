"""The command line ends every error in one line and exit status 1; a traceback only with --debug."""

from __future__ import annotations

import pytest
from sqlalchemy.exc import IntegrityError

from enablement.cli import cli


@pytest.fixture
def crashing_command():
    """A command that fails the way a lost write race does (an error no rule expects)."""

    @cli.command("crash-for-test")
    def crash() -> None:
        raise IntegrityError(
            "INSERT INTO deals ...",
            {},
            Exception('duplicate key value violates "pk_deals"\nDETAIL'),
        )

    yield "crash-for-test"
    cli.commands.pop("crash-for-test")


def test_an_unexpected_error_is_one_line_and_exit_1_without_a_traceback(runner, crashing_command):
    result = runner(crashing_command)
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: unexpected IntegrityError:")
    assert "pk_deals" in lines[0] and "--debug" in lines[0]
    assert "Traceback" not in result.output


def test_debug_shows_the_traceback_of_an_unexpected_error(runner, crashing_command):
    result = runner("--debug", crashing_command)
    assert result.exit_code == 1
    assert "Traceback" in result.stderr


def test_usage_errors_are_still_clicks_own(runner):
    result = runner("no-such-command")
    assert result.exit_code == 2
    assert "No such command" in result.output
