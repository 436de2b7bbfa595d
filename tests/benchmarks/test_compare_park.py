"""``--park``: a begun run carried to a fresh checkout through the repository ends where an
uninterrupted run ends, and its parked copy leaves with its row."""

import json
import os
import shutil
import subprocess

import pytest
import torch
import yaml

from benchmarks import compare
from benchmarks.compare import park, store
from benchmarks.compare.pending import parked_folder, progress_folder


def three_epoch_plan(data_root, tmp_path, seeds=(1,)):
    plan = {
        "dataset": "tiny_sess", "data_path": str(data_root), "protocols": ["LS"],
        "seeds": list(seeds), "threads": 1, "models": {"HierTCN": {"model": "HierTCN"}},
        "shared": {"load_col": {"inter": ["user_id", "item_id", "timestamp", "session_id"]},
                   "embedding_size": 8, "hidden_size": 8, "tcn_channels": [8, 8],
                   "MAX_ITEM_LIST_LENGTH": 10, "max_history": 10, "epochs": 3,
                   "stopping_step": 5, "train_batch_size": 64,
                   "metrics": ["Recall", "MRR", "NDCG"], "topk": [5, 10, 20],
                   "valid_metric": "MRR@10", "show_progress": False, "state": "ERROR"},
    }
    path = tmp_path / "plan.yaml"
    path.write_text(yaml.safe_dump(plan))
    return path


JOB = ("HierTCN", "LS", 1, None)


def begin(plan, out, epochs=1, job=JOB):
    """``epochs`` epochs of the plan's run ``job``, trained (or resumed) in its progress folder:
    a begun run."""
    capped = dict(plan, shared=dict(plan["shared"], epochs=epochs))
    row, curve, _ = compare.run_job(capped, *job,
                                    progress=progress_folder(str(out), "curves", job))
    assert row["status"] == "ok" and int(row["epochs"]) == epochs
    return curve


def test_a_parked_run_resumes_on_a_fresh_checkout_and_ends_as_if_uninterrupted(
        data_root, tmp_path, monkeypatch):
    """Begun, stopped, resumed (two attempts' files in its folder), parked, its progress
    folder gone with the machine: the next comparison resumes it from the newest state and ends
    with the figures of an uninterrupted run."""
    monkeypatch.chdir(tmp_path)
    config = three_epoch_plan(data_root, tmp_path)
    plan = compare.load_plan(str(config))
    out = tmp_path / "results"
    begin(plan, out, epochs=1)
    second = begin(plan, out, epochs=2)  # resumed: the folder holds both attempts' states

    (what, epochs, mib), = park.park(plan, str(out))
    assert what == "HierTCN [plan settings] LS seed 1" and epochs == 2 and mib > 0
    parked = parked_folder(str(out), "curves", JOB)
    names = sorted(os.listdir(parked))
    # the newest latest state, the best checkpoint it names, the curves; nothing else
    assert len(names) == 3 and names[-1] == "curves.json"
    assert sum(name.endswith("-latest.pth") for name in names) == 1
    assert park.latest_state(parked)[1] == 2
    assert park.park(plan, str(out)) == []  # parked as far as it got: nothing to do

    shutil.rmtree(out / "progress")  # the next session's fresh checkout: no progress folder
    assert compare.main([str(config), "--out", str(out)]) == 0
    resumed, = store.read_runs(str(out / "runs.csv"))
    curve, = store.load_curves(str(out))[("HierTCN", "LS")]
    assert int(resumed["epochs"]) == 3
    assert not os.path.exists(parked)  # its parked copy left with its row

    whole, whole_curve, _ = compare.run_job(plan, *JOB, progress=str(tmp_path / "whole"))
    assert {m: resumed[m] for m in compare.METRICS} == {m: whole[m] for m in compare.METRICS}
    assert resumed["valid_score"] == whole["valid_score"]
    assert curve["valid_scores"] == whole_curve["valid_scores"]
    # it did resume: the first two epochs' times are the earlier attempts', not measured again
    assert curve["epoch_seconds"][:2] == second["epoch_seconds"]


