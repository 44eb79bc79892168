"""Imports between promoterlab's modules form a DAG, and (to come) point only down the layers.

Imports are read from the source with ``ast``: ``import promoterlab.x`` and ``from promoterlab...
import ...``, at module level and inside functions alike (a lazy import is still an arrow);
imports under ``if TYPE_CHECKING:`` are left out, as they never run.
"""

from __future__ import annotations

import ast
import fnmatch
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"

# Bottom first; a module may import from its own layer and the layers below it. A layer is a list of
# modules or packages (a package stands for its submodules too), or fnmatch patterns.
LAYERS = [
    ["promoterlab.version", "promoterlab.sequence", "promoterlab.precision", "promoterlab.files",
     "promoterlab.objective"],
    ["promoterlab.models", "promoterlab.data", "promoterlab.datasets"],
    ["promoterlab.config"],
    ["promoterlab.runs"],
    ["promoterlab.pretrained", "promoterlab.evaluation"],
    ["promoterlab.training", "promoterlab.interpret", "promoterlab.design"],
    ["promoterlab.experiments"],
    ["promoterlab.api"],
    ["promoterlab.cli*", "promoterlab.__main__"],
]


def module_files(src: Path = SRC) -> dict[str, Path]:
    """Every module under ``src/promoterlab`` by dotted name (a package by its own name)."""
    modules = {}
    for path in sorted((src / "promoterlab").rglob("*.py")):
        parts = path.relative_to(src).with_suffix("").parts
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING"
            or isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imported_names(tree: ast.AST):
    """``(module, names)`` of every import that runs, ``names`` empty for ``import module``."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and _is_type_checking(node):
            yield from _imported_names(ast.Module(body=node.orelse, type_ignores=[]))
            continue
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, []
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module, [alias.name for alias in node.names]
        yield from _imported_names(node)


def import_graph(src: Path = SRC) -> dict[str, set[str]]:
    """Module -> the promoterlab modules it imports (``from package import submodule`` is an arrow
    to the submodule, ``from package import name`` one to the package)."""
    modules = module_files(src)
    graph = {}
    for name, path in modules.items():
        targets = set()
        for module, names in _imported_names(ast.parse(path.read_text(), str(path))):
            if module not in modules:
                continue
            submodules = [f"{module}.{n}" for n in names if f"{module}.{n}" in modules]
            targets.update(submodules)
            if len(submodules) < len(names) or not names:
                targets.add(module)
        graph[name] = targets - {name}
    return graph


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The import cycles of ``graph``: one per strongly connected component of more than one
    module, as a closed path ``[a, b, ..., a]``."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    components = []

    def visit(node: str) -> None:  # Tarjan's algorithm
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while not component or component[-1] != node:
                component.append(stack.pop())
            if len(component) > 1:
                components.append(set(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return [_closed_path(graph, component) for component in components]


def _closed_path(graph: dict[str, set[str]], component: set[str]) -> list[str]:
    """A cycle through the first module of ``component``, found breadth-first."""
    start = min(component)
    came_from = {start: None}
    frontier = [start]
    while frontier:
        node = frontier.pop(0)
        for target in sorted(graph[node] & component):
            if target == start:
                path = [node]
                while came_from[path[-1]] is not None:
                    path.append(came_from[path[-1]])
                return [start, *reversed(path[:-1]), start] if len(path) > 1 else [start, node, start]
            if target not in came_from:
                came_from[target] = node
                frontier.append(target)
    return sorted(component)


def layer_of(module: str, layers: list[list[str]]) -> int | None:
    """The index of the layer that ``module`` belongs to, or ``None``."""
    for number, layer in enumerate(layers):
        if any(module == entry or module.startswith(entry + ".") or fnmatch.fnmatchcase(module, entry)
               for entry in layer):
            return number
    return None


def upward_imports(graph: dict[str, set[str]], layers: list[list[str]]) -> list[str]:
    """Every import from a module into a higher layer than its own, as ``"a -> b"`` (modules in no
    layer are not checked)."""
    found = []
    for module in sorted(graph):
        own = layer_of(module, layers)
        for target in sorted(graph[module]):
            theirs = layer_of(target, layers)
            if own is not None and theirs is not None and theirs > own:
                found.append(f"{module} -> {target}")
    return found


def test_the_cycle_finder_finds_cycles():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set(), "e": {"e"}, "f": {"d"}}
    assert find_cycles(graph) == [["a", "b", "c", "a"]]
    assert find_cycles({"a": {"b"}, "b": {"a"}, "c": {"a"}}) == [["a", "b", "a"]]
    assert find_cycles({"a": {"b"}, "b": set()}) == []
    assert upward_imports({"x.low": {"x.high"}, "x.high": {"x.low"}}, [["x.low"], ["x.high"]]) == ["x.low -> x.high"]


def test_the_import_graph_reads_every_kind_of_import(tmp_path):
    package = tmp_path / "promoterlab"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                                         "    from promoterlab.top import thing\n")
    (package / "sub" / "__init__.py").write_text("NAME = 1\n")
    (package / "sub" / "leaf.py").write_text("def f():\n    import promoterlab.top\n")
    (package / "top.py").write_text("from promoterlab.sub import NAME, leaf\nfrom promoterlab import sub\n")
    assert import_graph(tmp_path) == {"promoterlab": set(), "promoterlab.sub": set(),
                                      "promoterlab.sub.leaf": {"promoterlab.top"},
                                      "promoterlab.top": {"promoterlab.sub", "promoterlab.sub.leaf"}}
    assert find_cycles(import_graph(tmp_path)) == [["promoterlab.sub.leaf", "promoterlab.top",
                                                    "promoterlab.sub.leaf"]]


def test_promoterlab_imports_form_no_cycle():
    graph = import_graph()
    assert {"promoterlab.sequence", "promoterlab.data.store_batches", "promoterlab.models"} <= set(graph)
    assert find_cycles(graph) == []


def test_the_sequence_module_is_the_bottom_layer():
    assert import_graph()["promoterlab.sequence"] == set()


def test_imports_point_only_down_the_layers():
    assert upward_imports(import_graph(), LAYERS) == []
