"""The comparison command on a tiny dataset: runs, summary, charts, resume."""

import csv
import fcntl
import json
import os

import pytest
import yaml

from benchmarks import compare
from tests.conftest import reload_and_test


def tiny_plan(data_root, tmp_path):
    plan = {
        "dataset": "tiny_sess", "data_path": str(data_root),
        "protocols": ["LS", "last_session"], "seeds": [1, 2], "threads": 1,
        "models": {"HierTCN": {"model": "HierTCN"},
                   "HierGRU": {"model": "HierTCN", "low_level": "gru"},
                   "GRU4Rec": {"model": "GRU4Rec"}},
        "shared": {"load_col": {"inter": ["user_id", "item_id", "timestamp", "session_id"]},
                   "embedding_size": 8, "hidden_size": 8, "tcn_channels": [8, 8],
                   "MAX_ITEM_LIST_LENGTH": 10, "max_history": 10, "epochs": 2,
                   "train_batch_size": 64, "metrics": ["Recall", "MRR", "NDCG"],
                   "topk": [5, 10, 20], "valid_metric": "MRR@10", "show_progress": False,
                   "state": "ERROR", "checkpoint_dir": str(tmp_path / "saved")},
    }
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(plan))
    return path


def test_compare_runs_summarises_and_resumes(data_root, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    config = tiny_plan(data_root, tmp_path)
    out = tmp_path / "results"
    assert compare.main([str(config), "--out", str(out), "--only", "HierTCN", "GRU4Rec"]) == 0
    with open(out / "runs.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 2 * 2 * 2 and all(r["status"] == "ok" for r in rows)
    assert all(int(r["epochs"]) >= 1 for r in rows)
    assert_figures_belong_to_their_runs(out, rows)
    assert all(float(r["peak_rss_mib"]) > 100 for r in rows)
    report = (out / "results.md").read_text()
    assert "## Protocol `LS`" in report and "## Protocol `last_session`" in report
    assert "| HierTCN | " in report and "±" in report
    assert "x the best of GRU4Rec" in report
    assert "Every run on 1 CPU thread(s)." in report
    for name in ("metrics_LS.png", "validation_LS.png", "metrics_last_session.png"):
        assert (out / name).stat().st_size > 1000
    assert len(os.listdir(out / "curves")) == 8
    # a second call only runs what is missing: the HierGRU runs, two at a time
    capsys.readouterr()
    assert compare.main([str(config), "--out", str(out), "--workers", "2"]) == 0
    printed = capsys.readouterr().out
    assert "12 runs, 8 already done, 4 to go" in printed
    with open(out / "runs.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 12 and len({(r["model"], r["protocol"], r["seed"]) for r in rows}) == 12
    assert sum(r["model"] == "HierGRU" and r["status"] == "ok" for r in rows) == 4
    assert len(os.listdir(out / "curves")) == 12


def assert_figures_belong_to_their_runs(out, rows):
    """Each published test figure is what that run's own checkpoint gives when reloaded."""
    for name in sorted(os.listdir(out / "curves")):
        curve = json.loads((out / "curves" / name).read_text())
        row = next(r for r in rows if (r["model"], r["protocol"], r["seed"])
                   == (curve["model"], curve["protocol"], str(curve["seed"])))
        config, _, _, metrics = reload_and_test(curve["model_file"])
        assert config["run_id"] == curve["run_id"]
        assert f"{metrics['mrr@10']:.4f}" == row["mrr@10"], name
        assert f"{metrics['recall@10']:.4f}" == row["recall@10"], name


def test_a_second_comparison_on_the_same_folder_stops_at_once(data_root, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = tiny_plan(data_root, tmp_path)
    out = tmp_path / "results"
    os.makedirs(out)
    with open(out / ".lock", "w") as held:  # a comparison already writing there
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(SystemExit, match="another benchmarks.compare"):
            compare.main([str(config), "--out", str(out)])
    assert not (out / "runs.csv").exists()


def test_threads_pin_the_runs_cpu_threads(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "8")
    env = compare.child_environment({"threads": 2})
    assert env["OMP_NUM_THREADS"] == "2" and env["MKL_NUM_THREADS"] == "2"
    # without the key the caller's environment is passed on untouched
    assert compare.child_environment({})["OMP_NUM_THREADS"] == "8"