def test_todo_counts_a_parked_runs_epochs(data_root, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    config = three_epoch_plan(data_root, tmp_path)
    plan = compare.load_plan(str(config))
    out = tmp_path / "results"
    begin(plan, out)
    park.park(plan, str(out))
    shutil.rmtree(out / "progress")
    assert compare.main([str(config), "--out", str(out), "--todo"]) == 0
    line = capsys.readouterr().out.splitlines()[-1]
    assert "1 epochs done" in line and "its own epochs" in line


def test_a_park_is_refused_whole_while_any_run_trains_or_a_comparison_writes(
        data_root, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = three_epoch_plan(data_root, tmp_path, seeds=(1, 2))
    plan = compare.load_plan(str(config))
    out = tmp_path / "results"
    second = ("HierTCN", "LS", 2, None)
    begin(plan, out)
    begin(plan, out, job=second)
    with compare.only_process_training(progress_folder(str(out), "curves", second)):
        with pytest.raises(SystemExit, match="training now; stop the comparison"):
            compare.main([str(config), "--out", str(out), "--park"])
    assert not os.path.exists(out / "parked")  # not even the idle run was copied
    with store.exclusive_results_folder(str(out)):  # a comparison writing there
        with pytest.raises(SystemExit, match="another benchmarks.compare is writing"):
            park.park(plan, str(out))
    assert not os.path.exists(out / "parked")
    assert len(park.park(plan, str(out))) == 2


def latest_pair(folder, stem, epoch):
    """A best checkpoint and the latest state naming it, as the trainer writes them, and the
    curves."""
    os.makedirs(folder, exist_ok=True)
    torch.save({"epoch": epoch}, os.path.join(folder, f"{stem}.pth"))
    torch.save({"epoch": epoch, "latest_of": f"{stem}.pth"},
               os.path.join(folder, f"{stem}-latest.pth"))
    with open(os.path.join(folder, "curves.json"), "w", encoding="utf-8") as handle:
        json.dump({"epoch_seconds": [1.0] * (epoch + 1), "valid_scores": [0.1] * (epoch + 1)},
                  handle)


def test_unpark_takes_only_a_further_state_and_survives_an_interrupted_copy(
        tmp_path, monkeypatch):
    parked, progress = str(tmp_path / "parked"), str(tmp_path / "progress")
    latest_pair(parked, "M-a", epoch=2)
    latest_pair(progress, "M-b", epoch=0)
    copied = []

    def copy_then_stop(source, target):  # the machine stops after the first file
        if copied:
            raise KeyboardInterrupt
        copied.append(source)
        shutil.copyfile(source, target)

    monkeypatch.setattr(park.shutil, "copy2", copy_then_stop)
    with pytest.raises(KeyboardInterrupt):
        park.unpark(parked, progress)
    # the best file came first and the latest state never arrived: no state to resume from, so
    # the next attempt copies again instead of loading a half-copied folder
    assert park.latest_state(progress) == (None, 0)
    monkeypatch.undo()
    assert park.unpark(parked, progress) is True
    assert sorted(os.listdir(progress)) == ["M-a-latest.pth", "M-a.pth", "curves.json"]
    assert park.unpark(parked, progress) is False  # as far: the folder's own goes on
    assert park.unpark(str(tmp_path / "none"), progress) is False


def test_park_drops_the_parked_copies_of_runs_no_longer_to_go(data_root, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    plan = compare.load_plan(str(three_epoch_plan(data_root, tmp_path)))
    out = tmp_path / "results"
    stale = out / "parked" / "curves" / "Gone_LS_1"
    latest_pair(str(stale), "M-a", epoch=1)
    assert park.park(plan, str(out), only=["HierTCN"]) == [] and stale.exists()  # --only: kept
    assert park.park(plan, str(out)) == []
    assert not stale.exists()


def test_park_and_the_row_are_committed_with_the_results_folder_alone(
        data_root, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    subprocess.run(["git", "init", "-q"], check=True)
    subprocess.run(["git", "config", "user.email", "t@t"], check=True)
    subprocess.run(["git", "config", "user.name", "t"], check=True)
    (tmp_path / ".gitignore").write_text("results/**/progress/\nresults/**/.lock\n")
    config = three_epoch_plan(data_root, tmp_path)
    plan = compare.load_plan(str(config))
    out = "results"
    begin(plan, out)
    park.park(plan, out, commit=True)

    def tracked():
        listed = subprocess.run(["git", "ls-files", out], capture_output=True, text=True)
        return listed.stdout.split()
    assert len([path for path in tracked() if "/parked/" in path]) == 3
    shutil.rmtree(os.path.join(out, "progress"))
    assert compare.main([str(config), "--out", out, "--commit"]) == 0
    assert not [path for path in tracked() if "/parked/" in path]
    assert os.path.join(out, "runs.csv") in tracked()
    status = subprocess.run(["git", "status", "--porcelain", out], capture_output=True,
                            text=True)
    assert status.stdout == ""


def test_a_run_with_a_file_over_the_repositorys_limit_is_not_parked(
        data_root, tmp_path, monkeypatch, capsys):
    """The repository takes no file over 5 MB: a run with a larger checkpoint stays in its
    progress folder, named in the output, and nothing of it is copied or committed."""
    monkeypatch.chdir(tmp_path)
    config = three_epoch_plan(data_root, tmp_path)
    plan = compare.load_plan(str(config))
    out = tmp_path / "results"
    begin(plan, out)
    progress = progress_folder(str(out), "curves", JOB)
    before = sorted(os.listdir(progress))
    monkeypatch.setattr(park, "MAX_COMMITTED_BYTES", 1000)  # the tiny model's files are larger
    assert park.park(plan, str(out), commit=True) == []
    assert not os.path.exists(parked_folder(str(out), "curves", JOB))
    assert sorted(os.listdir(progress)) == before  # left where this checkout resumes it
    printed = capsys.readouterr().out
    assert "not parked HierTCN [plan settings] LS seed 1: 1 epochs trained" in printed
    assert "no begun run to park" not in printed
    monkeypatch.undo()
    monkeypatch.chdir(tmp_path)
    (what, epochs, _), = park.park(plan, str(out))  # under the real limit it parks
    assert what == "HierTCN [plan settings] LS seed 1" and epochs == 1
