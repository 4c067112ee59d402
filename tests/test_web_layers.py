"""The web console's own layering: route modules never import the app that includes them."""

from __future__ import annotations

import ast
from pathlib import Path

WEB = Path(__file__).resolve().parents[1] / "console" / "web"
# session.exec(select(...)) and its kin belong to the core, not to a route.
QUERIES = {"exec", "execute", "scalar", "scalars"}


def _imported(tree: ast.AST) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)
    return names


def _modules() -> list[Path]:
    return sorted(p for p in WEB.rglob("*.py") if p.name != "app.py")


def test_no_web_module_imports_the_app() -> None:
    offenders = [
        str(p.relative_to(WEB))
        for p in _modules()
        if "console.web.app" in _imported(ast.parse(p.read_text()))
    ]
    assert offenders == [], f"{offenders} import console.web.app: take what they need from deps.py"


def test_no_route_queries_the_database_itself() -> None:
    offenders = []
    for p in _modules():
        for node in ast.walk(ast.parse(p.read_text())):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in QUERIES
            ):
                offenders.append(f"{p.name}:{node.lineno}")
    assert offenders == [], f"queries in the web layer, move them to campaigns/: {offenders}"


def test_the_checks_see_an_import_and_a_query() -> None:
    tree = ast.parse("from console.web.app import render\ns.exec(select(A))\n")
    assert "console.web.app" in _imported(tree)
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call)]
    assert any(isinstance(c.func, ast.Attribute) and c.func.attr in QUERIES for c in calls)
