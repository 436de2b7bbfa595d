"""benchmarks.compare.store on its own: the csv files, the curves, the results folder's lock."""

import fcntl
import os

import pytest

from benchmarks.compare import store


def row(model, seed, setting="", **figures):
    return {"model": model, "protocol": "LS", "seed": seed, "status": "ok",
            "setting": setting, **figures}


def test_a_recorded_run_reads_back_as_written_in_the_files_columns(tmp_path):
    path = str(tmp_path / "runs.csv")
    assert store.read_runs(path) == []  # no file yet: no runs
    store.record_run(path, row("A", 1, **{"mrr@10": "0.1000", "epochs": 3}))
    store.record_run(path, row("B", 1, '{"lr": 0.1}', **{"mrr@10": "0.2000"}))
    with open(path, encoding="utf-8") as handle:
        assert handle.readline().rstrip("\r\n").split(",") == store.FIELDS
    rows = store.read_runs(path)
    assert [(r["model"], r["seed"], r["mrr@10"], r["epochs"], r["setting"]) for r in rows] == [
        ("A", "1", "0.1000", "3", ""), ("B", "1", "0.2000", "", '{"lr": 0.1}')]
    assert set(rows[0]) == set(store.FIELDS) and not os.path.exists(path + ".tmp")


def test_a_run_recorded_again_replaces_its_row_only(tmp_path):
    path = str(tmp_path / "runs.csv")
    store.record_run(path, row("A", 1, **{"epochs": 30}))
    store.record_run(path, row("A", 2, **{"epochs": 30}))
    store.record_run(path, row("A", 1, '{"lr": 0.1}', **{"epochs": 30}))  # another setting
    store.record_run(path, row("A", "1", **{"epochs": 60}))  # extended: same run, seed as text
    rows = store.read_runs(path)
    assert [(r["seed"], r["setting"], r["epochs"]) for r in rows] == [
        ("2", "", "30"), ("1", '{"lr": 0.1}', "30"), ("1", "", "60")]
    assert store.run_key(rows[-1]) == ("A", "LS", "1", "")


def test_final_rows_are_the_finished_runs_at_the_chosen_setting():
    plan = {"models": {"A": {}, "A-x": {"tuned_as": "A"}}}
    chosen = {("A", "LS"): {"lr": 0.1}}
    runs = [row("A", "1", '{"lr": 0.1}'), row("A", "1", '{"lr": 0.2}'),
            {**row("A", "2", '{"lr": 0.1}'), "status": "failed"},
            row("A-x", "1", '{"lr": 0.1}'), row("A-x", "2", "")]
    assert store.final_rows(runs, "A", "LS", chosen, plan) == [runs[0]]
    assert store.by_seed(runs, "A-x", "LS", chosen, plan) == {"1": runs[3]}
    assert store.final_rows(runs, "A-x", "last_session", chosen, plan) == []


def test_curves_are_named_by_run_and_read_back_by_label_and_protocol(tmp_path):
    assert store.curve_name("A", "LS", 1) == "A_LS_1.json"
    assert store.curve_name("A", "LS", 1, {"lr": 0.1, "k": 5}) == "A_LS_1_lr-0.1_k-5.json"
    os.makedirs(tmp_path / "curves")
    for seed in (2, 1):
        store.write_json(str(tmp_path / "curves" / store.curve_name("A", "LS", seed)),
                         {"model": "A", "protocol": "LS", "seed": seed, "valid_scores": [seed]})
    curves = store.load_curves(str(tmp_path))
    assert list(curves) == [("A", "LS")] and [c["seed"] for c in curves["A", "LS"]] == [1, 2]
    assert store.load_curves(str(tmp_path / "nothing")) == {}


def test_one_comparison_at_a_time_writes_to_a_results_folder(tmp_path):
    with store.exclusive_results_folder(str(tmp_path)):
        with open(tmp_path / ".lock") as other, pytest.raises(BlockingIOError):
            fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(SystemExit, match="another benchmarks.compare"):
            with store.exclusive_results_folder(str(tmp_path)):
                pass
    with store.exclusive_results_folder(str(tmp_path)):  # released on leaving
        pass
