"""The package's imports point down: no module reaches itself through its imports, counting
imports inside functions too (they run sooner or later, and they are what a reader follows),
and the RecBole-free parts reach no RecBole, not even through a function's import.

The graph is read from the source with ``ast``: ``from a import b`` is an edge to the module
``a.b`` when that is a module, else to ``a`` (the package ``recbole_hiertcn`` itself included:
its ``__init__`` is a module like any other). The plugin's setup imports ``compat`` and
``registry`` by name when RecBole is imported (:mod:`recbole_hiertcn.setup_trigger`), which is
no edge of the graph: it runs from RecBole's import, not from a plugin module's.
"""

import ast
import os

import recbole_hiertcn

PACKAGE = "recbole_hiertcn"
ROOT = os.path.dirname(recbole_hiertcn.__file__)

# Modules that must load without RecBole: serving an export (not writing one) and the setup.
# The shared model code they use moves to recbole_hiertcn.core, which is RecBole-free whole.
RECBOLE_FREE = ("recbole_hiertcn", "recbole_hiertcn.setup_trigger",
                "recbole_hiertcn.property_files", "recbole_hiertcn.serving",
                "recbole_hiertcn.serving.artifact", "recbole_hiertcn.serving.retrieval",
                "recbole_hiertcn.serving.state", "recbole_hiertcn.serving.store",
                "recbole_hiertcn.serving.redis_store", "recbole_hiertcn.serving.service",
                "recbole_hiertcn.serving.stream")
RECBOLE_FREE_PACKAGES = ("recbole_hiertcn.core",)


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


def _package_files():
    files = {}
    for folder, _, names in os.walk(ROOT):
        for name in names:
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                files[_module_name(path)] = path
    return files


def _all_imports():
    """``{module: set of every name it imports}``, the package's modules and others."""
    files = _package_files()
    imports = {}
    for module, path in files.items():
        with open(path, encoding="utf-8") as handle:
            tree = ast.parse(handle.read(), path)
        is_package = path.endswith("__init__.py")
        imports[module] = set(_imported(tree, module, is_package, files)) - {module}
    return files, imports


def import_graph():
    """``{module: {package modules it imports}}`` over every module of the package."""
    files, imports = _all_imports()
    return {module: {name for name in names if name in files}
            for module, names in imports.items()}


def reached(graph, start):
    """Every package module ``start`` imports, directly or through others (``start`` too)."""
    seen, todo = set(), [start]
    while todo:
        module = todo.pop()
        if module not in seen:
            seen.add(module)
            todo.extend(graph.get(module, ()))
    return seen


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


def test_the_package_itself_imports_only_its_setup_trigger():
    # ``import recbole_hiertcn.serving`` runs the package's __init__ first: it must stay light
    assert import_graph()[PACKAGE] == {"recbole_hiertcn.setup_trigger"}


def test_the_recbole_free_parts_reach_no_recbole():
    files, imports = _all_imports()
    graph = import_graph()
    free = [m for m in files if m in RECBOLE_FREE
            or any(m == p or m.startswith(p + ".") for p in RECBOLE_FREE_PACKAGES)]
    assert "recbole_hiertcn.serving.stream" in free
    for module in free:
        for through in sorted(reached(graph, module)):
            foreign = sorted(n for n in imports[through]
                             if n == "recbole" or n.startswith("recbole."))
            assert not foreign, f"{module} reaches {', '.join(foreign)} through {through}"
