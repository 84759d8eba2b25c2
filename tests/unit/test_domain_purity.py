"""The domain stays pure: it imports no web, database, HTTP or CRM libraries."""

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
