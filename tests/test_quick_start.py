"""Training end to end through RecBole's own entry points and the plugin's run script."""

import json
import os
import pickle
import subprocess
import sys

import pytest
import torch
import yaml

from tests.conftest import assert_reload_reproduces, reload_and_test, small_config

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
METRICS = ("recall@10", "mrr@10", "ndcg@10")
METRICS_NAMES = ("recall", "mrr", "ndcg")


@pytest.mark.parametrize("loss_type", ["CE", "BPR"])
@pytest.mark.parametrize("scoring", ["untied", "tied"])
@pytest.mark.parametrize("dataset", ["tiny_sess", "tiny_time"])
def test_objective_function_trains_saves_and_reloads_the_best_model(
        data_root, in_tmp_dir, dataset, scoring, loss_type):
    from recbole.quick_start import objective_function

    overrides = {"model": "HierTCN", "scoring": scoring, "loss_type": loss_type,
                 "checkpoint_dir": str(in_tmp_dir / "saved"), "epochs": 2}
    if loss_type == "BPR":
        overrides["train_neg_sample_args"] = {"distribution": "uniform", "sample_num": 1}
    config = small_config(data_root, dataset, dataset == "tiny_sess", **overrides)
    result = objective_function(config_dict=config, saved=True)
    assert result["model"] == "HierTCN"
    [checkpoint] = os.listdir(in_tmp_dir / "saved")
    # RecBole's objective tested the weights it saved: reloading them gives the same metrics.
    assert_reload_reproduces(result["test_result"], in_tmp_dir / "saved" / checkpoint)


def test_run_recbole_and_load_data_and_model_round_trip(data_root, in_tmp_dir):
    from recbole.quick_start import load_data_and_model, run_recbole
    from recbole.trainer import Trainer

    config = small_config(data_root, "tiny_sess", checkpoint_dir=str(in_tmp_dir / "saved"))
    result = run_recbole(model="HierTCN", dataset="tiny_sess", config_dict=config)
    [checkpoint] = os.listdir(in_tmp_dir / "saved")
    loaded_config, model, _, _, _, test_data = load_data_and_model(
        str(in_tmp_dir / "saved" / checkpoint))
    assert type(model).__name__ == "HierTCN" and loaded_config["model"] == "HierTCN"
    again = Trainer(loaded_config, model).evaluate(test_data, load_best_model=False)
    for key in METRICS:
        assert again[key] == pytest.approx(result["test_result"][key])


def test_plugin_run_compares_a_builtin_baseline_on_the_same_data(data_root, in_tmp_dir):
    from recbole_hiertcn.quick_start import build_config, run

    config = small_config(data_root, "tiny_time", False,
                          checkpoint_dir=str(in_tmp_dir / "saved"), embedding_size=16,
                          hidden_size=16)
    result = run(model="GRU4Rec", dataset="tiny_time", config_dict=config)
    assert result["config"]["topk"] == [5, 10]  # the test's dict beats the run defaults
    # ... and the evaluation used it: exactly the dict's metrics at the dict's cut-offs.
    assert set(result["test_result"]) == {f"{m}@{k}" for m in METRICS_NAMES for k in (5, 10)}
    defaults = build_config("GRU4Rec", "tiny_time", config_dict={"data_path": str(data_root)})
    assert defaults["topk"] == [5, 10, 20] and defaults["valid_metric"] == "MRR@10"
    assert defaults["train_neg_sample_args"]["distribution"] == "none"


def test_plugin_run_samples_negatives_for_bpr_unless_told_otherwise(data_root):
    from recbole_hiertcn.quick_start import build_config

    config = build_config("HierTCN", "tiny_time",
                          config_dict={"data_path": str(data_root), "loss_type": "BPR"})
    assert config["train_neg_sample_args"]["distribution"] == "uniform"
    assert config["train_neg_sample_args"]["sample_num"] == 1


