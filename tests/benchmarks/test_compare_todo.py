"""``python -m benchmarks.compare <plan> --todo``: the runs still to go and their estimates,
read from the results folder alone (nothing trains)."""

import json
import os

import pytest
import yaml

from benchmarks import compare
from benchmarks.compare import store, todo
from benchmarks.compare.runner import PROGRESS_CURVES, progress_folder

PLAN = {"dataset": "tiny", "protocols": ["LS"], "seeds": [1, 2, 3],
        "tuning": {"seed": 1, "grid": {"GRU4Rec": {"learning_rate": [0.1, 0.01]}}},
        "shared": {"epochs": 20, "stopping_step": 2},  # the rows below stopped early
        "models": {"GRU4Rec": {"model": "GRU4Rec"},
                   "GRU4Rec-check": {"model": "GRU4Rec", "tuned_as": "GRU4Rec", "seeds": [1],
                                     "epochs": 5},
                   "Pop": {"model": "Pop", "seeds": [1]}}}


def row(model, seed, setting, wall_s, epochs):
    return {"model": model, "protocol": "LS", "seed": seed, "status": "ok",
            "setting": json.dumps(setting, sort_keys=True) if setting else "",
            "wall_s": wall_s, "epochs": epochs, "best_epoch": epochs - 5, "mrr@10": "0.1"}


@pytest.fixture
def folder(tmp_path):
    out = tmp_path / "results"
    os.makedirs(out)
    # both trials finished (the first chosen on validation), one seed of GRU4Rec besides
    store.record_run(str(out / "tuning.csv"), dict(row("GRU4Rec", 1, {"learning_rate": 0.1},
                                                       1000, 10), valid_score="0.3"))
    store.record_run(str(out / "tuning.csv"), dict(row("GRU4Rec", 1, {"learning_rate": 0.01},
                                                       3000, 10), valid_score="0.2"))
    store.record_run(str(out / "runs.csv"), row("GRU4Rec", 2, {"learning_rate": 0.1}, 600, 12))
    return out


def test_each_estimate_comes_from_the_closest_measurement(folder):
    chosen = {"learning_rate": 0.1}
    runs = store.read_runs(str(folder / "runs.csv"))
    trials = store.read_runs(str(folder / "tuning.csv"))
    # a finished seed of the same label: 50 s an epoch for its 12 epochs
    assert todo.estimate(PLAN, "GRU4Rec", chosen, str(folder / "none"), runs, trials) == (
        600, 0, "GRU4Rec's finished runs")
    # a label with no finished run of its own reads its model's trials (median 200 s an epoch,
    # 10 epochs), within its own cap of 5
    assert todo.estimate(PLAN, "GRU4Rec-check", chosen, str(folder / "none"), runs,
                         trials) == (1000, 0, "GRU4Rec's trials")
    # begun: its own epochs set the pace, and only those not yet validated are left
    begun = folder / "begun"
    os.makedirs(begun)
    (begun / PROGRESS_CURVES).write_text(json.dumps(
        {"epoch_seconds": [30, 40, 35], "valid_scores": [0.1, 0.2, 0.3]}))
    assert todo.estimate(PLAN, "GRU4Rec", chosen, str(begun), runs, trials) == (
        35 * 9, 3, "its own epochs")
    # nothing measured at all
    assert todo.estimate(PLAN, "Pop", None, str(folder / "none"), runs, trials) == (
        None, 0, "not measured")


def test_a_run_past_the_usual_length_still_has_an_epoch_and_none_past_its_cap(folder):
    runs = store.read_runs(str(folder / "runs.csv"))
    begun = folder / "long"
    os.makedirs(begun)
    (begun / PROGRESS_CURVES).write_text(json.dumps(
        {"epoch_seconds": [10] * 14, "valid_scores": [0.1] * 14}))
    assert todo.estimate(PLAN, "GRU4Rec", None, str(begun), runs, [])[0] == 10
    (begun / PROGRESS_CURVES).write_text(json.dumps(
        {"epoch_seconds": [10] * 5, "valid_scores": [0.1] * 5}))
    assert todo.estimate(PLAN, "GRU4Rec-check", None, str(begun), runs, [])[0] == 0


def test_todo_lists_the_runs_a_comparison_would_start_and_trains_nothing(folder, tmp_path,
                                                                         capsys):
    config = tmp_path / "plan.yaml"
    config.write_text(yaml.safe_dump(PLAN))
    before = sorted(os.listdir(folder))
    assert compare.main([str(config), "--out", str(folder), "--todo"]) == 0
    printed = capsys.readouterr().out.splitlines()
    # GRU4Rec seeds 1 (its chosen trial, reused when the comparison runs) and 3, the check,
    # Pop; seed 2 is done
    assert printed[0].startswith(f"tiny: 4 run(s) to go -> {folder}; about ")
    assert printed[0].endswith(", 1 not measured")
    listed = [line.split() for line in printed[1:]]
    assert [(words[1], words[words.index("seed") + 1]) for words in listed] == [
        ("GRU4Rec", "1"), ("GRU4Rec-check", "1"), ("Pop", "1"), ("GRU4Rec", "3")]
    assert sorted(os.listdir(folder)) == before  # nothing written
    # the same jobs as the comparison itself would queue
    _, pending, untuned = compare.final_jobs(compare.load_plan(str(config)), str(folder))
    assert len(pending) == 4 and untuned == []
    assert progress_folder(str(folder), "curves", pending[0]).endswith(
        "GRU4Rec_LS_1_learning_rate-0.1")


def test_labels_waiting_for_their_trials_are_named(tmp_path, capsys):
    out = tmp_path / "results"
    os.makedirs(out)
    config = tmp_path / "plan.yaml"
    config.write_text(yaml.safe_dump(PLAN))
    assert compare.main([str(config), "--out", str(out), "--todo", "--only", "GRU4Rec",
                         "GRU4Rec-check"]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("tiny: 2 run(s) to go")  # the two trials
    assert "tuning.csv" in printed and "learning_rate 0.01" in printed
    assert "and the seeds of GRU4Rec, GRU4Rec-check, after their trials" in printed
