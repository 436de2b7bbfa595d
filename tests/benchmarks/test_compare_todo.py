"""``python -m benchmarks.compare <plan> --todo``: the runs still to go and their estimates,
read from the results folder alone (nothing trains)."""

import json
import os

import pytest
import yaml

from benchmarks import compare
from benchmarks.compare import store, todo
from benchmarks.compare.pending import PROGRESS_CURVES, progress_folder

PLAN = {"dataset": "tiny", "protocols": ["LS"], "seeds": [1, 2, 3],
        "tuning": {"seed": 1, "grid": {"GRU4Rec": {"learning_rate": [0.1, 0.01]}}},
        "shared": {"epochs": 20, "stopping_step": 2},  # the rows below stopped early
        "models": {"GRU4Rec": {"model": "GRU4Rec"},
                   "GRU4Rec-check": {"model": "GRU4Rec", "tuned_as": "GRU4Rec", "seeds": [1],
                                     "epochs": 5},
                   "Pop": {"model": "Pop", "seeds": [1]}}}


def row(model, seed, setting, s_per_epoch, epochs, wall_s=None):
    """A finished run; its wall time is its last attempt's only (a resumed run's is less than
    its epochs took)."""
    return {"model": model, "protocol": "LS", "seed": seed, "status": "ok",
            "setting": json.dumps(setting, sort_keys=True) if setting else "",
            "s_per_epoch": s_per_epoch, "wall_s": wall_s or s_per_epoch * epochs,
            "epochs": epochs, "best_epoch": epochs - 5, "mrr@10": "0.1"}


@pytest.fixture
def folder(tmp_path):
    out = tmp_path / "results"
    os.makedirs(out)
    # both trials finished (the first chosen on validation), one seed of GRU4Rec besides
    store.record_run(str(out / "tuning.csv"), dict(row("GRU4Rec", 1, {"learning_rate": 0.1},
                                                       100, 10), valid_score="0.3"))
    store.record_run(str(out / "tuning.csv"), dict(row("GRU4Rec", 1, {"learning_rate": 0.01},
                                                       300, 10), valid_score="0.2"))
    # resumed after its 11th epoch: its wall time is the last epoch's
    store.record_run(str(out / "runs.csv"), row("GRU4Rec", 2, {"learning_rate": 0.1}, 50, 12,
                                                wall_s=60))
    return out


def test_each_estimate_comes_from_the_closest_measurement(folder):
    chosen = {"learning_rate": 0.1}
    runs = store.read_runs(str(folder / "runs.csv"))
    trials = store.read_runs(str(folder / "tuning.csv"))
    # a finished seed of the same label: 50 s an epoch (its measured epochs, not its wall
    # time over its epochs) for its 12 epochs
    assert todo.estimate(PLAN, "GRU4Rec", chosen, str(folder / "none"), runs, trials) == (
        600, 0, "GRU4Rec's finished runs")
    # a label with no finished run of its own reads its model's trial at this setting (100 s an
    # epoch) and its model's runs at this setting for the length, within its own cap of 5
    assert todo.estimate(PLAN, "GRU4Rec-check", chosen, str(folder / "none"), runs,
                         trials) == (500, 0, "GRU4Rec's trial at this setting, epochs as "
                                             "GRU4Rec's finished runs")
    # begun: its own epochs set the pace, and only those not yet validated are left
    begun = folder / "begun"
    os.makedirs(begun)
    (begun / PROGRESS_CURVES).write_text(json.dumps(
        {"epoch_seconds": [30, 40, 35], "valid_scores": [0.1, 0.2, 0.3]}))
    assert todo.estimate(PLAN, "GRU4Rec", chosen, str(begun), runs, trials) == (
        35 * 9, 3, "its own epochs, epochs as GRU4Rec's finished runs")
    # nothing measured at all
    assert todo.estimate(PLAN, "Pop", None, str(folder / "none"), runs, trials) == (
        None, 0, "not measured")