def run_script(args, cwd):
    env = dict(os.environ, PYTHONPATH=REPO)
    return subprocess.run([sys.executable, os.path.join(REPO, "run_recbole_hiertcn.py"), *args],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def test_run_script_trains_tests_and_prints_the_metric_table(data_root, in_tmp_dir):
    from recbole_hiertcn.checkpoint import load_checkpoint

    settings = small_config(data_root, "tiny_sess")
    for key in ("dataset", "data_path", "topk", "metrics"):
        settings.pop(key)
    user_file = in_tmp_dir / "tiny.yaml"
    user_file.write_text(yaml.safe_dump(settings))
    done = run_script(["--dataset=tiny_sess", f"--data_path={data_root}",
                       f"--config_files={user_file}", "--epochs=2"], in_tmp_dir)
    assert done.returncode == 0, done.stderr[-3000:]
    table = done.stdout.split("HierTCN on tiny_sess")[1].splitlines()
    header = table[1].split()
    assert header == [f"{m}@{k}" for m in ("RECALL", "MRR", "NDCG") for k in (5, 10, 20)]
    assert table[2].split()[0] == "valid" and table[3].split()[0] == "test"
    [checkpoint] = (in_tmp_dir / "saved").iterdir()  # the best checkpoint, reloaded for the test
    columns = [f"{m}@{k}" for m in METRICS_NAMES for k in (5, 10, 20)]
    # The valid row is the best epoch's validation, the test row that checkpoint's test.
    best_valid = load_checkpoint(str(checkpoint))["best_valid_result"]
    assert table[2].split()[1:] == [f"{best_valid[c]:.4f}" for c in columns]
    *_, again = reload_and_test(checkpoint)
    assert table[3].split()[1:] == [f"{again[c]:.4f}" for c in columns]


def test_run_script_rejects_an_unknown_model_clearly(tmp_path):
    done = run_script(["--model=GRU4Recc"], tmp_path)
    assert done.returncode != 0
    assert "Did you mean GRU4Rec" in done.stderr and "No module named" not in done.stderr


def test_checkpoint_written_by_training_is_refused_by_plain_torch_load(data_root, in_tmp_dir):
    from recbole_hiertcn.quick_start import run

    config = small_config(data_root, "tiny_time", False, checkpoint_dir=str(in_tmp_dir / "s"))
    result = run(model="HierTCN", dataset="tiny_time", config_dict=config)
    with pytest.raises(pickle.UnpicklingError):
        torch.load(result["model_file"])  # torch's default stays weights_only


def test_builtin_model_trains_under_last_session_through_the_session_dataset(data_root,
                                                                              in_tmp_dir):
    from recbole_hiertcn.data.dataset import SessionDataset
    from recbole_hiertcn.quick_start import make_dataset, run

    protocol = {"split": {"last_session": "valid_and_test"}, "order": "TO", "mode": "full"}
    # For speed: one residual block (of 5), and full-sort batches of eval_batch_size // n_items
    # rows (256 would test 4 at a time).
    config = small_config(data_root, "tiny_sess", checkpoint_dir=str(in_tmp_dir / "saved"),
                          eval_args=protocol, eval_batch_size=4096, block_num=1)
    result = run(model="NextItNet", dataset="tiny_sess", config_dict=config)
    assert isinstance(make_dataset(result["config"]), SessionDataset)
    # Reloading rebuilds the same split of the same dataset: the same metrics come back.
    assert_reload_reproduces(result["test_result"], result["model_file"])
    recbole_way = run(model="NextItNet", dataset="tiny_sess",
                      config_dict=dict(config, use_session_dataset=False,
                                       eval_args={"split": {"LS": "valid_and_test"},
                                                  "order": "TO", "mode": "full"}))
    assert not isinstance(make_dataset(recbole_way["config"]), SessionDataset)
    assert_reload_reproduces(recbole_way["test_result"], recbole_way["model_file"])


def test_a_fresh_run_trains_recboles_baselines_in_sequence_mode(data_root, tmp_path):
    # The entry points import recbole_hiertcn.quick_start before the plugin has registered with
    # RecBole (registration waits until that import ends). The model class must still be the
    # plugin's subclass - RecBole's own GRU4Rec cannot read sequence batches (KeyError
    # 'item_id_list' in the first batch) - so this runs in a fresh interpreter.
    config = small_config(data_root, "tiny_sess", checkpoint_dir=str(tmp_path / "saved"),
                          train_mode="sequence", block_num=1, n_layers=1)
    code = f"""
import json
from recbole_hiertcn.quick_start import fit_and_test, prepare_run
config = json.loads({json.dumps(json.dumps(config))})
for name in ("GRU4Rec", "NextItNet", "SASRec"):
    prepared = prepare_run(model=name, dataset="tiny_sess", config_dict=config)
    result = fit_and_test(prepared, saved=False)
    print(name, type(prepared.model).__module__, sorted(result["test_result"])[0])
"""
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                          text=True, timeout=600, env=dict(os.environ, PYTHONPATH=REPO))
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.strip().splitlines()[-3:]
    for name, line in zip(("GRU4Rec", "NextItNet", "SASRec"), lines):
        assert line.split()[:2] == [name, "recbole_hiertcn.model.sequential_recommender."
                                    + name.lower()], done.stdout
