"""``recbole_hiertcn.core`` stands without RecBole: its modules import the standard library,
numpy, torch and each other only; the serving side imports no RecBole either."""

import ast
import os
import subprocess
import sys

import pytest

import recbole_hiertcn

PACKAGE = os.path.dirname(os.path.abspath(recbole_hiertcn.__file__))
CORE = os.path.join(PACKAGE, "core")
CORE_MODULES = sorted(name[:-len(".py")] for name in os.listdir(CORE) if name.endswith(".py"))
ALLOWED = {"numpy", "torch"}


def imported_names(path):
    """Every module name an ``import`` statement of the file names (inside functions too)."""
    with open(path, encoding="utf-8") as handle:
        tree = ast.parse(handle.read())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path}: relative import"
            yield node.module


def test_core_has_its_modules():
    assert {"session_rule", "settings", "network", "layers", "gap_decay",
            "receptive_field", "seen_items"} <= set(CORE_MODULES)


@pytest.mark.parametrize("module", CORE_MODULES)
def test_a_core_module_imports_only_the_standard_library_numpy_torch_and_core(module):
    for name in imported_names(os.path.join(CORE, f"{module}.py")):
        top = name.split(".")[0]
        assert (top in sys.stdlib_module_names or top in ALLOWED
                or name == "recbole_hiertcn.core" or name.startswith("recbole_hiertcn.core.")), (
            module, name)


@pytest.mark.parametrize("module", [
    "property_files.py", "serving/artifact.py", "serving/state.py", "serving/stream.py",
    "serving/store.py", "serving/retrieval.py", "serving/redis_store.py", "serving/service.py",
])
def test_the_serving_modules_import_no_recbole(module):
    for name in imported_names(os.path.join(PACKAGE, module)):
        assert not name.startswith("recbole.") and name != "recbole", (module, name)
        if name.startswith("recbole_hiertcn."):
            assert not name.startswith(("recbole_hiertcn.data", "recbole_hiertcn.trainer",
                                        "recbole_hiertcn.model", "recbole_hiertcn.registry",
                                        "recbole_hiertcn.quick_start")), (module, name)


@pytest.mark.parametrize("module", ["recbole_hiertcn.core"] + [
    f"recbole_hiertcn.core.{name}" for name in CORE_MODULES if name != "__init__"])
def test_importing_core_loads_no_recbole_and_nothing_else_of_the_plugin(module):
    code = (f"import sys, {module}\n"
            "bad = sorted(m for m in sys.modules if m == 'recbole' or m.startswith('recbole.')\n"
            "             or (m.startswith('recbole_hiertcn.')\n"
            "                 and not m.startswith('recbole_hiertcn.core')\n"
            # the package __init__ imports only its setup trigger (standard library alone)
            "                 and m != 'recbole_hiertcn.setup_trigger'))\n"
            "print(bad)\n"
            "sys.exit(1 if bad else 0)\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=os.path.dirname(PACKAGE),
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
