"""The services know no web framework: Flask stays in web/, cli/ and the app factory."""

import ast
from pathlib import Path

import enablement

ROOT = Path(enablement.__file__).parent
FORBIDDEN = ("flask", "werkzeug", "enablement.web", "enablement.cli", "enablement.context")


def _imports(path: Path) -> list[str]:
    """Every module a file imports, at import time or inside functions."""
    names = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
            names += [f"{node.module}.{a.name}" for a in node.names]
    return names


def _file_of(module: str) -> Path | None:
    """The source file of an enablement module (not the package root: that is the app factory)."""
    parts = module.split(".")[1:]
    if not parts:
        return None
    base = ROOT.joinpath(*parts)
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def test_services_and_what_they_import_use_no_flask():
    pending = sorted((ROOT / "services").glob("*.py"))
    seen: set[Path] = set()
    offenders = []
    while pending:
        path = pending.pop()
        if path in seen:
            continue
        seen.add(path)
        for name in _imports(path):
            if name.startswith(FORBIDDEN):
                offenders.append(f"{path.relative_to(ROOT)}: {name}")
            elif name.startswith("enablement."):
                target = _file_of(name)
                if target is not None:
                    pending.append(target)
    assert len(seen) > len(list((ROOT / "services").glob("*.py")))  # it did follow imports
    assert offenders == []
