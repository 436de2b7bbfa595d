"""``--todo``: the runs a comparison has still to train, and about what each will cost.

Each estimate is one thread's wall time: seconds an epoch (the run's own epochs so far when it
has begun, else the finished runs of the same label, else its model's tuning trials) times the
epochs still to train (the finished runs' median epochs less those already validated; the
epoch cap when nothing like it has finished). The figures are those of the machine the earlier
runs shared, so they plan sessions, they do not promise them.
"""

import json
import os
import statistics

from benchmarks.compare.plan import entry_of, setting_text, tuned_as
from benchmarks.compare.runner import PROGRESS_CURVES, progress_folder, resumed_first
from benchmarks.compare.store import read_runs


def epoch_cap(plan, label, setting=None):
    """The run's epoch cap: its setting's, else its entry's, else the plan's shared one."""
    for source in (setting or {}, entry_of(plan, label), plan.get("shared") or {}):
        if "epochs" in source:
            return int(source["epochs"])
    return None


def validated_epochs(folder):
    """(validated epochs, training seconds of each) an interrupted attempt left in ``folder``."""
    path = os.path.join(folder, PROGRESS_CURVES)
    if not os.path.isfile(path):
        return 0, []
    with open(path, encoding="utf-8") as handle:
        curves = json.load(handle)
    return len(curves["valid_scores"]), curves["epoch_seconds"]


def finished_like(rows, label):
    return [r for r in rows if r["model"] == label and r["status"] == "ok"
            and float(r.get("s_per_epoch") or 0) > 0 and int(r.get("epochs") or 0) > 0]


def estimate(plan, label, setting, folder, runs, trials):
    """``(seconds left, epochs done, basis)`` for one run; seconds is None when nothing
    measures it (no epoch trained and no run of its kind finished)."""
    done, seconds = validated_epochs(folder)
    like, basis = finished_like(runs, label), f"{label}'s finished runs"
    if not like:
        like, basis = finished_like(trials, tuned_as(plan, label)), \
            f"{tuned_as(plan, label)}'s trials"
    # a row's s_per_epoch: the median of its measured epochs (its wall time is only the last
    # attempt's when it was resumed, so wall / epochs would undercount it)
    per_epoch = statistics.median(float(r["s_per_epoch"]) for r in like) if like else None
    if seconds:  # this run's own pace on this machine beats any other run's
        per_epoch, basis = statistics.median(seconds), "its own epochs"
    cap = epoch_cap(plan, label, setting)
    if like:
        expected = statistics.median(int(r["epochs"]) for r in like)
    else:
        expected, basis = cap, basis + ", the epoch cap"
    if per_epoch is None or expected is None:
        return None, done, "not measured"
    left = max(expected - done, 1)  # a run past the usual length has at least one more
    if cap is not None:
        left = min(left, max(cap - done, 0))
    return per_epoch * left, done, basis


def todo_lines(plan, out, groups):
    """Lines of the runs to go, ``groups``: [(csv name, curve folder, jobs)], and the total."""
    lines, total, unmeasured = [], 0.0, 0
    trials = read_runs(os.path.join(out, "tuning.csv"))
    runs = read_runs(os.path.join(out, "runs.csv"))
    for csv_name, curve_folder, jobs in groups:
        def folder_of(job, curve_folder=curve_folder):
            return progress_folder(out, curve_folder, job)
        for job in resumed_first(jobs, folder_of):  # the order the comparison queues them in
            label, protocol, seed, setting = job
            folder = folder_of(job)
            left, done, basis = estimate(plan, label, setting, folder,
                                         trials if csv_name == "tuning.csv" else runs, trials)
            what = f"{label} [{setting_text(setting)}]" if setting else label
            begun = f"{done} epochs done" if done else "not begun"
            cost = f"~{left / 3600:.1f} h" if left is not None else "?"
            if left is None:
                unmeasured += 1
            else:
                total += left
            lines.append(f"  {csv_name:<10} {what:<44} {protocol:<13} seed {seed:<5} "
                         f"{begun:<16} {cost:>8}  ({basis})")
    return lines, total, unmeasured


def print_todo(plan, out, tuning, final, untuned, reused=()):
    """Print the runs to go: ``tuning`` and ``final`` are pending (label, protocol, seed,
    setting) jobs; ``untuned`` the labels whose runs wait for their model's trials; ``reused``
    the final runs that are finished trials (copied, not trained)."""
    lines, total, unmeasured = todo_lines(
        plan, out, [("tuning.csv", "tuning", tuning), ("runs.csv", "curves", final)])
    count = len(tuning) + len(final)
    print(f"{plan['dataset']}: {count} run(s) to go -> {out}; about {total / 3600:.1f} h on one "
          "thread" + (f", {unmeasured} not measured" if unmeasured else ""))
    for line in lines:
        print(line)
    if reused:
        print(f"  and {len(reused)} finished trial(s) copied as final runs: "
              + ", ".join(f"{label} seed {seed}" for label, _, seed, _ in reused))
    if untuned:
        print(f"  and the seeds of {', '.join(untuned)}, after their trials")