def test_trials_that_train_otherwise_set_no_pace(folder):
    """A prefix-mode check of a model tuned with all-position training costs many times its
    trials' epochs: their pace is not borrowed (the bug: a 16-minute epoch estimated at 25 s);
    its own epochs set the pace once it has begun, up to its epoch cap."""
    plan = {**PLAN, "models": {**PLAN["models"], "GRU4Rec-prefix": {
        "model": "GRU4Rec", "tuned_as": "GRU4Rec", "seeds": [1], "train_mode": "prefix"}}}
    chosen = {"learning_rate": 0.1}
    runs = store.read_runs(str(folder / "runs.csv"))
    trials = store.read_runs(str(folder / "tuning.csv"))
    assert todo.pace_differences(plan, "GRU4Rec-prefix", chosen) == ["train_mode"]
    assert todo.pace_differences(plan, "GRU4Rec-check", chosen) == []  # a lower cap only
    assert todo.estimate(plan, "GRU4Rec-prefix", chosen, str(folder / "none"), runs,
                         trials) == (None, 0, "not measured: GRU4Rec's trials train otherwise "
                                              "(train_mode), epochs as GRU4Rec's finished runs")
    begun = folder / "prefix"
    os.makedirs(begun)
    (begun / PROGRESS_CURVES).write_text(json.dumps(
        {"epoch_seconds": [900, 1000], "valid_scores": [0.1, 0.2]}))
    # how long it trains: as GRU4Rec's finished seed (12 epochs), not up to the cap of 20 (the
    # bug: NextItNet-prefix priced at its 60-epoch cap, about 7 h, when it stopped after 16)
    assert todo.estimate(plan, "GRU4Rec-prefix", chosen, str(begun), runs, trials) == (
        950 * 10, 2, "its own epochs, epochs as GRU4Rec's finished runs")
    # with no run of its model finished either, up to its epoch cap
    assert todo.estimate(plan, "GRU4Rec-prefix", chosen, str(begun), [], []) == (
        950 * 18, 2, "its own epochs, the epoch cap")


def test_a_new_choice_is_priced_by_its_own_trial_not_by_the_old_settings_runs(folder):
    """When a moved grid changes a model's choice, its earlier seeds (another setting) stopped
    after 12 epochs; the new choice's trial ran to 16. The new seeds and their checks are priced
    at 16 epochs (the bug: SASRec's new seeds at 0.1 h, their trial had taken 60 epochs)."""
    plan = {**PLAN, "models": {**PLAN["models"], "GRU4Rec-prefix": {
        "model": "GRU4Rec", "tuned_as": "GRU4Rec", "seeds": [1], "train_mode": "prefix"}}}
    store.record_run(str(folder / "tuning.csv"), dict(row("GRU4Rec", 1, {"learning_rate": 0.03},
                                                          80, 16), valid_score="0.4"))
    runs = store.read_runs(str(folder / "runs.csv"))
    trials = store.read_runs(str(folder / "tuning.csv"))
    chosen = {"learning_rate": 0.03}
    assert todo.estimate(plan, "GRU4Rec", chosen, str(folder / "none"), runs, trials) == (
        50 * 16, 0, "GRU4Rec's finished runs at other settings, epochs as GRU4Rec's trial at "
                    "this setting")
    # a check that trains otherwise: its pace once begun, the new trial's length
    begun = folder / "prefix"
    os.makedirs(begun)
    (begun / PROGRESS_CURVES).write_text(json.dumps(
        {"epoch_seconds": [900], "valid_scores": [0.1]}))
    assert todo.estimate(plan, "GRU4Rec-prefix", chosen, str(begun), runs, trials) == (
        900 * 15, 1, "its own epochs, epochs as GRU4Rec's trial at this setting")


