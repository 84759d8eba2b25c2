"""The domain stays pure (no web, database, HTTP or CRM libraries) and cheap to import."""

import ast
from pathlib import Path

import enablement.domain

FORBIDDEN = (
    "flask",
    "sqlalchemy",
    "requests",
    "marshmallow",
    "hubspot",
    "urllib3",
    "integrations",
    "enablement.db",
    "enablement.web",
    "enablement.services",
)
# Loaded inside the functions that compute reports, never when a domain module is imported.
STATISTICS = ("pandas", "scipy", "statsmodels", "lifelines")


def test_domain_modules_import_nothing_impure():
    root = Path(enablement.domain.__file__).parent
    offenders = []
    for path in root.rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                if name.startswith(FORBIDDEN):
                    offenders.append(f"{path.name}: {name}")
    assert offenders == []


def _import_time_names(tree: ast.Module) -> list[str]:
    """Modules imported when the module itself is imported (not in functions, not TYPE_CHECKING)."""
    names = []
    pending = list(tree.body)
    while pending:
        node = pending.pop()
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            continue
        if isinstance(node, ast.If) and ast.unparse(node.test).endswith("TYPE_CHECKING"):
            pending.extend(node.orelse)
            continue
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.append(node.module)
        pending.extend(ast.iter_child_nodes(node))
    return names


def test_domain_modules_load_statistics_libraries_only_when_a_report_runs():
    root = Path(enablement.domain.__file__).parent
    offenders = [
        f"{path.name}: {name}"
        for path in sorted(root.rglob("*.py"))
        for name in _import_time_names(ast.parse(path.read_text()))
        if name.split(".")[0] in STATISTICS
    ]
    assert offenders == []
