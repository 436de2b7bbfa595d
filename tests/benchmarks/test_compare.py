"""The comparison command on a tiny dataset: runs, summary, charts, resume (the parts on their
own: test_compare_plan.py, test_compare_store.py, test_compare_runner.py,
test_compare_significance.py, test_compare_report.py)."""

import csv
import fcntl
import json
import os
import re

import pytest
import torch
import yaml

from benchmarks import compare
from benchmarks.compare import runner
from tests.conftest import reload_and_test


def tiny_plan(data_root, tmp_path):
    plan = {
        "dataset": "tiny_sess", "data_path": str(data_root),
        "protocols": ["LS", "last_session"], "seeds": [1, 2], "threads": 1, "focus": "HierTCN",
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
    # where each figure was measured: a float result depends on the processor's kernels too
    assert all("; torch " in r["machine"] and "; Python 3." in r["machine"] for r in rows)
    report = (out / "results.md").read_text()
    assert "## Protocol `LS`" in report and "## Protocol `last_session`" in report
    assert ("| HierTCN | " in report or "| **HierTCN** | " in report) and "±" in report
    assert "Best HierTCN variant / best other model: Recall@10 " in report
    assert "x (HierTCN / GRU4Rec)" in report and "Each HierTCN variant against" in report
    assert "Every run on 1 CPU thread(s)." in report
    # what the plan has still to run: HierGRU's four runs, priced from nothing yet
    assert "## Still to run\n\n4 run(s) to go, about 0.0 h on one thread " \
        "(4 not measured), validation included" in report
    assert report.count("| runs.csv | HierGRU | ") == 4
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
    assert "## Still to run\n\nEvery run of the plan has finished." in (
        out / "results.md").read_text()
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


def test_a_report_on_a_plan_never_run_says_so_and_creates_nothing(data_root, tmp_path,
                                                                   monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = tiny_plan(data_root, tmp_path)
    out = tmp_path / "results"
    with pytest.raises(SystemExit, match="no results folder yet"):
        compare.main([str(config), "--out", str(out), "--report"])
    assert not out.exists()


def test_threads_pin_the_runs_cpu_threads(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "8")
    env = compare.child_environment({"threads": 2})
    assert env["OMP_NUM_THREADS"] == "2" and env["MKL_NUM_THREADS"] == "2"
    # without the key the caller's environment is passed on untouched
    assert compare.child_environment({})["OMP_NUM_THREADS"] == "8"


def tuning_plan(data_root, tmp_path, grid):
    plan = yaml.safe_load(tiny_plan(data_root, tmp_path).read_text())
    plan.update(protocols=["LS"], seeds=[1, 2], tuning={"seed": 1, "grid": grid})
    plan["models"] = {"HierTCN": {"model": "HierTCN"}, "GRU4Rec": {"model": "GRU4Rec"},
                      "HierGRU": {"model": "HierTCN", "low_level": "gru"},
                      "withheld": {"model": "HierTCN", "target_session_known": False,
                                   "tuned_as": "HierTCN"}}
    plan["shared"]["epochs"] = 1
    path = tmp_path / "tuned.yaml"
    path.write_text(yaml.safe_dump(plan))
    return path


def test_tuning_chooses_on_validation_then_runs_the_seeds(data_root, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    grid = {"HierTCN": {"learning_rate": [0.001, 0.05]}, "GRU4Rec": {"learning_rate": [0.001, 0.05]}}
    out = tmp_path / "results"
    assert compare.main([str(tuning_plan(data_root, tmp_path, grid)), "--out", str(out),
                         "--workers", "2"]) == 0
    trials = list(csv.DictReader(open(out / "tuning.csv", newline="")))
    assert sorted((r["model"], json.loads(r["setting"])["learning_rate"]) for r in trials) == [
        ("GRU4Rec", 0.001), ("GRU4Rec", 0.05), ("HierTCN", 0.001), ("HierTCN", 0.05)]
    assert all(r["seed"] == "1" for r in trials)
    runs = list(csv.DictReader(open(out / "runs.csv", newline="")))
    assert len(runs) == 8  # 4 models x 2 seeds
    for label in ("HierTCN", "GRU4Rec"):
        mine = [r for r in trials if r["model"] == label]
        best = max(mine, key=lambda r: float(r["valid_score"]))  # validation, never test
        finals = [r for r in runs if r["model"] == label]
        assert {r["setting"] for r in finals} == {best["setting"]}
        # the tuning seed's final run is the chosen trial itself, not a second training
        assert next(r for r in finals if r["seed"] == "1") == best
    assert {r["setting"] for r in runs if r["model"] == "HierGRU"} == {""}  # not tuned
    # a variant runs at its model's chosen setting, trained (not copied) at every seed
    hiertcn = {r["setting"] for r in runs if r["model"] == "HierTCN"}
    withheld = [r for r in runs if r["model"] == "withheld"]
    assert {r["setting"] for r in withheld} == hiertcn and len(withheld) == 2
    assert "| withheld |" in (out / "results.md").read_text()
    report = (out / "results.md").read_text()
    leader = re.search(r"^\| \*\*(.+?)\*\* \|", report, re.MULTILINE).group(1)  # in bold
    assert f"Leader on test MRR@10: {leader}." in report
    assert f"The leader, {leader}, against every other model" in report
    for label in {"HierTCN", "GRU4Rec", "HierGRU", "withheld"} - {leader}:
        assert f"| {label} | paired, 2 seeds |" in report
    # the score settings are chosen by is shown next to the test figures
    hiertcn_runs = [float(r["valid_score"]) for r in runs if r["model"] == "HierTCN"]
    row = next(line for line in report.splitlines()
               if line.startswith(("| HierTCN |", "| **HierTCN** |")))
    assert f"| {sum(hiertcn_runs) / 2:.4f} |" in row and "| validation |" in report
    tuning = (out / "tuning.md").read_text()
    assert tuning.count("**chosen** |") == 2 and "2 trials" in tuning
    assert len(os.listdir(out / "tuning")) == 4 and len(os.listdir(out / "curves")) == 8


@pytest.mark.parametrize("grid, message", [
    ({"HierTCN": {"learning_rate": [0.001, 0.01]}, "GRU4Rec": {"learning_rate": [0.01]}},
     "same number of trials, got GRU4Rec 1, HierTCN 2"),
    ({"SASRec": {"learning_rate": [0.01]}}, "'SASRec' is not one of the plan's models"),
    ({"GRU4Rec": {"learning_rate": [0.01]}}, "withheld: tuned_as 'HierTCN' is not a tuned model"),
])
def test_unequal_or_unknown_tuning_is_refused(data_root, tmp_path, grid, message):
    with pytest.raises(SystemExit, match=message):
        compare.load_plan(str(tuning_plan(data_root, tmp_path, grid)))


def test_choice_is_the_best_validation_score_and_waits_for_every_trial():
    trials = {"M": [{"learning_rate": 0.1}, {"learning_rate": 0.2}, {"learning_rate": 0.3}]}
    rows = [{"model": "M", "protocol": "LS", "status": "ok", "valid_score": score,
             "setting": compare.setting_key(setting)}
            for score, setting in zip(("0.2", "0.5", "0.5"), trials["M"])]
    assert compare.choose(trials, rows, "LS") == {"M": {"learning_rate": 0.2}}  # tie: first
    assert compare.choose(trials, rows[:2], "LS") == {}  # a trial is missing: no choice yet


def test_a_run_stopped_half_way_resumes_from_its_progress_folder(data_root, tmp_path,
                                                                  monkeypatch):
    """An attempt that got through one epoch (here: a plan of one epoch) leaves a checkpoint
    and its curves; the next attempt of the same run continues from there and ends where an
    uninterrupted run ends."""
    monkeypatch.chdir(tmp_path)
    plan = compare.load_plan(str(tiny_plan(data_root, tmp_path)))
    one_epoch = dict(plan, shared=dict(plan["shared"], epochs=1))
    progress = str(tmp_path / "progress" / "run")
    first, first_curve, _ = compare.run_job(one_epoch, "HierTCN", "LS", 1, progress=progress)
    assert first["status"] == "ok" and int(first["epochs"]) == 1
    resumed, resumed_curve, _ = compare.run_job(plan, "HierTCN", "LS", 1, progress=progress)
    whole, whole_curve, _ = compare.run_job(plan, "HierTCN", "LS", 1,
                                            progress=str(tmp_path / "progress" / "whole"))
    assert int(resumed["epochs"]) == int(whole["epochs"]) == 2
    assert resumed_curve["valid_scores"] == whole_curve["valid_scores"]
    # it did resume: the first epoch's timing is the first attempt's, not measured again
    assert resumed_curve["epoch_seconds"][0] == first_curve["epoch_seconds"][0]
    saved = [n for n in os.listdir(progress) if n.endswith(".pth")]
    # each attempt's best checkpoint and its latest state
    assert len(saved) == 4 and sum(n.endswith("-latest.pth") for n in saved) == 2
    assert {m: resumed[m] for m in compare.METRICS} == {m: whole[m] for m in compare.METRICS}


def test_an_interrupted_run_resumes_from_its_newest_latest_state(tmp_path):
    """Not from its best checkpoint (epochs after the best would be trained again), and with
    the curves up to the latest state's epoch."""
    folder = tmp_path / "run"
    folder.mkdir()
    for name, epoch in (("M-a.pth", 0), ("M-a-latest.pth", 2), ("M-b.pth", 0)):
        torch.save({"epoch": epoch}, folder / name)
    os.utime(folder / "M-a-latest.pth", (1, 1))  # the oldest file, but the only latest state
    os.utime(folder / "M-a.pth", (2, 2))
    (folder / compare.PROGRESS_CURVES).write_text(json.dumps(
        {"epoch_seconds": [1.0, 2.0, 3.0, 4.0], "valid_scores": [0.3, 0.2, 0.1, 0.05]}))
    path, seconds, scores = compare.earlier_attempt(str(folder))
    assert path == str(folder / "M-a-latest.pth")
    assert seconds == [1.0, 2.0, 3.0] and scores == [0.3, 0.2, 0.1]
    (folder / "M-a-latest.pth").unlink()  # a folder from before latest states: the newest
    assert compare.earlier_attempt(str(folder))[0] == str(folder / "M-b.pth")


def test_a_second_process_on_the_same_run_stops_before_touching_it(data_root, tmp_path,
                                                                    monkeypatch):
    """A comparison restarted while an orphaned child of the first still trains a run: the
    second child of that run stops at once, the folder keeps only the first's files."""
    monkeypatch.chdir(tmp_path)
    plan = compare.load_plan(str(tiny_plan(data_root, tmp_path)))
    progress = tmp_path / "progress" / "run"
    os.makedirs(progress)
    with compare.only_process_training(str(progress)):  # the first child, still training
        row, curve, message = compare.run_job(plan, "HierTCN", "LS", 1, progress=str(progress))
    assert row is None and curve is None  # nothing to record: the run's row stays as it is
    assert message.startswith("SKIPPED") and str(progress) in message
    assert "another process is training this run" in message
    assert sorted(os.listdir(progress)) == [".lock"]


def test_interrupting_a_comparison_stops_its_runs_and_starts_no_other(tmp_path, monkeypatch):
    """Ctrl-C while runs train: the running child is stopped at once (it resumes next time
    from its progress folder) and no queued run starts; nothing is recorded."""
    import signal
    import sys
    import threading
    import time

    from benchmarks.measure import run_measured

    started, ended, children = [], [], []

    def slow_job(plan, label, protocol, seed, setting=None, progress=None, running=None,
                 parked=None):
        started.append(label)
        children.append(running)
        code, *_ = run_measured([sys.executable, "-c", "import time; time.sleep(60)"],
                                running=running)
        ended.append(code)
        return None, None, f"ended with {code}"

    def interrupt_once_a_child_runs():
        # on a busy machine the first run may start late: wait for its child, not a fixed time
        deadline = time.monotonic() + 20
        while not (children and children[0]) and time.monotonic() < deadline:
            time.sleep(0.05)
        # a real SIGINT, sent to the main thread: a process-directed one (`kill -INT`) may land
        # on any thread, and the main thread's wait is then interrupted only when a run ends
        signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)

    monkeypatch.setattr(runner, "run_job", slow_job)
    jobs = [(f"M{n}", "LS", 1, None) for n in range(3)]
    args = type("Args", (), {"workers": 1})()
    threading.Thread(target=interrupt_once_a_child_runs, daemon=True).start()
    begun = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        compare.run_pool({}, args, str(tmp_path), "cmd", jobs, "runs.csv", "curves")
    assert time.monotonic() - begun < 30  # did not wait for the 60 s child
    deadline = time.monotonic() + 10
    while not ended and time.monotonic() < deadline:
        time.sleep(0.1)
    assert ended == [-signal.SIGTERM]  # the running child was stopped, not left to finish
    assert started == ["M0"]  # the queued runs never started
    assert not (tmp_path / "runs.csv").exists()


class RecordingTrainer:
    def _train_epoch(self, train_data, epoch):
        return 0.5

    def _valid_epoch(self, valid_data, show_progress=False):
        return 0.25, {"mrr@10": 0.25}


def test_epochs_are_recorded_on_the_one_trainer_without_touching_its_class(tmp_path):
    trainer, other = RecordingTrainer(), RecordingTrainer()
    seconds, scores = [0.1], [0.2]  # an earlier attempt's curves, continued
    compare.record_epochs(trainer, seconds, scores, str(tmp_path))
    assert trainer._train_epoch(None, 1) == 0.5
    assert trainer._valid_epoch(None) == (0.25, {"mrr@10": 0.25})
    assert len(seconds) == 2 and scores == [0.2, 0.25]
    written = json.loads((tmp_path / compare.PROGRESS_CURVES).read_text())
    assert written == {"epoch_seconds": seconds, "valid_scores": scores}
    other._train_epoch(None, 1), other._valid_epoch(None)  # another trainer is not recorded
    assert len(seconds) == 2 and len(scores) == 2
    assert "_train_epoch" not in vars(other) and "_valid_epoch" not in vars(other)


@pytest.mark.parametrize("epochs, best, cap, cut", [
    (30, 30, 60, True),    # still improving at the old cap of 30
    (30, 26, 60, True),    # 4 validations without a new best: within patience 5
    (30, 24, 60, False),   # 6 without a new best: early stopping ended it, whatever the cap
    (14, 8, 60, False),
    (60, 60, 60, False),   # reached the plan's own cap
])
def test_a_run_cut_by_a_lower_cap_is_told_apart_from_one_that_stopped(epochs, best, cap, cut):
    plan = {"shared": {"epochs": cap, "stopping_step": 5}}
    row = {"status": "ok", "epochs": str(epochs), "best_epoch": str(best)}
    assert compare.cut_by_a_lower_cap(row, plan) is cut


def test_raising_the_epoch_cap_extends_the_runs_it_cut(data_root, tmp_path, monkeypatch,
                                                       capsys):
    """Trials and seeds that ended at the old cap while still improving run on under the new
    cap from their last checkpoint; their rows are replaced, not duplicated, and end where an
    uninterrupted run under the new cap ends."""
    monkeypatch.chdir(tmp_path)
    grid = {"HierTCN": {"learning_rate": [0.01]}}
    path = tuning_plan(data_root, tmp_path, grid)
    plan = yaml.safe_load(path.read_text())
    plan["shared"].update(epochs=1, stopping_step=5)
    path.write_text(yaml.safe_dump(plan))
    out = tmp_path / "results"
    assert compare.main([str(path), "--out", str(out), "--only", "HierTCN"]) == 0
    plan["shared"]["epochs"] = 2
    path.write_text(yaml.safe_dump(plan))
    capsys.readouterr()
    assert compare.main([str(path), "--out", str(out), "--only", "HierTCN"]) == 0
    printed = capsys.readouterr().out
    assert "stopped at 1 epochs, still improving within patience" in printed
    trials = list(csv.DictReader(open(out / "tuning.csv", newline="")))
    runs = list(csv.DictReader(open(out / "runs.csv", newline="")))
    assert len(trials) == 1 and len(runs) == 2
    assert all(int(r["epochs"]) == 2 for r in trials + runs)
    assert next(r for r in runs if r["seed"] == "1") == trials[0]
    whole, _, _ = compare.run_job(compare.load_plan(str(path)), "HierTCN", "LS", 2,
                                  {"learning_rate": 0.01},
                                  progress=str(tmp_path / "progress" / "whole"))
    extended = next(r for r in runs if r["seed"] == "2")
    assert {m: extended[m] for m in compare.METRICS} == {m: whole[m] for m in compare.METRICS}


def test_every_shipped_plan_loads():
    """The plans in benchmarks/ are read the way the command reads them (RecBole config files
    for run_hyper.py, hyper_*.yaml, are not plans)."""
    folder = os.path.dirname(os.path.dirname(compare.__file__))  # benchmarks/
    plans = [name for name in os.listdir(folder)
             if name.endswith(".yaml") and not name.startswith("hyper_")]
    assert "online-retail.yaml" in plans and "online-retail-options.yaml" in plans
    for name in plans:
        plan = compare.load_plan(os.path.join(folder, name))
        assert plan["models"], name


def test_a_restarted_comparison_finishes_its_interrupted_runs_before_new_ones(tmp_path,
                                                                              monkeypatch):
    """Runs whose progress folder holds a checkpoint go first, the rest keep their order: a
    restart does not queue a half-trained run behind hours of new ones."""
    order = []

    def recording_job(plan, label, protocol, seed, setting=None, progress=None, running=None,
                      parked=None):
        order.append((label, seed))
        return None, None, "recorded"

    monkeypatch.setattr(runner, "run_job", recording_job)
    jobs = [("A", "LS", 1, None), ("B", "LS", 1, {"learning_rate": 0.01}), ("A", "LS", 2, None),
            ("C", "LS", 1, None), ("D", "LS", 1, None)]
    for job in jobs[1:3]:  # B (a tuning trial) and A seed 2 were interrupted
        folder = compare.progress_folder(str(tmp_path), "curves", job)
        os.makedirs(folder)
        open(os.path.join(folder, "C-Dec-01-2026_03-06-52-0123456789ab.pth"), "wb").close()
    os.makedirs(compare.progress_folder(str(tmp_path), "curves", jobs[3]))  # no checkpoint
    parked = compare.parked_folder(str(tmp_path), "curves", jobs[4])  # D: parked, fresh checkout
    os.makedirs(parked)
    open(os.path.join(parked, "D-Dec-01-2026_03-06-52-0123456789ab.pth"), "wb").close()
    args = type("Args", (), {"workers": 1})()
    compare.run_pool({}, args, str(tmp_path), "cmd", jobs, "runs.csv", "curves")
    assert order == [("B", 1), ("A", 2), ("D", 1), ("A", 1), ("C", 1)]


def test_a_model_entry_may_run_a_subset_of_the_seeds_and_each_run_is_committed(
        data_root, tmp_path, monkeypatch):
    """``seeds:`` in a model entry (a deterministic model, a costly check) runs only those;
    ``--commit`` leaves every finished run in a commit of its own, other files untouched."""
    import subprocess
    plan = yaml.safe_load(tiny_plan(data_root, tmp_path).read_text())
    plan.update(protocols=["LS"], seeds=[1, 2])
    plan["models"] = {"HierTCN": {"model": "HierTCN"},
                      "GRU4Rec-check": {"model": "GRU4Rec", "seeds": [2]}}
    plan["shared"]["epochs"] = 1
    repo = tmp_path / "repo"
    os.makedirs(repo)
    config = repo / "plan.yaml"
    config.write_text(yaml.safe_dump(plan))
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run(git[:1] + ["init", "-q"], cwd=repo, check=True)
    (repo / "notes.txt").write_text("mine")
    subprocess.run(git + ["add", "notes.txt"], cwd=repo, check=True)
    monkeypatch.chdir(repo)
    for name, value in (("GIT_AUTHOR_NAME", "t"), ("GIT_AUTHOR_EMAIL", "t@t"),
                        ("GIT_COMMITTER_NAME", "t"), ("GIT_COMMITTER_EMAIL", "t@t")):
        monkeypatch.setenv(name, value)
    assert compare.main([str(config), "--out", "results", "--commit"]) == 0
    runs = list(csv.DictReader(open(repo / "results" / "runs.csv", newline="")))
    assert sorted((r["model"], r["seed"]) for r in runs) == [
        ("GRU4Rec-check", "2"), ("HierTCN", "1"), ("HierTCN", "2")]
    log = subprocess.run(["git", "log", "--format=%s"], cwd=repo, capture_output=True,
                         text=True, check=True).stdout.splitlines()
    assert len(log) == 3 and all(line.startswith("results: ") for line in log)
    committed = subprocess.run(["git", "show", "HEAD:results/runs.csv"], cwd=repo,
                               capture_output=True, text=True, check=True).stdout
    assert committed == (repo / "results" / "runs.csv").read_text()
    # the user's staged file stays staged and out of the results commits
    status = subprocess.run(["git", "status", "--porcelain"], cwd=repo, capture_output=True,
                            text=True, check=True).stdout
    assert "A  notes.txt" in status
    plan["models"]["GRU4Rec-check"]["seeds"] = [3]
    config.write_text(yaml.safe_dump(plan))
    with pytest.raises(SystemExit, match=r"GRU4Rec-check: seeds \[3\] are not among"):
        compare.load_plan(str(config))


def test_a_runs_settings_are_shared_then_entry_then_trial():
    """One rule for what a run trains with: the child's spec and the cap check read it."""
    plan = {"dataset": "d", "shared": {"epochs": 60, "learning_rate": 0.1, "stopping_step": 5},
            "models": {"GRU4Rec-check": {"model": "GRU4Rec", "tuned_as": "GRU4Rec",
                                         "seeds": [1], "epochs": 5}}}
    trial = {"learning_rate": 0.01}
    assert compare.run_settings(plan, "GRU4Rec-check", trial) == {
        "epochs": 5, "learning_rate": 0.01, "stopping_step": 5}
    assert compare.job_spec(plan, "GRU4Rec-check", "LS", 1, trial)["settings"] == \
        compare.run_settings(plan, "GRU4Rec-check", trial)
    assert compare.job_spec(plan, "GRU4Rec-check", "LS", 1)["model"] == "GRU4Rec"
    # a row of a label the plan no longer holds: the shared settings
    assert compare.run_settings(plan, "Gone") == plan["shared"]


def test_a_models_own_epoch_cap_is_its_cap():
    """A one-pass model (``epochs: 1`` in its entry, or in a trial's setting) under a plan
    capped at 60 is finished after its one epoch, not cut and run again."""
    plan = {"shared": {"epochs": 60, "stopping_step": 5},
            "models": {"VSTAN": {"model": "VSTAN", "epochs": 1}, "GRU4Rec": {}}}
    row = {"status": "ok", "epochs": "1", "best_epoch": "1", "model": "VSTAN",
           "setting": '{"k": 300}'}
    assert compare.cut_by_a_lower_cap(row, plan) is False
    trial = dict(row, model="GRU4Rec", setting='{"epochs": 1}')
    assert compare.cut_by_a_lower_cap(trial, plan) is False
    assert compare.cut_by_a_lower_cap(dict(trial, setting=""), plan) is True
