"""Which runs of a plan are still to go: the rule the comparison, ``--todo`` and the report
share. A run is done when ``runs.csv`` (a trial: ``tuning.csv``) holds it finished, unless a
lower epoch cap than the plan's cut it; an interrupted run keeps its checkpoints in its
progress folder (:func:`progress_folder`) and goes first (:func:`resumed_first`)."""

import json
import os

from benchmarks.compare.plan import (chosen_settings, grid_trials, model_seeds, run_settings,
                                     setting_key, tuned_as)
from benchmarks.compare.store import curve_name, read_runs, run_key

PROGRESS_CURVES = "curves.json"  # in a run's progress folder: the curves of its epochs so far
PARKED = "parked"  # <out>/PARKED: begun runs' progress, tracked by git (benchmarks.compare.park)


def tuning_jobs(plan, out, only=None):
    """The plan's tuning trials (label, protocol, tuning seed, setting) of the labels ``only``
    names (all when None), and those of them ``out/tuning.csv`` has not finished."""
    trials = {label: settings for label, settings in grid_trials(plan).items()
              if not only or label in only}
    rows = read_runs(os.path.join(out, "tuning.csv"))
    done = {(r["model"], r["protocol"], r["setting"]) for r in rows
            if r["status"] == "ok" and not cut_by_a_lower_cap(r, plan)}
    jobs = [(label, protocol, plan["tuning"]["seed"], setting) for protocol in plan["protocols"]
            for label, settings in trials.items() for setting in settings]
    return jobs, [job for job in jobs if (job[0], job[1], setting_key(job[3])) not in done]


def final_jobs(plan, out, only=None):
    """The plan's final runs (label, protocol, seed, chosen setting) that can start now, those
    of them ``out/runs.csv`` has not finished, and the tuned labels that wait for trials."""
    chosen = chosen_settings(plan, read_runs(os.path.join(out, "tuning.csv")))
    tuned = grid_trials(plan)
    untuned = [label for label in plan["models"] if tuned_as(plan, label) in tuned
               and any((tuned_as(plan, label), p) not in chosen for p in plan["protocols"])
               and (not only or label in only)]
    done = {run_key(r) for r in read_runs(os.path.join(out, "runs.csv"))
            if r["status"] == "ok" and not cut_by_a_lower_cap(r, plan)}
    todo = [(label, protocol, seed, chosen.get((tuned_as(plan, label), protocol)))
            for protocol in plan["protocols"] for seed in plan["seeds"]
            for label in plan["models"] if seed in model_seeds(plan, label)
            and (not only or label in only) and label not in untuned]
    pending = [job for job in todo
               if (job[0], job[1], str(job[2]), setting_key(job[3])) not in done]
    return todo, pending, untuned


def cut_by_a_lower_cap(row, plan):
    """True for a finished run that stopped at an epoch cap below the plan's ``epochs`` while
    its validation score was still within patience: under the plan's cap it would have gone on
    (RecBole stops after ``stopping_step`` + 1 validations without a new best). The cap is the
    run's own (:func:`~benchmarks.compare.plan.run_settings`), whatever set it."""
    setting = json.loads(row["setting"]) if row.get("setting") else None
    settings = run_settings(plan, row.get("model"), setting)
    cap, patience = settings.get("epochs"), settings.get("stopping_step", 10)
    if row["status"] != "ok" or cap is None or int(row["epochs"]) >= cap:
        return False
    validations = int(row["epochs"]) // int(settings.get("eval_step", 1))
    return validations - int(row["best_epoch"]) <= patience


def reusable_trial(plan, out, job):
    """The row of ``out/tuning.csv`` that is the final run ``job`` itself (a final run at the
    tuning seed, at its own label's chosen setting), or None."""
    label, protocol, seed, setting = job
    if setting is None or seed != plan["tuning"]["seed"] or tuned_as(plan, label) != label:
        return None
    key = setting_key(setting)
    return next((r for r in read_runs(os.path.join(out, "tuning.csv")) if r["model"] == label
                 and r["protocol"] == protocol and r["setting"] == key and r["status"] == "ok"),
                None)


def progress_folder(out, curve_folder, job):
    """Where the run ``job`` (label, protocol, seed, setting) keeps its checkpoints."""
    return os.path.join(out, "progress", curve_folder, curve_name(*job)[:-len(".json")])


def parked_folder(out, curve_folder, job):
    """Where ``--park`` keeps a copy of the run's progress in the repository
    (:mod:`~benchmarks.compare.park`)."""
    return os.path.join(out, PARKED, curve_folder, curve_name(*job)[:-len(".json")])


def validated_epochs(folder):
    """(validated epochs, training seconds of each) an interrupted attempt left in ``folder``."""
    path = os.path.join(folder, PROGRESS_CURVES)
    if not os.path.isfile(path):
        return 0, []
    with open(path, encoding="utf-8") as handle:
        curves = json.load(handle)
    return len(curves["valid_scores"]), curves["epoch_seconds"]


def newest_latest_state(folder):
    """The path of the newest latest-state checkpoint in ``folder`` (by time: a resumed run's
    own is written after the one it resumed from), or None: what a run resumes from first."""
    from recbole_hiertcn.trainer.trainer import LATEST_SUFFIX

    if not os.path.isdir(folder):
        return None
    latest = [os.path.join(folder, name) for name in os.listdir(folder)
              if name.endswith(LATEST_SUFFIX)]
    return max(latest, key=os.path.getmtime) if latest else None


def furthest_attempt(*folders):
    """Of a run's progress and parked folders, the one whose attempt validated the most epochs
    (the first on ties)."""
    return max(folders, key=lambda folder: validated_epochs(folder)[0])


def resumed_first(jobs, *folders_of):
    """``jobs`` with those an interrupted attempt left a checkpoint for (in any of the folders
    ``folders_of`` gives a job) moved to the front (otherwise in their order): stopped and
    started again, a comparison finishes the runs it had begun before it starts new ones,
    instead of queueing their saved epochs behind them."""
    def begun(job):
        return any(os.path.isdir(folder) and any(name.endswith(".pth")
                                                 for name in os.listdir(folder))
                   for folder in (folder_of(job) for folder_of in folders_of))
    return sorted(jobs, key=lambda job: not begun(job))  # stable: the order otherwise kept