def test_validation_is_priced_from_the_runs_wall_time_but_not_a_resumed_runs(folder):
    """Each epoch's validation comes on top of its training: a run that spent 100 s an epoch
    besides its 50 s of training prices the next at 150 s an epoch (the bug: HRNN-seen-items'
    seeds planned at 1.8 h, their first took 2.9 h); a resumed run's wall time (its last
    attempt's) says nothing. Validation is added, not multiplied: a check that trains 10x
    slower does not validate 10x slower."""
    runs = store.read_runs(str(folder / "runs.csv"))  # seed 2: resumed, wall 60 s of 600
    chosen = {"learning_rate": 0.1}
    assert todo.estimate(PLAN, "GRU4Rec", chosen, str(folder / "none"), runs, [])[0] == 600
    store.record_run(str(folder / "runs.csv"), row("GRU4Rec", 3, chosen, 50, 12,
                                                   wall_s=3 * 50 * 12))
    runs = store.read_runs(str(folder / "runs.csv"))
    assert todo.estimate(PLAN, "GRU4Rec", chosen, str(folder / "none"), runs, [])[0] == 1800
    plan = {**PLAN, "models": {**PLAN["models"], "GRU4Rec-prefix": {
        "model": "GRU4Rec", "tuned_as": "GRU4Rec", "seeds": [1], "train_mode": "prefix"}}}
    begun = folder / "prefix"
    os.makedirs(begun)
    (begun / PROGRESS_CURVES).write_text(json.dumps(
        {"epoch_seconds": [500, 500], "valid_scores": [0.1, 0.2]}))
    assert todo.estimate(plan, "GRU4Rec-prefix", chosen, str(begun), runs, [])[0] == (
        (500 + 100) * 10)


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


def test_todo_lists_the_runs_a_comparison_would_train_in_its_order(folder, tmp_path, capsys):
    config = tmp_path / "plan.yaml"
    config.write_text(yaml.safe_dump(PLAN))
    plan = compare.load_plan(str(config))
    # GRU4Rec seed 3 was interrupted: the comparison resumes it before it starts new runs
    _, pending, untuned = compare.final_jobs(plan, str(folder))
    begun = progress_folder(str(folder), "curves", pending[-1])
    assert begun.endswith("GRU4Rec_LS_3_learning_rate-0.1")
    os.makedirs(begun)
    (open(os.path.join(begun, "GRU4Rec-x-latest.pth"), "wb")).close()
    before = sorted(os.listdir(folder))
    assert compare.main([str(config), "--out", str(folder), "--todo"]) == 0
    printed = capsys.readouterr().out.splitlines()
    # seed 2 is done; seed 1 of GRU4Rec is its chosen trial, copied, not trained
    # GRU4Rec seed 3 as its seed 2 (600 s), the check from its trial at the chosen setting
    # within its cap of 5 (500 s), Pop not measured
    assert printed[0] == ("tiny: 3 run(s) to go, about 0.3 h on one thread "
                          f"(1 not measured) -> {folder}")
    listed = [line.split() for line in printed[1:4]]
    assert [(words[1], words[words.index("seed") + 1]) for words in listed] == [
        ("GRU4Rec", "3"), ("GRU4Rec-check", "1"), ("Pop", "1")]
    assert printed[4] == "  and 1 finished trial(s) copied as final runs: GRU4Rec seed 1"
    assert sorted(os.listdir(folder)) == before  # nothing written
    assert len(pending) == 4 and untuned == []
    assert compare.reusable_trial(plan, str(folder), pending[0])["valid_score"] == "0.3"


def test_labels_waiting_for_their_trials_are_named(tmp_path, capsys):
    out = tmp_path / "results"
    os.makedirs(out)
    config = tmp_path / "plan.yaml"
    config.write_text(yaml.safe_dump(PLAN))
    assert compare.main([str(config), "--out", str(out), "--todo", "--only", "GRU4Rec",
                         "GRU4Rec-check"]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("tiny: 2 run(s) to go,")  # the two trials
    assert "tuning.csv" in printed and "learning_rate 0.01" in printed
    assert "and the seeds of GRU4Rec, GRU4Rec-check, after their trials" in printed
