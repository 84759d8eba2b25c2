"""The README's commands exist as written."""

import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from enablement.cli import cli

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
MAKEFILE = (ROOT / "Makefile").read_text()
# The README and every page of docs/: what a user reads, all of it inside the repository.
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
COMMANDS = sorted(
    {
        line.strip()
        for page in PAGES
        for line in page.read_text(encoding="utf-8").splitlines()
        if re.match(r"^\s{4,}(\.venv/bin/)?enablement ", line)
    }
    # Commands quoted in the prose too: `enablement export pipelines`.
    | {
        quoted
        for page in PAGES
        for quoted in re.findall(r"`((?:\.venv/bin/)?enablement [^`]+)`", page.read_text("utf-8"))
    }
)
_LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
LINKS = sorted(
    {
        (page.relative_to(ROOT).as_posix(), target)
        for page in PAGES
        for target in _LINK.findall(page.read_text(encoding="utf-8"))
        if not re.match(r"^[a-z]+:", target)
    }
)
# Pages other engineers are writing now; a link to one of them is checked once it exists.
# TODO(lead): drop this list when they are all in docs/.


def anchors(path: Path) -> set[str]:
    """GitHub's anchors of a Markdown file's headings."""
    found = set()
    for line in path.read_text(encoding="utf-8").splitlines():
        heading = re.match(r"^#{1,6}\s+(.*)", line)
        if heading:
            text = re.sub(r"[^\w\- ]", "", heading.group(1).strip().lower())
            found.add(text.replace(" ", "-"))
    return found


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
    assert path or not words, f"no such command: {line}"
    result = CliRunner().invoke(cli, [*path, "--help"], obj={})
    assert result.exit_code == 0, result.output
    for flag in re.findall(r"(?<![\w-])--[a-z][a-z-]+", line.split("#")[0]):
        assert flag in result.output, f"{line}: {flag} is not an option of {' '.join(path)}"


def test_the_docs_folder_has_the_product_pages():
    for name in ("README.md", "concepts.md", "file-formats.md", "api.md", "operating.md"):
        assert (ROOT / "docs" / name).is_file(), name
    assert "docs/README.md" in README or "(docs/)" in README


def test_nothing_points_outside_the_repository():
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        assert "../shared" not in text, page
        assert "/work/" not in text, page


@pytest.mark.parametrize(("page", "target"), LINKS)
def test_every_relative_link_resolves(page, target):
    path_part, _, anchor = target.partition("#")
    source = ROOT / page
    resolved = (source.parent / path_part).resolve() if path_part else source
    assert ROOT in resolved.parents or resolved == ROOT, f"{page}: {target} leaves the repository"
    relative = resolved.relative_to(ROOT).as_posix()
    assert resolved.exists(), f"{page}: {target} does not exist"
    if anchor and resolved.suffix == ".md":
        assert anchor in anchors(resolved), f"{page}: no heading for #{anchor} in {relative}"


def test_every_page_of_docs_is_linked_from_the_index():
    index = (ROOT / "docs" / "README.md").read_text(encoding="utf-8")
    for page in (ROOT / "docs").glob("*.md"):
        if page.name != "README.md":
            assert f"]({page.name})" in index, page.name


def test_every_setting_is_documented_in_the_operating_page():
    config = (ROOT / "enablement" / "config.py").read_text(encoding="utf-8")
    names = set(re.findall(r"""env(?:\.get\(|\[)["']([A-Z_]+)["']""", config))
    assert {"DATABASE_URL", "PORT", "COVERAGE_MIN_ASSETS"} <= names
    operating = (ROOT / "docs" / "operating.md").read_text(encoding="utf-8")
    assert not [n for n in sorted(names) if f"`{n}`" not in operating]


def test_every_api_route_is_documented_in_docs(app):
    docs = "\n".join(p.read_text(encoding="utf-8") for p in (ROOT / "docs").glob("*.md"))
    # NOTE: docs name path arguments freely (<id> for <asset_id>); the shape must match.
    documented = {
        re.sub(r"<[^>]+>", "<>", path) for path in re.findall(r"/api/v1/[\w/<>.-]+", docs)
    }
    missing = []
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/api/v1/"):
            shape = re.sub(r"<[^>]+>", "<>", rule.rule)
            if shape not in documented:
                missing.append(rule.rule)
    assert not missing
