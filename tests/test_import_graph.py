"""The package's imports point down: no module reaches itself through its imports, counting
imports inside functions too (they run sooner or later, and they are what a reader follows)."""

import ast
import os

import recbole_hiertcn

PACKAGE = "recbole_hiertcn"
ROOT = os.path.dirname(recbole_hiertcn.__file__)


def _module_name(path):
    relative = os.path.relpath(path, os.path.dirname(ROOT))[:-len(".py")].split(os.sep)
    if relative[-1] == "__init__":
        relative.pop()
    return ".".join(relative)


def _imported(tree, module, is_package, modules):
    """Names of the package's modules that ``module`` imports anywhere in its source.
    ``from package import submodule`` imports the submodule (a package's ``__init__`` runs
    before any of its submodules anyway, so that is no edge of the module's own)."""
    base = module.split(".") if is_package else module.split(".")[:-1]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            # a relative import's level climbs from the module's own package
            prefix = base[:len(base) - node.level + 1] if node.level else []
            source = ".".join(prefix + ([node.module] if node.module else []))
            submodules = [f"{source}.{alias.name}" for alias in node.names
                          if f"{source}.{alias.name}" in modules]
            yield from submodules
            if len(submodules) < len(node.names):
                yield source


def import_graph():
    """``{module: {package modules it imports}}`` over every module of the package."""
    files = {}
    for folder, _, names in os.walk(ROOT):
        for name in names:
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                files[_module_name(path)] = path
    graph = {}
    for module, path in files.items():
        with open(path, encoding="utf-8") as handle:
            tree = ast.parse(handle.read(), path)
        is_package = path.endswith("__init__.py")
        graph[module] = {name for name in _imported(tree, module, is_package, files)
                         if name in files and name != module and name != PACKAGE}
    return graph


def find_cycle(graph):
    """One cycle as a list of modules (first == last), or None."""
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == "open":
                return stack[stack.index(target):] + [target]
            if target not in state:
                found = visit(target)
                if found:
                    return found
        stack.pop()
        state[node] = "done"
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_the_finder_sees_a_cycle_and_an_acyclic_graph():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_the_graph_holds_function_level_imports():
    graph = import_graph()
    # checkpoint imports the model names inside a function, and that edge must be seen
    assert "recbole_hiertcn.model.names" in graph["recbole_hiertcn.checkpoint"]


def test_no_module_reaches_itself_through_its_imports():
    cycle = find_cycle(import_graph())
    assert cycle is None, " -> ".join(cycle)
