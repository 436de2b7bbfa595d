"""ray is an extra: the plugin's entry points, and RecBole's quick-start module through the
plugin, work in a process where ``ray`` cannot be imported (as on Python 3.12 and newer, where
RecBole's pin ``ray<=2.6.3`` cannot be installed). Each check runs in a fresh interpreter whose
first step makes ray unimportable, whether or not it is installed here."""

import builtins
import os
import subprocess
import sys
import types

import pytest
import yaml

from recbole_hiertcn import compat
from tests.conftest import small_config

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Makes `ray` (and every `ray.*`) unimportable for the rest of the process, as if not installed.
NO_RAY = """
import importlib.abc, sys

class _NoRay(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "ray" or name.startswith("ray."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)

sys.meta_path.insert(0, _NoRay())
"""

# The last line a check prints: every module of ray that got imported (none may be).
RAY_MODULES = """
print("ray modules:", sorted(m for m in sys.modules if m == "ray" or m.startswith("ray.")))
"""


def run_without_ray(code, cwd, timeout=600):
    env = dict(os.environ, PYTHONPATH=REPO)
    return subprocess.run([sys.executable, "-c", NO_RAY + code + RAY_MODULES], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


def assert_ran_without_ray(done):
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.rstrip().splitlines()[-1] == "ray modules: []", done.stdout[-2000:]


def test_the_blocker_makes_ray_unimportable(tmp_path):
    done = run_without_ray("""
try:
    from ray import tune
except ModuleNotFoundError as missing:
    print("missing:", missing.name)
""", tmp_path)
    assert_ran_without_ray(done)
    assert "missing: ray" in done.stdout


def test_plugin_imports_and_command_help_without_ray(tmp_path):
    done = run_without_ray("""
import contextlib, importlib, io, pkgutil
import recbole_hiertcn
import recbole_hiertcn.serving, recbole_hiertcn.serving.__main__
import dataset_converters
for found in pkgutil.iter_modules(dataset_converters.__path__):
    importlib.import_module("dataset_converters." + found.name)
from recbole_hiertcn.cli import main
for argv in (["--help"], ["export", "--help"], ["serve", "--help"]):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        try:
            main(argv)
        except SystemExit as stop:
            assert stop.code == 0, (argv, stop.code)
    assert out.getvalue().startswith("usage:"), out.getvalue()
    print("help:", argv[0])
""", tmp_path)
    assert_ran_without_ray(done)
    assert done.stdout.count("help:") == 3


def test_run_script_trains_and_the_export_serves_without_ray(data_root, tmp_path):
    settings = small_config(data_root, "tiny_sess")
    for key in ("dataset", "data_path"):
        settings.pop(key)
    user_file = tmp_path / "tiny.yaml"
    user_file.write_text(yaml.safe_dump(settings))
    script = os.path.join(REPO, "run_recbole_hiertcn.py")
    args = ["--dataset=tiny_sess", f"--data_path={data_root}", f"--config_files={user_file}"]
    done = run_without_ray(f"""
import glob, runpy
sys.argv = [{script!r}, *{args!r}]
try:
    runpy.run_path({script!r}, run_name="__main__")
except SystemExit as stop:
    assert not stop.code, stop.code
from recbole_hiertcn.cli import main
[checkpoint] = glob.glob("saved/HierTCN-*.pth")
assert main(["export", checkpoint, "--output", "served"]) == 0
from recbole_hiertcn.serving import StreamingHierTCN, load_artifact
stream = StreamingHierTCN(load_artifact("served"))
stream.observe("someone", stream.model.item_tokens[1], 1_600_000_000.0, "s1")
print("recommended:", len(stream.recommend("someone", k=3)))
""", tmp_path)
    assert_ran_without_ray(done)
    assert "HierTCN on tiny_sess" in done.stdout and "recommended: 3" in done.stdout


def test_recbole_quick_start_works_through_the_plugin_without_ray(data_root, tmp_path):
    config = small_config(data_root, "tiny_sess", model="HierTCN",
                          checkpoint_dir=str(tmp_path / "saved"))
    done = run_without_ray(f"""
import builtins, os
import_before = builtins.__import__
import recbole_hiertcn
from recbole_hiertcn import compat
from recbole.quick_start import load_data_and_model, objective_function, run_recbole
import recbole.quick_start.quick_start as recbole_quick_start
assert recbole_quick_start.tune is compat.TUNE_WITHOUT_RAY
assert builtins.__import__ is import_before  # the process's import is untouched
result = objective_function(config_dict={config!r})
assert result["model"] == "HierTCN" and "mrr@10" in result["test_result"], result
import glob
[checkpoint] = glob.glob(os.path.join({str(tmp_path / "saved")!r}, "*.pth"))
loaded_config, model, *_ = load_data_and_model(checkpoint)
assert loaded_config["model"] == "HierTCN" and type(model).__name__ == "HierTCN"
print("objective_function:", result["test_result"]["mrr@10"])
""", tmp_path)
    assert_ran_without_ray(done)
    assert "objective_function:" in done.stdout


def test_without_recbole_the_import_names_the_install_step(tmp_path):
    done = run_without_ray("""
class _NoRecBole(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "recbole" or name.startswith("recbole."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)

sys.meta_path.insert(0, _NoRecBole())
try:
    import recbole_hiertcn
except ImportError as refused:
    print("refused:", refused)
""", tmp_path)
    assert_ran_without_ray(done)
    assert "refused: recbole_hiertcn: RecBole 1.2.1 is not installed" in done.stdout
    assert "pip install --no-deps recbole==1.2.1" in done.stdout


# --- the module-scoped import, in this process ---------------------------------------------------


def test_quick_start_import_answers_only_a_missing_ray_with_the_stand_in(monkeypatch):
    class NoRay:
        @staticmethod
        def find_spec(name, path=None, target=None):
            if name == "ray":
                raise ModuleNotFoundError("No module named 'ray'", name="ray")

    monkeypatch.delitem(sys.modules, "ray", raising=False)
    monkeypatch.setattr(sys, "meta_path", [NoRay(), *sys.meta_path])
    ray = compat._import_in_quick_start("ray", {}, {}, ("tune",), 0)
    assert ray.tune is compat.TUNE_WITHOUT_RAY
    assert ray.tune.report(**{"recall@10": 0.5}) is None
    # anything else that is missing stays missing, ray's other imports included
    with pytest.raises(ModuleNotFoundError):
        compat._import_in_quick_start("ray", {}, {}, ("air",), 0)
    with pytest.raises(ModuleNotFoundError):
        compat._import_in_quick_start("ray", {}, {}, None, 0)
    with pytest.raises(ModuleNotFoundError):
        compat._import_in_quick_start("not_a_module_anywhere", {}, {}, ("tune",), 0)


def test_quick_start_import_takes_an_installed_ray(monkeypatch):
    tune = types.ModuleType("ray.tune")
    ray = types.ModuleType("ray")
    ray.tune = tune
    monkeypatch.setitem(sys.modules, "ray", ray)
    monkeypatch.setitem(sys.modules, "ray.tune", tune)
    assert compat._import_in_quick_start("ray", {}, {}, ("tune",), 0) is ray


def test_recbole_quick_start_has_the_stand_in_only_where_ray_is_missing():
    import importlib.util

    import recbole.quick_start.quick_start as recbole_quick_start

    try:
        has_ray = importlib.util.find_spec("ray") is not None
    except ImportError:
        has_ray = False
    assert (recbole_quick_start.tune is compat.TUNE_WITHOUT_RAY) is not has_ray
    if has_ray:
        assert recbole_quick_start.tune.__name__ == "ray.tune"
    # the module's builtins are the process's again; nothing process-wide was replaced
    assert recbole_quick_start.__builtins__ is builtins.__dict__
    assert builtins.__import__.__module__ == "builtins"


def test_before_import_runs_on_the_new_module_before_its_code(tmp_path, monkeypatch):
    (tmp_path / "early_module_for_test.py").write_text("SEEN_AT_START = PREPARED\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    compat.before_import("early_module_for_test", lambda m: setattr(m, "PREPARED", True))
    import early_module_for_test
    assert early_module_for_test.SEEN_AT_START is True


# --- with a ray whose tune.report takes one dict (releases after 2.6) ------------------------------


def _module_with_tune(report):
    tune = types.ModuleType("ray.tune")
    tune.report, tune.Tuner = report, object()
    return types.SimpleNamespace(tune=tune)


def test_recbole_keyword_report_reaches_a_dict_report_as_one_dict():
    received = []

    def report(metrics, *, checkpoint=None):  # ray >= 2.7's signature
        received.append((metrics, checkpoint))

    module = _module_with_tune(report)
    original = module.tune
    compat._tune_report_as_dict(module)
    module.tune.report(**{"recall@10": 0.5, "mrr@10": 0.25})  # RecBole's call
    module.tune.report({"ndcg@10": 0.1})  # the dict form still works
    assert received == [({"recall@10": 0.5, "mrr@10": 0.25}, None), ({"ndcg@10": 0.1}, None)]
    assert module.tune.Tuner is original.Tuner and original.report is report  # ray.tune unchanged


def test_a_keyword_report_and_the_stand_in_are_left_as_they_are():
    def report(_metric=None, **kwargs):  # ray 2.6.3's signature
        return kwargs

    module = _module_with_tune(report)
    original = module.tune
    compat._tune_report_as_dict(module)
    assert module.tune is original
    without_ray = types.SimpleNamespace(tune=compat.TUNE_WITHOUT_RAY)
    compat._tune_report_as_dict(without_ray)
    assert without_ray.tune is compat.TUNE_WITHOUT_RAY
