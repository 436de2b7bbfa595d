"""``--todo``: the runs a comparison has still to train, and about what each will cost.

Each estimate is one thread's wall time: seconds a training epoch (the run's own epochs so far
when it has begun, else the finished runs of the same label, else its model's tuning trials when
the label trains as they did) times the epochs still to train (the median of the closest
finished runs, those at the same setting first, less those already validated; the epoch cap
when nothing of that model has finished), each epoch with those runs' seconds of validation
(their wall time less their training, an epoch). The figures are those of the machine the
earlier runs shared, so they plan sessions, they do not promise them.
"""

import os
import statistics

from benchmarks.compare.pending import (final_jobs, furthest_attempt, parked_folder,
                                        progress_folder, resumed_first, reusable_trial,
                                        tuning_jobs, validated_epochs)
from benchmarks.compare.plan import run_settings, setting_key, setting_text, tuned_as
from benchmarks.compare.store import read_runs, trained_seconds

PACE_FREE_KEYS = ("epochs",)  # settings that cap a run without changing what an epoch costs


def pace_differences(plan, label, setting):
    """The settings (other than the trial's own knobs and the epoch cap) in which ``label``
    trains unlike its model's trials: a prefix-mode check of an all-position model costs many
    times its trials' epochs, so their pace says nothing about it."""
    own = run_settings(plan, label, setting)
    trials = run_settings(plan, tuned_as(plan, label), setting)
    return sorted(key for key in set(own) | set(trials) if key not in PACE_FREE_KEYS
                  and own.get(key) != trials.get(key))


ANY_SETTING = object()


def finished_like(rows, label, setting=ANY_SETTING):
    """The finished, timed rows of ``label`` (at ``setting`` when one is given)."""
    return [r for r in rows if r["model"] == label and r["status"] == "ok"
            and float(r.get("s_per_epoch") or 0) > 0 and int(r.get("epochs") or 0) > 0
            and (setting is ANY_SETTING or (r.get("setting") or "") == setting_key(setting))]


def first_measured(sources):
    """The first ``(rows, name)`` of ``sources`` with any rows, else ``([], None)``."""
    return next(((rows, name) for rows, name in sources if rows), ([], None))


def estimate(plan, label, setting, folder, runs, trials):
    """``(seconds left, epochs done, basis)`` for one run; seconds is None when nothing
    measures it (no epoch trained and no run of its kind finished).

    Closest measurement first. The pace: its own epochs, the label's runs (at this setting,
    then at any), its model's trials when the label trains as they do. The length: the label's
    runs at this setting, its model's runs and trials at this setting (a learning rate can turn
    10 epochs into 60), then at any setting, then the epoch cap."""
    model = tuned_as(plan, label)
    differences = pace_differences(plan, label, setting)
    own = (finished_like(runs, label, setting), f"{label}'s finished runs")
    own_elsewhere = (finished_like(runs, label), f"{label}'s finished runs at other settings")
    trial = (finished_like(trials, model, setting), f"{model}'s trial at this setting")
    trials_elsewhere = (finished_like(trials, model), f"{model}'s trials")
    paces = [own, own_elsewhere] + ([] if differences else [trial, trials_elsewhere])
    lengths = [own, (finished_like(runs, model, setting), f"{model}'s finished runs"), trial,
               own_elsewhere,
               (finished_like(runs, model), f"{model}'s finished runs at other settings"),
               trials_elsewhere]
    done, seconds = validated_epochs(folder)
    like, basis = first_measured(paces)
    # a row's s_per_epoch: the median of its measured epochs (its wall time is only the last
    # attempt's when it was resumed, so wall / epochs would undercount it)
    per_epoch = statistics.median(float(r["s_per_epoch"]) for r in like) if like else None
    if seconds:  # this run's own pace on this machine beats any other run's
        per_epoch, basis = statistics.median(seconds), "its own epochs"
    if basis is None:
        basis = f"{model}'s trials" + (
            f" train otherwise ({', '.join(differences)})" if differences else "")
    cap = run_settings(plan, label, setting).get("epochs")
    length_rows, length_basis = first_measured(lengths)
    if length_rows:
        expected = statistics.median(int(r["epochs"]) for r in length_rows)
        if length_basis != basis:
            basis = f"{basis}, epochs as {length_basis}"
    else:
        expected, basis = cap, basis + ", the epoch cap"
    if per_epoch is None or expected is None:
        return None, done, "not measured" + (f": {basis}" if differences else "")
    left = max(expected - done, 1)  # a run past the usual length has at least one more
    if cap is not None:
        left = min(left, max(int(cap) - done, 0))
    return (per_epoch + validation_seconds(length_rows)) * left, done, basis


