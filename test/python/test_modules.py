"""The ``erlang`` package's modules import one another without a cycle."""

from __future__ import annotations

import ast
import os

import erlang

PACKAGE_DIR = os.path.dirname(erlang.__file__)


def module_imports(path: str) -> set[str]:
    """Sibling modules ``path`` imports when it loads (not those imported
    lazily inside functions or only for type checking)."""
    tree = ast.parse(open(path, encoding="utf-8").read())
    found: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            if node.module:
                found.add(node.module)
            else:
                found.update(alias.name for alias in node.names)
    return found


def test_no_import_cycle():
    graph = {name[:-3]: module_imports(os.path.join(PACKAGE_DIR, name))
             for name in os.listdir(PACKAGE_DIR) if name.endswith(".py")}
    state: dict[str, str] = {}

    def visit(module: str, path: list[str]) -> None:
        if state.get(module) == "done":
            return
        assert state.get(module) != "open", " -> ".join(path + [module])
        state[module] = "open"
        for dep in sorted(graph.get(module, ())):
            visit(dep, path + [module])
        state[module] = "done"

    for module in sorted(graph):
        visit(module, [])
    assert "_port" not in graph["_interop"] and "_main" not in graph["_port"]
