"""``import recbole_hiertcn`` sets RecBole up the moment RecBole is imported (at once if it
already is), and not before: the RecBole-free parts load without RecBole and without the modules
that patch it. Each check runs in a fresh interpreter."""

import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

LOADED = """
print("loaded:", sorted(m for m in sys.modules if m == "recbole" or m.startswith("recbole.")
                        or m in ("recbole_hiertcn.compat", "recbole_hiertcn.registry")))
"""


def run(code, cwd):
    done = subprocess.run([sys.executable, "-c", "import sys\n" + code], cwd=cwd,
                          capture_output=True, text=True, timeout=600,
                          env=dict(os.environ, PYTHONPATH=REPO))
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_serving_loads_neither_recbole_nor_what_patches_it(tmp_path):
    out = run("import recbole_hiertcn.serving\nimport recbole_hiertcn.serving.__main__\n"
              "import recbole_hiertcn.serving.artifact, recbole_hiertcn.serving.stream\n"
              + LOADED, tmp_path)
    assert out.rstrip().splitlines()[-1] == "loaded: []", out


def test_the_package_alone_loads_no_recbole_yet_and_a_finder_waits(tmp_path):
    out = run("import recbole_hiertcn\nfrom recbole_hiertcn import setup_trigger\n"
              "print('waiting:', any(isinstance(f, setup_trigger._Finder) for f in sys.meta_path),"
              " setup_trigger.is_set_up())\n" + LOADED, tmp_path)
    assert "waiting: True False" in out and out.rstrip().endswith("loaded: []"), out


def test_recbole_imported_after_the_package_is_set_up(tmp_path):
    out = run("""
import recbole_hiertcn
from recbole.utils import get_model
from recbole_hiertcn import setup_trigger
import numpy as np
assert get_model("HierTCN") is recbole_hiertcn.HierTCN
assert get_model("HRNN") is recbole_hiertcn.HRNN
assert setup_trigger.is_set_up() and hasattr(np, "float_")  # compat applied too
assert not any(isinstance(f, setup_trigger._Finder) for f in sys.meta_path)  # gone once done
from recbole.config import Config
print("ok", Config.__name__)
""", tmp_path)
    assert "ok Config" in out, out


def test_recbole_imported_before_the_package_is_set_up_at_once(tmp_path):
    out = run("""
import recbole
import recbole_hiertcn
from recbole_hiertcn import setup_trigger
assert setup_trigger.is_set_up()
import recbole.utils
assert recbole.utils.get_model("HierTCN") is recbole_hiertcn.HierTCN
import recbole.trainer
print("trainer:", recbole.trainer.HierTCNTrainer.__name__)
""", tmp_path)
    assert "trainer: HierTCNTrainer" in out, out


def test_a_plugin_module_that_imports_recbole_first_is_whole_before_registration(tmp_path):
    # recbole_hiertcn.trainer imports RecBole, and registration needs recbole_hiertcn.trainer
    # whole: the registration waits until that import has finished
    out = run("""
import recbole_hiertcn
from recbole_hiertcn.trainer import HierTCNTrainer
from recbole_hiertcn import setup_trigger
assert setup_trigger.is_set_up()
from recbole.utils import get_model, get_trainer, ModelType
assert get_trainer(ModelType.SEQUENTIAL, "HierTCN") is HierTCNTrainer
print("model:", get_model("HierTCN").__name__)
""", tmp_path)
    assert "model: HierTCN" in out, out


def test_the_package_attributes_set_up_recbole(tmp_path):
    out = run("""
from recbole_hiertcn import HierTCN, registry, compat
import recbole.utils
assert recbole.utils.get_model("HierTCN") is HierTCN
assert registry.PLUGIN_MODELS["HierTCN"][1] == HierTCN.__module__
print(sorted(name for name in ("HierTCN", "HRNN", "compat", "registry")
             if name in dir(sys.modules["recbole_hiertcn"])))
""", tmp_path)
    assert "['HRNN', 'HierTCN', 'compat', 'registry']" in out, out


def test_the_setup_runs_once():
    from recbole_hiertcn import registry, setup_trigger

    calls = []
    original = registry.register
    registry.register = lambda: calls.append(1)
    try:
        setup_trigger.set_up()
        setup_trigger.install()
    finally:
        registry.register = original
    assert setup_trigger.is_set_up() and calls == []