def validation_seconds(rows):
    """Seconds an epoch that finished runs like this one spent besides training: each epoch's
    validation (and the load and the test, spread over the epochs). On Online Retail, where
    every position of a validation session is scored, 20-40 s against SASRec's 20 s of
    training. It does not grow with a costlier training mode, so it is added, not multiplied.
    A resumed run's wall time is its last attempt's only (less than its training): left out."""
    spare = [(float(r["wall_s"]) - trained_seconds(r)) / int(r["epochs"])
             for r in rows if r.get("wall_s")]
    spare = [seconds for seconds in spare if seconds >= 0]
    return statistics.median(spare) if spare else 0.0


class ToGo:
    """What a plan has still to run in a results folder: ``tuning`` and ``final`` are pending
    (label, protocol, seed, setting) jobs in the order the comparison queues them, ``reused``
    final runs that are finished trials (copied, not trained), ``untuned`` the labels whose
    seeds wait for their model's trials; ``rows`` one (file, what, protocol, seed, epochs done,
    seconds left or None, basis) per pending job."""

    def __init__(self, plan, out, only=None):
        _, tuning = tuning_jobs(plan, out, only)
        _, final, self.untuned = final_jobs(plan, out, only)
        self.reused = [job for job in final if reusable_trial(plan, out, job) is not None]
        final = [job for job in final if job not in self.reused]
        trials = read_runs(os.path.join(out, "tuning.csv"))
        runs = read_runs(os.path.join(out, "runs.csv"))
        self.rows = []
        for csv_name, curve_folder, jobs, rows in (("tuning.csv", "tuning", tuning, trials),
                                                   ("runs.csv", "curves", final, runs)):
            def progress_of(job, curve_folder=curve_folder):
                return progress_folder(out, curve_folder, job)

            def parked_of(job, curve_folder=curve_folder):
                return parked_folder(out, curve_folder, job)
            for job in resumed_first(jobs, progress_of, parked_of):  # the comparison's order
                label, protocol, seed, setting = job
                folder = furthest_attempt(progress_of(job), parked_of(job))
                left, done, basis = estimate(plan, label, setting, folder, rows, trials)
                what = f"{label} [{setting_text(setting)}]" if setting else label
                self.rows.append((csv_name, what, protocol, seed, done, left, basis))

    @property
    def hours(self):
        return sum(row[5] for row in self.rows if row[5] is not None) / 3600

    @property
    def unmeasured(self):
        return sum(row[5] is None for row in self.rows)

    def total_text(self):
        return (f"{len(self.rows)} run(s) to go, about {self.hours:.1f} h on one "
                "thread" + (f" ({self.unmeasured} not measured)" if self.unmeasured else ""))

    def notes(self):
        lines = []
        if self.reused:
            lines.append(f"and {len(self.reused)} finished trial(s) copied as final runs: "
                         + ", ".join(f"{label} seed {seed}" for label, _, seed, _ in self.reused))
        if self.untuned:
            lines.append(f"and the seeds of {', '.join(self.untuned)}, after their trials")
        return lines


def print_todo(plan, out, only=None):
    """``--todo``: the runs still to go, one a line."""
    to_go = ToGo(plan, out, only)
    print(f"{plan['dataset']}: {to_go.total_text()} -> {out}")
    for csv_name, what, protocol, seed, done, left, basis in to_go.rows:
        begun = f"{done} epochs done" if done else "not begun"
        cost = f"~{left / 3600:.1f} h" if left is not None else "?"
        print(f"  {csv_name:<10} {what:<44} {protocol:<13} seed {seed:<5} {begun:<16} "
              f"{cost:>8}  ({basis})")
    for line in to_go.notes():
        print("  " + line)


def still_to_run_lines(plan, out, command):
    """``## Still to run`` of ``results.md``: the runs the plan has not finished, with their
    estimates (none: a line saying every run has finished)."""
    to_go = ToGo(plan, out)
    if not to_go.rows and not to_go.untuned:
        return ["## Still to run", "", "Every run of the plan has finished.", ""]
    lines = ["## Still to run", "",
             f"{to_go.total_text()}, validation included: each estimate from the run's own "
             "epochs so far, else the same label's finished runs, else its model's trials, "
             "those at the same setting first, with those runs' validation seconds an epoch "
             f"(`{command} --todo`).", ""]
    if to_go.rows:
        lines += ["| file | run | protocol | seed | epochs done | hours | from |",
                  "|---|---|---|---|---|---|---|"]
        for csv_name, what, protocol, seed, done, left, basis in to_go.rows:
            hours = f"{left / 3600:.1f}" if left is not None else "?"
            lines.append(f"| {csv_name} | {what} | {protocol} | {seed} | {done} | {hours} | "
                         f"{basis} |")
        lines.append("")
    notes = [line[0].upper() + line[1:] + "." for line in to_go.notes()]
    return lines + notes + ([""] if notes else [])
