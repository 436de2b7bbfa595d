"""Hyper-parameter tuning through RecBole's HyperTuning with the plugin's objective."""

import multiprocessing
import os

import yaml

from recbole_hiertcn.quick_start import objective
from tests.conftest import reload_and_test, small_config

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def fixed_config(data_root, tmp_path):
    settings = small_config(data_root, "tiny_sess", model="HierTCN",
                            checkpoint_dir=str(tmp_path / "saved"))
    path = tmp_path / "fixed.yaml"
    path.write_text(yaml.safe_dump(settings))
    return str(path)


def test_run_hyper_searches_the_space_and_reports_the_best(data_root, tmp_path, monkeypatch):
    import run_hyper

    monkeypatch.chdir(tmp_path)
    space = tmp_path / "space.hyper"
    space.write_text("learning_rate choice [0.001,0.01]\nkernel_size choice [2,3]\n")
    tuner = run_hyper.main([f"--config_files={fixed_config(data_root, tmp_path)}",
                            f"--params_file={space}"])
    assert len(tuner.params2result) == 4  # exhaustive over 2 x 2
    assert all(r["model"] == "HierTCN" for r in tuner.params2result.values())
    best = max(tuner.params2result.values(), key=lambda r: r["best_valid_score"])
    assert tuner.params2result[tuner.params2str(tuner.best_params)] is best
    # every trial kept its own checkpoint, even those started within one second
    assert len(os.listdir(tmp_path / "saved")) == 4
    # the results file: a name of its own, written whole
    [out] = [name for name in os.listdir(tmp_path) if name.startswith("hyper_result-")]
    assert out.endswith(".txt") and "learning_rate" in (tmp_path / out).read_text()
    assert run_hyper.default_output_file() != run_hyper.default_output_file()


def test_a_trial_in_a_fresh_process_sees_the_registration(data_root, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PYTHONPATH", REPO)
    context = multiprocessing.get_context("spawn")  # nothing inherited from this process
    with context.Pool(1) as pool:
        result = pool.apply(objective, ({"kernel_size": 2},
                                        [fixed_config(data_root, tmp_path)]))
    assert result["model"] == "HierTCN"
    # The trial trained with its parameter and tested the checkpoint it saved.
    [checkpoint] = (tmp_path / "saved").iterdir()
    config, _, _, again = reload_and_test(checkpoint)
    assert config["kernel_size"] == 2  # not HierTCN's default of 5
    assert dict(again) == dict(result["test_result"])
