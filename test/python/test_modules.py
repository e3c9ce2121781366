"""The ``erlang`` package's modules import one another without a cycle, and
the layers point one way: the server (``_server``) uses the features and
the interop, never the other way round; no part of the server imports
the compat layer."""

from __future__ import annotations

import ast
import os

import erlang

PACKAGE_DIR = os.path.dirname(erlang.__file__)


def package_modules() -> dict[str, str]:
    """Every module of the package by dotted name relative to it
    (``_wire``, ``_server.core``; a subpackage by its own name), to its path."""
    found: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(PACKAGE_DIR):
        dirnames[:] = [d for d in dirnames if not d.startswith("__")]
        rel = os.path.relpath(dirpath, PACKAGE_DIR)
        prefix = [] if rel == "." else rel.split(os.sep)
        for name in filenames:
            if not name.endswith(".py"):
                continue
            stem = name[:-3]
            parts = prefix if stem == "__init__" else prefix + [stem]
            if parts:
                found[".".join(parts)] = os.path.join(dirpath, name)
    return found


def module_imports(name: str, path: str, modules: set[str]) -> set[str]:
    """Package modules ``name`` imports when it loads (not those imported
    lazily inside functions or only for type checking)."""
    is_package = path.endswith("__init__.py")
    here = name.split(".") if is_package else name.split(".")[:-1]
    tree = ast.parse(open(path, encoding="utf-8").read())
    found: set[str] = set()
    for node in tree.body:
        if not (isinstance(node, ast.ImportFrom) and node.level >= 1):
            continue
        base = here[:len(here) - (node.level - 1)] if node.level > 1 else here
        target = base + (node.module.split(".") if node.module else [])
        dotted = ".".join(target)
        if node.module:
            found.add(dotted)
        for alias in node.names:
            sub = ".".join(target + [alias.name])
            if sub in modules:
                found.add(sub)
        # importing a.b loads the package a first (a module of a itself
        # is loaded by a, or with it)
        for i in range(1, len(target)):
            parent = ".".join(target[:i])
            if not name.startswith(parent + "."):
                found.add(parent)
    return {m for m in found if m in modules and m != name}


def import_graph() -> dict[str, set[str]]:
    modules = package_modules()
    names = set(modules)
    return {name: module_imports(name, path, names) for name, path in modules.items()}


def test_no_import_cycle():
    graph = import_graph()
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


def test_the_graph_sees_the_server_package():
    graph = import_graph()
    assert {"_server", "_server.core", "_server.tasks", "_server.port"} <= set(graph)
    assert "_server.core" in graph["_server.tasks"]
    assert "_wire" in graph["_server.core"]
    assert "_server.port" in graph["_server"]


def test_layers_point_one_way():
    graph = import_graph()
    server = {name for name in graph if name == "_server" or name.startswith("_server.")}
    for name in graph:
        if name not in server and name != "_main":
            assert not (graph[name] & server), f"{name} imports the server"
    assert not any("_compat" in graph[name] for name in server)
    # _compat uses the public names of what it needs, no private ones
    tree = ast.parse(open(package_modules()["_compat"], encoding="utf-8").read())
    for node in tree.body:
        # `from . import _wire` names modules; `from ._x import _y` a private name
        if isinstance(node, ast.ImportFrom) and node.level == 1 and node.module:
            private = [a.name for a in node.names if a.name.startswith("_")]
            assert private == [], f"_compat imports {private} from {node.module}"
