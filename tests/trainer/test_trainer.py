"""Run-owned checkpoints: parallel runs never share one, a foreign file is refused, and a resumed
run ends exactly where the uninterrupted run ends."""

import json
import os
import subprocess
import sys
import time

import pytest
import torch

import recbole.trainer.trainer as recbole_trainer_module
from recbole.utils import ModelType

from recbole_hiertcn.checkpoint import load_checkpoint
from recbole_hiertcn.quick_start import prepare_run, run
from recbole_hiertcn.trainer import CheckpointMismatch, HierTCNTrainer, run_trainer
from recbole_hiertcn.trainer import trainer as plugin_trainer

from tests.conftest import reload_and_test, small_config

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def weights(model):
    return {name: value.detach().clone() for name, value in model.state_dict().items()}


def same_weights(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# ----------------------------------------------------------------------------- naming and ownership
def test_two_trainers_started_in_the_same_second_get_different_checkpoints(data_root, in_tmp_dir,
                                                                           monkeypatch):
    monkeypatch.setattr(plugin_trainer, "get_local_time", lambda: "Jan-01-2030_00-00-00")
    first = prepare_run("HierTCN", "tiny_sess", config_dict=small_config(data_root, "tiny_sess"))
    second = prepare_run("HierTCN", "tiny_sess", config_dict=small_config(data_root, "tiny_sess"))
    assert first.trainer.saved_model_file != second.trainer.saved_model_file
    assert first.trainer.run_id != second.trainer.run_id
    assert first.trainer.run_id[:12] in first.trainer.saved_model_file
    # RecBole's own name for both would have been the same file:
    assert os.path.basename(first.trainer.saved_model_file).startswith(
        "HierTCN-Jan-01-2030_00-00-00-")


def test_reload_refuses_a_checkpoint_another_run_wrote(data_root, in_tmp_dir):
    ours = run("HierTCN", "tiny_sess", config_dict=small_config(data_root, "tiny_sess"))
    theirs = run("HierTCN", "tiny_sess", config_dict=small_config(data_root, "tiny_sess", seed=8))
    prepared = prepare_run("HierTCN", "tiny_sess",
                           config_dict=small_config(data_root, "tiny_sess"))
    trainer = prepared.trainer
    trainer.fit(prepared.train_data, prepared.valid_data, saved=True)
    os.replace(theirs["model_file"], trainer.saved_model_file)  # the collision, made by hand
    with pytest.raises(CheckpointMismatch, match="another run"):
        trainer.evaluate(prepared.test_data)
    # Naming a file on purpose is not a collision: it loads.
    assert trainer.evaluate(prepared.test_data, model_file=ours["model_file"])


def test_checkpoint_is_written_whole_and_carries_the_run_id(data_root, in_tmp_dir):
    result = run("HierTCN", "tiny_sess", config_dict=small_config(data_root, "tiny_sess"))
    saved = load_checkpoint(result["model_file"])
    assert saved["run_id"] == result["config"]["run_id"]
    assert not [n for n in os.listdir(os.path.dirname(result["model_file"]))
                if n.endswith(".tmp")]


def test_builtin_models_get_run_owned_checkpoints_through_the_entry_points():
    trainer_class = run_trainer(ModelType.SEQUENTIAL, "GRU4Rec")
    assert issubclass(trainer_class, plugin_trainer.HierTCNTrainer)
    assert issubclass(trainer_class, recbole_trainer_module.Trainer)
    assert run_trainer(ModelType.SEQUENTIAL, "HierTCN") is HierTCNTrainer


_RUN_SCRIPT = """
import json, sys, time
import recbole_hiertcn
from recbole_hiertcn.quick_start import run
from tests.conftest import reload_and_test, small_config
root, seed, start_at = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
time.sleep(max(0.0, start_at - time.time()))  # both runs leave this line in the same instant
result = run("HierTCN", "tiny_sess", config_dict=small_config(root, "tiny_sess", seed=seed,
                                                              epochs=2))
print("RESULT " + json.dumps({"model_file": result["model_file"],
                              "test": {k: float(v) for k, v in result["test_result"].items()}}))
"""


def test_two_runs_started_at_once_in_one_folder_each_test_their_own_weights(data_root, tmp_path):
    """The case that broke: two runs of one model, same folder, same second. Each run's reported
    test metrics must be those of its own checkpoint, and the checkpoints must differ."""
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    start_at = time.time() + 12  # after both processes have imported torch and RecBole
    processes = [subprocess.Popen([sys.executable, "-c", _RUN_SCRIPT, str(data_root), str(seed),
                                   str(start_at)], cwd=tmp_path, env=env, text=True,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                 for seed in (1, 2)]
    results = []
    for process in processes:
        stdout, stderr = process.communicate(timeout=300)
        assert process.returncode == 0, stderr[-2000:]
        results.append(json.loads(stdout.split("RESULT ", 1)[1]))
    files = [os.path.join(tmp_path, r["model_file"]) for r in results]
    assert files[0] != files[1] and all(os.path.isfile(f) for f in files)
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        reloaded = []
        for path, result in zip(files, results):
            _, model, _, metrics = reload_and_test(path)
            assert {k: float(v) for k, v in metrics.items()} == pytest.approx(result["test"],
                                                                              abs=1e-12)
            reloaded.append(weights(model))
    finally:
        os.chdir(cwd)
    assert not same_weights(*reloaded)


# ----------------------------------------------------------------------------- resume
def _train(data_root, epochs, resume=None, **overrides):
    """Fit a run; returns (weights after the last epoch, best valid score, test result, file)."""
    settings = small_config(data_root, "tiny_sess", epochs=epochs, stopping_step=100,
                            dropout_prob=0.3, loss_type="BPR",
                            train_neg_sample_args={"distribution": "uniform", "sample_num": 1},
                            reproducibility=True, resume_checkpoint=resume, **overrides)
    prepared = prepare_run("HierTCN", "tiny_sess", config_dict=settings)
    score, _ = prepared.trainer.fit(prepared.train_data, prepared.valid_data, saved=True)
    final = weights(prepared.model)
    test = prepared.trainer.evaluate(prepared.test_data)
    return final, score, dict(test), prepared.trainer.saved_model_file


@pytest.mark.parametrize("train_mode", ["sequence", "prefix"])
def test_resumed_run_ends_with_the_uninterrupted_runs_weights_and_metrics(data_root, in_tmp_dir,
                                                                          train_mode):
    """Dropout (torch's stream), BPR negatives (numpy's in prefix mode, the loader's in sequence
    mode) and the loader's shuffle all continue where the stopped run left them."""
    full_weights, full_score, full_test, _ = _train(data_root, 4, train_mode=train_mode)
    *_, stopped_file = _train(data_root, 2, train_mode=train_mode)
    assert load_checkpoint(stopped_file)["epoch"] <= 1
    resumed_weights, resumed_score, resumed_test, resumed_file = _train(
        data_root, 4, resume=stopped_file, train_mode=train_mode)
    assert resumed_file != stopped_file
    assert same_weights(full_weights, resumed_weights)
    assert resumed_score == full_score
    assert resumed_test == full_test


def test_resume_without_the_saved_random_state_would_drift(data_root, in_tmp_dir):
    """The control for the test above: the random state is what makes the resume exact."""
    full_weights, *_ = _train(data_root, 4)
    *_, stopped_file = _train(data_root, 2)
    checkpoint = load_checkpoint(stopped_file)
    del checkpoint["random_state"]
    torch.save(checkpoint, stopped_file, pickle_protocol=4)
    resumed_weights, *_ = _train(data_root, 4, resume=stopped_file)
    assert not same_weights(full_weights, resumed_weights)


# ----------------------------------------------------------------------------- latest state
def _scripted_validation(monkeypatch, score_of_epoch):
    """Validation scores by epoch (the epoch just trained), so the best epoch is known."""
    def scripted(self, valid_data, show_progress=False):
        score = score_of_epoch(max(self.train_loss_dict))
        return score, {"mrr@10": score}
    monkeypatch.setattr(recbole_trainer_module.Trainer, "_valid_epoch", scripted)


def _train_keeping_latest(data_root, epochs, resume=None, model="HierTCN", **overrides):
    """As :func:`_train` with ``keep_latest_checkpoint``; also the epochs trained here."""
    settings = small_config(data_root, "tiny_sess", epochs=epochs, dropout_prob=0.3,
                            reproducibility=True, resume_checkpoint=resume,
                            keep_latest_checkpoint=True, **overrides)
    prepared = prepare_run(model, "tiny_sess", config_dict=settings)
    prepared.trainer.fit(prepared.train_data, prepared.valid_data, saved=True)
    return (weights(prepared.model), dict(prepared.trainer.evaluate(prepared.test_data)),
            prepared.trainer.saved_model_file, sorted(prepared.trainer.train_loss_dict))


def test_a_run_resumed_from_its_latest_state_trains_only_the_epochs_left(data_root, in_tmp_dir,
                                                                         monkeypatch):
    """Best at epoch 0, stopped after epoch 2: resumed from the best checkpoint it would train
    epochs 1-3 again; from the latest state it trains epoch 3 only, and still ends with the
    uninterrupted run's weights, and tests the best epoch's."""
    _scripted_validation(monkeypatch, lambda epoch: 0.5 - 0.1 * epoch)
    whole_weights, whole_test, _, _ = _train_keeping_latest(data_root, 4, stopping_step=100)
    *_, stopped_file, _ = _train_keeping_latest(data_root, 3, stopping_step=100)
    latest_file = plugin_trainer.latest_file_name(stopped_file)
    assert load_checkpoint(stopped_file)["epoch"] == 0
    assert load_checkpoint(latest_file)["epoch"] == 2
    resumed_weights, resumed_test, resumed_file, trained = _train_keeping_latest(
        data_root, 4, resume=latest_file, stopping_step=100)
    assert trained == [3]
    assert same_weights(whole_weights, resumed_weights)
    assert resumed_test == whole_test
    # the resumed run's own latest state names its own best checkpoint
    own_latest = load_checkpoint(plugin_trainer.latest_file_name(resumed_file))
    assert own_latest["latest_of"] == os.path.basename(resumed_file)
    assert own_latest["epoch"] == 3


def test_a_run_that_early_stopping_ended_resumes_to_its_test_only(data_root, in_tmp_dir,
                                                                  monkeypatch):
    """Interrupted between its last validation and its test: nothing is trained again and the
    best epoch's weights are tested."""
    _scripted_validation(monkeypatch, lambda epoch: 0.5 - 0.1 * epoch)
    _, whole_test, whole_file, whole_trained = _train_keeping_latest(data_root, 6,
                                                                    stopping_step=1)
    assert whole_trained == [0, 1, 2]  # the counter passed stopping_step after epoch 2
    latest_file = plugin_trainer.latest_file_name(whole_file)
    assert load_checkpoint(latest_file)["stopped"] is True
    resumed_weights, resumed_test, resumed_file, trained = _train_keeping_latest(
        data_root, 6, resume=latest_file, stopping_step=1)
    assert trained == []
    assert resumed_test == whole_test
    # the weights tested are the best epoch's, and the resumed run's own files say so: its best
    # checkpoint keeps epoch 0 (not RecBole's -1 for "nothing trained", which a resume from it
    # would read as "start over"), its latest state is stopped and names it
    assert same_weights(resumed_weights, load_checkpoint(whole_file)["state_dict"])
    assert load_checkpoint(resumed_file)["epoch"] == 0
    own_latest = load_checkpoint(plugin_trainer.latest_file_name(resumed_file))
    assert own_latest["stopped"] is True
    assert own_latest["latest_of"] == os.path.basename(resumed_file)
    _, again_test, _, again_trained = _train_keeping_latest(
        data_root, 6, resume=plugin_trainer.latest_file_name(resumed_file), stopping_step=1)
    assert again_trained == [] and again_test == whole_test


def test_a_knn_run_resumed_after_its_validation_validates_no_more(data_root, in_tmp_dir):
    """A session-kNN run under a plan's epoch cap of 60 has one epoch: killed between its
    validation and its test, it resumes to its test only."""
    _, whole_test, whole_file, whole_trained = _train_keeping_latest(
        data_root, 60, model="SKNN")
    assert whole_trained == [0]
    _, resumed_test, _, trained = _train_keeping_latest(
        data_root, 60, model="SKNN", resume=plugin_trainer.latest_file_name(whole_file))
    assert trained == [] and resumed_test == whole_test


def test_a_latest_state_without_its_best_checkpoint_is_refused(data_root, in_tmp_dir,
                                                               monkeypatch):
    _scripted_validation(monkeypatch, lambda epoch: 0.5 - 0.1 * epoch)
    *_, stopped_file, _ = _train_keeping_latest(data_root, 2, stopping_step=100)
    os.remove(stopped_file)
    with pytest.raises(ValueError, match="best checkpoint .* is missing"):
        _train_keeping_latest(data_root, 3, resume=plugin_trainer.latest_file_name(stopped_file),
                              stopping_step=100)


def test_no_latest_state_is_written_unless_asked(data_root, in_tmp_dir):
    ran = run("HierTCN", "tiny_sess", config_dict=small_config(data_root, "tiny_sess", epochs=2))
    assert not os.path.exists(plugin_trainer.latest_file_name(ran["model_file"]))
    with pytest.raises(ValueError, match="keep_latest_checkpoint"):
        prepare_run("HierTCN", "tiny_sess", config_dict=small_config(
            data_root, "tiny_sess", keep_latest_checkpoint="yes"))


def test_resume_refuses_a_checkpoint_of_another_model(data_root, in_tmp_dir):
    other = run("GRU4Rec", "tiny_sess", config_dict=small_config(data_root, "tiny_sess"))
    with pytest.raises(ValueError, match="resume_checkpoint.*GRU4Rec"):
        prepare_run("HierTCN", "tiny_sess", config_dict=small_config(
            data_root, "tiny_sess", resume_checkpoint=other["model_file"]))
