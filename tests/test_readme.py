"""The README's commands exist as written."""

import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from enablement.cli import cli

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()
MAKEFILE = (Path(__file__).resolve().parent.parent / "Makefile").read_text()
COMMANDS = sorted(
    {
        line.strip()
        for line in README.splitlines()
        if re.match(r"^\s{4,}(\.venv/bin/)?enablement ", line)
    }
)


def command_words(line: str) -> list[str]:
    """The subcommand path of a README line: words up to the first argument, option or placeholder."""
    words = []
    for word in line.split()[1:]:
        if not re.fullmatch(r"[a-z][a-z-]*", word):
            break
        words.append(word)
    return words


def test_the_readme_starts_with_the_two_setup_commands():
    top = README.split("## ", 1)[0]
    assert "make run" in top and "make test" in top
    assert re.search(r"^run:", MAKEFILE, re.M) and re.search(r"^test:", MAKEFILE, re.M)


def test_the_readme_shows_commands():
    assert len(COMMANDS) > 15


@pytest.mark.parametrize("line", COMMANDS)
def test_every_readme_command_exists(line):
    words = command_words(line.removeprefix(".venv/bin/"))
    # Stop at the deepest prefix that is a command (later words may be argument values).
    group, path = cli, []
    for word in words:
        if not hasattr(group, "commands") or word not in group.commands:
            break
        group, path = group.commands[word], [*path, word]
    assert path, f"no such command: {line}"
    result = CliRunner().invoke(cli, [*path, "--help"], obj={})
    assert result.exit_code == 0, result.output
    for flag in re.findall(r"(?<![\w-])--[a-z][a-z-]+", line.split("#")[0]):
        assert flag in result.output, f"{line}: {flag} is not an option of {' '.join(path)}"
