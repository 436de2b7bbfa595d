"""benchmarks.compare.runner on its own: the child protocol (``python -m benchmarks.compare
--run '<json spec>'`` -> ``RESULT <json>``, exit code 75 on a held run) that a comparison
started with an earlier version of the module also speaks, and the parent's reading of it."""

import json
import os
import subprocess
import sys

import pytest

from benchmarks.compare import runner
from benchmarks.measure import REPO, machine


def child(spec, env_extra=None):
    env = dict(os.environ, PYTHONPATH=REPO, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1",
               **(env_extra or {}))
    return subprocess.run([sys.executable, "-m", "benchmarks.compare", "--run", json.dumps(spec)],
                          capture_output=True, text=True, env=env, timeout=300)


def tiny_spec(data_root, tmp_path, **extra):
    """A spec as every version of the parent writes it (benchmarks.compare.plan.job_spec)."""
    return {"model": "GRU4Rec", "dataset": "tiny_sess", "protocol": "LS", "seed": 1,
            "settings": {"load_col": {"inter": ["user_id", "item_id", "timestamp",
                                                "session_id"]},
                         "embedding_size": 8, "hidden_size": 8, "MAX_ITEM_LIST_LENGTH": 10,
                         "epochs": 1, "train_batch_size": 64,
                         "metrics": ["Recall", "MRR", "NDCG"], "topk": [5, 10, 20],
                         "valid_metric": "MRR@10", "show_progress": False, "state": "ERROR",
                         "checkpoint_dir": str(tmp_path / "saved"),
                         "data_path": str(data_root)}, **extra}


def test_a_child_trains_its_spec_and_prints_its_result(data_root, tmp_path):
    progress = tmp_path / "progress" / "GRU4Rec_LS_1"
    done = child(tiny_spec(data_root, tmp_path, progress=str(progress)))
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.split("RESULT ", 1)[1])
    assert set(result) == {"test", "valid_score", "epoch_seconds", "valid_scores", "epochs",
                           "best_epoch", "run_id", "model_file", "machine"}
    assert result["machine"] == machine()  # where its figures were measured
    assert result["epochs"] == 1 == len(result["valid_scores"]) and result["best_epoch"] == 1
    assert {"recall@10", "mrr@10", "ndcg@20"} <= set(result["test"])
    assert os.path.dirname(result["model_file"]) == str(progress)  # checkpoints go there
    curves = json.loads((progress / runner.PROGRESS_CURVES).read_text())
    assert curves["valid_scores"] == result["valid_scores"]


def test_a_child_on_a_held_run_exits_75_and_touches_nothing(data_root, tmp_path):
    progress = tmp_path / "progress" / "run"
    os.makedirs(progress)
    with runner.only_process_training(str(progress)):
        done = child(tiny_spec(data_root, tmp_path, progress=str(progress)))
    assert done.returncode == runner.RUN_BUSY == 75
    assert "RESULT" not in done.stdout and "another process is training" in done.stderr
    assert sorted(os.listdir(progress)) == [".lock"]


def test_the_parent_starts_the_child_module_and_reads_its_result(monkeypatch):
    started = []
    result = {"test": {"recall@10": 0.31234, "mrr@10": 0.1}, "valid_score": 0.2,
              "epoch_seconds": [3.0, 1.0, 2.0], "valid_scores": [0.1, 0.2, 0.15], "epochs": 3,
              "best_epoch": 2, "run_id": "r", "model_file": "m.pth"}

    def fake_child(command, env=None, running=None):
        started.append((command, env))
        return 0, 12.34, 456.7, "log line\nRESULT " + json.dumps(result) + "\n", ""

    monkeypatch.setattr(runner, "run_measured", fake_child)
    plan = {"dataset": "d", "threads": 2, "shared": {"epochs": 3},
            "models": {"A": {"model": "GRU4Rec", "seeds": [1]}}}
    row, curve, note = runner.run_job(plan, "A", "LS", 1, {"lr": 0.1}, progress="p")
    (command, env), = started
    assert command[:4] == [sys.executable, "-m", "benchmarks.compare", "--run"]
    assert json.loads(command[4]) == {"model": "GRU4Rec", "dataset": "d", "protocol": "LS",
                                      "seed": 1, "settings": {"epochs": 3, "lr": 0.1},
                                      "progress": "p"}
    assert env["OMP_NUM_THREADS"] == "2"
    assert row["status"] == "ok" and row["recall@10"] == "0.3123" and row["ndcg@10"] == "nan"
    assert (row["s_per_epoch"], row["epochs"], row["best_epoch"]) == ("2.00", 3, 2)
    assert (row["wall_s"], row["peak_rss_mib"], row["setting"]) == ("12.3", "457", '{"lr": 0.1}')
    assert curve["valid_scores"] == [0.1, 0.2, 0.15] and curve["setting"] == {"lr": 0.1}
    assert note == "test MRR@10 0.1000, 3 epochs"


@pytest.mark.parametrize("code, stdout, stderr, status, note", [
    (75, "", "p: another process is training this run\n", None, "SKIPPED: p: another"),
    (1, "", "Traceback\nValueError: bad\n", "failed", "FAILED: ValueError: bad"),
    (0, "no result", "", "failed", "FAILED: ?"),
])
def test_a_held_or_failed_child(monkeypatch, code, stdout, stderr, status, note):
    monkeypatch.setattr(runner, "run_measured",
                        lambda command, env=None, running=None: (code, 1.0, 2.0, stdout, stderr))
    row, curve, message = runner.run_job({"dataset": "d", "models": {"A": {}}}, "A", "LS", 1)
    assert curve is None and message.startswith(note)
    assert (row and row["status"]) == status


def test_interrupted_runs_go_first_and_keep_their_order(tmp_path):
    jobs = [("A", "LS", 1, None), ("B", "LS", 1, {"k": 5}), ("A", "LS", 2, None)]
    folder = runner.progress_folder(str(tmp_path), "tuning", jobs[1])
    assert folder == os.path.join(str(tmp_path), "progress", "tuning", "B_LS_1_k-5")
    for job in jobs[1:]:
        os.makedirs(runner.progress_folder(str(tmp_path), "tuning", job))
    open(os.path.join(runner.progress_folder(str(tmp_path), "tuning", jobs[2]), "x.pth"),
         "wb").close()
    order = runner.resumed_first(jobs, lambda job: runner.progress_folder(str(tmp_path),
                                                                          "tuning", job))
    assert order == [jobs[2], jobs[0], jobs[1]]
