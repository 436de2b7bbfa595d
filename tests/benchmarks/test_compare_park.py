"""``--park``: a begun run carried to a fresh checkout through the repository ends where an
uninterrupted run ends, and its parked copy leaves with its row."""

import os
import shutil
import subprocess

import pytest
import yaml

from benchmarks import compare
from benchmarks.compare import park, store
from benchmarks.compare.pending import parked_folder, progress_folder


def two_epoch_plan(data_root, tmp_path):
    plan = {
        "dataset": "tiny_sess", "data_path": str(data_root), "protocols": ["LS"], "seeds": [1],
        "threads": 1, "models": {"HierTCN": {"model": "HierTCN"}},
        "shared": {"load_col": {"inter": ["user_id", "item_id", "timestamp", "session_id"]},
                   "embedding_size": 8, "hidden_size": 8, "tcn_channels": [8, 8],
                   "MAX_ITEM_LIST_LENGTH": 10, "max_history": 10, "epochs": 2,
                   "train_batch_size": 64, "metrics": ["Recall", "MRR", "NDCG"],
                   "topk": [5, 10, 20], "valid_metric": "MRR@10", "show_progress": False,
                   "state": "ERROR"},
    }
    path = tmp_path / "plan.yaml"
    path.write_text(yaml.safe_dump(plan))
    return path


JOB = ("HierTCN", "LS", 1, None)


def begin(plan, out):
    """One epoch of the plan's run, trained into its progress folder: a begun run."""
    one_epoch = dict(plan, shared=dict(plan["shared"], epochs=1))
    first, curve, _ = compare.run_job(one_epoch, *JOB,
                                      progress=progress_folder(str(out), "curves", JOB))
    assert first["status"] == "ok" and int(first["epochs"]) == 1
    return curve


def test_a_parked_run_resumes_on_a_fresh_checkout_and_ends_as_if_uninterrupted(
        data_root, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = two_epoch_plan(data_root, tmp_path)
    plan = compare.load_plan(str(config))
    out = tmp_path / "results"
    first_curve = begin(plan, out)

    (what, epochs, mib), = park.park(plan, str(out))
    assert what == "HierTCN [plan settings] LS seed 1" and epochs == 1 and mib > 0
    parked = parked_folder(str(out), "curves", JOB)
    names = sorted(os.listdir(parked))
    # the latest state, the best checkpoint it names, the curves; no lock, nothing partial
    assert len(names) == 3 and names[-1] == "curves.json"
    assert sum(name.endswith("-latest.pth") for name in names) == 1
    assert park.park(plan, str(out)) == []  # parked as far as it got: nothing to do

    shutil.rmtree(out / "progress")  # the next session's fresh checkout: no progress folder
    assert compare.main([str(config), "--out", str(out)]) == 0
    resumed, = store.read_runs(str(out / "runs.csv"))
    curve, = store.load_curves(str(out))[("HierTCN", "LS")]
    assert int(resumed["epochs"]) == 2
    assert not os.path.exists(parked)  # its parked copy left with its row

    whole, whole_curve, _ = compare.run_job(plan, *JOB, progress=str(tmp_path / "whole"))
    assert {m: resumed[m] for m in compare.METRICS} == {m: whole[m] for m in compare.METRICS}
    assert resumed["valid_score"] == whole["valid_score"]
    # it did resume: the first epoch's time is the first attempt's, not measured again
    assert curve["epoch_seconds"][0] == first_curve["epoch_seconds"][0]


def test_todo_counts_a_parked_runs_epochs(data_root, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    config = two_epoch_plan(data_root, tmp_path)
    plan = compare.load_plan(str(config))
    out = tmp_path / "results"
    begin(plan, out)
    park.park(plan, str(out))
    shutil.rmtree(out / "progress")
    assert compare.main([str(config), "--out", str(out), "--todo"]) == 0
    line = capsys.readouterr().out.splitlines()[-1]
    assert "1 epochs done" in line and "its own epochs" in line


def test_a_run_still_training_is_not_parked(data_root, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = two_epoch_plan(data_root, tmp_path)
    plan = compare.load_plan(str(config))
    out = tmp_path / "results"
    begin(plan, out)
    progress = progress_folder(str(out), "curves", JOB)
    with compare.only_process_training(progress):  # the run's child, training
        with pytest.raises(SystemExit, match="training now; stop the comparison"):
            compare.main([str(config), "--out", str(out), "--park"])
    assert not os.path.exists(out / "parked")


def test_a_newer_park_replaces_the_older_and_an_older_never_replaces_a_newer(tmp_path):
    """unpark copies a parked attempt only when it went further than the folder's own."""
    parked, progress = tmp_path / "parked", tmp_path / "progress"
    for folder, epochs, name in ((parked, 3, "M-a"), (progress, 1, "M-b")):
        folder.mkdir()
        (folder / "curves.json").write_text(
            '{"epoch_seconds": %s, "valid_scores": %s}' % ([1.0] * epochs, [0.1] * epochs))
        (folder / f"{name}.pth").write_bytes(b"x")
        (folder / f"{name}-latest.pth").write_bytes(b"x")
    assert park.unpark(str(parked), str(progress)) is True
    assert sorted(os.listdir(progress)) == ["M-a-latest.pth", "M-a.pth", "curves.json"]
    assert park.unpark(str(parked), str(progress)) is False  # as far: the folder's own goes on
    assert park.unpark(str(tmp_path / "none"), str(progress)) is False


def test_park_and_the_row_are_committed_with_the_results_folder_alone(
        data_root, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    subprocess.run(["git", "init", "-q"], check=True)
    subprocess.run(["git", "config", "user.email", "t@t"], check=True)
    subprocess.run(["git", "config", "user.name", "t"], check=True)
    (tmp_path / ".gitignore").write_text("results/**/progress/\nresults/**/.lock\n")
    config = two_epoch_plan(data_root, tmp_path)
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
