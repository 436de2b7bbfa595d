"""The command: tune, run every missing (label, protocol, seed), rewrite the report.

    python -m benchmarks.compare <plan.yaml> [--out FOLDER] [--only LABEL ...] [--workers N]
        [--commit] [--readme README.md]
    python -m benchmarks.compare <plan.yaml> --report [--readme README.md]
    python -m benchmarks.compare <plan.yaml> --todo [--only LABEL ...]

and, for the runs it starts, ``python -m benchmarks.compare --run '<json spec>'`` (see
:mod:`benchmarks.compare.runner`).
"""

import argparse
import json
import os

from benchmarks.compare.plan import (chosen_settings, grid_trials, load_plan, model_seeds,
                                     results_folder, setting_key, tuned_as)
from benchmarks.compare.report import headline_lines, update_readme, write_summary
from benchmarks.compare.runner import child_main, prepare_data, run_pool
from benchmarks.compare.store import (commit_results, curve_name, exclusive_results_folder,
                                      read_runs, record_run, run_key, write_json)
from benchmarks.compare.todo import print_todo

DESCRIPTION = ("Compare models on one dataset under both protocols and several seeds, "
               "resumable.")


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.compare",
                                     description=DESCRIPTION)
    parser.add_argument("config", nargs="?", help="benchmark yaml, e.g. benchmarks/ml-100k.yaml")
    parser.add_argument("--out", help="results folder (results/<dataset>)")
    parser.add_argument("--only", nargs="+", help="run only these model labels")
    parser.add_argument("--workers", type=int, default=1,
                        help="runs trained at the same time (each in its own process; pair "
                             "with the plan's threads so workers x threads <= CPU cores)")
    parser.add_argument("--commit", action="store_true",
                        help="git-commit the results folder after every finished run, so a "
                             "session that ends mid-comparison loses no finished run")
    parser.add_argument("--report", action="store_true",
                        help="only rewrite the report from the csv files: runs nothing, and "
                             "may run beside a comparison writing to the same folder")
    parser.add_argument("--todo", action="store_true",
                        help="only list the runs still to go and about what each costs on "
                             "one thread (from the epochs measured so far): runs nothing")
    parser.add_argument("--readme",
                        help="also rewrite this README's blocks of the results folder, each "
                             "between '<!-- compare: OUT PROTOCOL -->' and '<!-- /compare -->'")
    parser.add_argument("--run", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.run:
        return child_main(args.run)
    if not args.config:
        parser.error("the benchmark yaml is required")
    if args.workers < 1:
        parser.error("--workers must be at least 1")
    plan = load_plan(args.config)
    out = results_folder(plan, args.out)
    if args.todo:
        _, tuning = tuning_jobs(plan, out, args.only)
        _, final, untuned = final_jobs(plan, out, args.only)
        reused = [job for job in final if reusable_trial(plan, out, job) is not None]
        final = [job for job in final if job not in reused]
        print_todo(plan, out, tuning, final, untuned, reused)
        return 0
    os.makedirs(os.path.join(out, "curves"), exist_ok=True)
    command = "python -m benchmarks.compare " + args.config + (
        f" --out {args.out}" if args.out else "")
    if args.report:
        write_report(plan, args, out, command)
        return 0
    prepare_data(plan)
    with exclusive_results_folder(out):
        compare(plan, args, out, command)
    return 0


def write_report(plan, args, out, command):
    """Rewrite the summary (and the README's blocks with ``--readme``); print the headlines."""
    table = write_summary(plan, out, command)
    if args.readme:
        rewritten = update_readme(args.readme, out, table, plan)
        print(f"{args.readme}: {rewritten} results block(s) of {out} rewritten", flush=True)
    for protocol, rows in table.items():
        for line in headline_lines(rows, plan):
            print(f"{protocol}: {line}")


def compare(plan, args, out, command):
    """Tune (the plan's ``tuning``), then train every run of the plan not yet in
    ``out/runs.csv`` at the chosen settings, and rewrite the summary."""
    jobs, pending = tuning_jobs(plan, out, args.only)
    if jobs:
        report_extended(read_runs(os.path.join(out, "tuning.csv")), plan)
        print(f"{plan['dataset']}: tuning, {len(jobs)} trials, {len(jobs) - len(pending)} "
              f"already done, {len(pending)} to go -> {out}/tuning.csv", flush=True)
        run_pool(plan, args, out, command, pending, "tuning.csv", "tuning")
    todo, pending, untuned = final_jobs(plan, out, args.only)
    if untuned:
        print(f"not all trials of {', '.join(untuned)} finished; their seeds wait", flush=True)
    report_extended(read_runs(os.path.join(out, "runs.csv")), plan)
    pending = [job for job in pending if not reuse_trial(plan, out, command, job, args.commit)]
    print(f"{plan['dataset']}: {len(todo)} runs, {len(todo) - len(pending)} already done, "
          f"{len(pending)} to go -> {out}", flush=True)
    run_pool(plan, args, out, command, pending, "runs.csv", "curves")
    write_report(plan, args, out, command)


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
    run's own: its model entry's or its trial's ``epochs`` over the plan's ``shared``."""
    shared = plan.get("shared") or {}
    entry = (plan["models"].get(row["model"]) or {}) if "models" in plan else {}
    settings = {**shared, **entry, **(json.loads(row["setting"]) if row.get("setting") else {})}
    cap, patience = settings.get("epochs"), settings.get("stopping_step", 10)
    if row["status"] != "ok" or cap is None or int(row["epochs"]) >= cap:
        return False
    validations = int(row["epochs"]) // int(settings.get("eval_step", 1))
    return validations - int(row["best_epoch"]) <= patience


def report_extended(rows, plan):
    for row in rows:
        if cut_by_a_lower_cap(row, plan):
            print(f"{row['model']} {row['setting'] or ''} seed {row['seed']}: stopped at "
                  f"{row['epochs']} epochs, still improving within patience; it runs again "
                  f"under the plan's {plan['shared']['epochs']} (resumed where its progress "
                  "folder has a checkpoint)", flush=True)


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


def reuse_trial(plan, out, command, job, commit=False):
    """A final run at the tuning seed is the chosen trial itself: copy it instead of training
    the same run again. True if copied."""
    label, protocol, seed, setting = job
    row = reusable_trial(plan, out, job)
    if row is None:
        return False
    source = os.path.join(out, "tuning", curve_name(label, protocol, seed, setting))
    if os.path.isfile(source):
        with open(source, encoding="utf-8") as handle:
            curve = json.load(handle)
        write_json(os.path.join(out, "curves", curve_name(label, protocol, seed)), curve)
    record_run(os.path.join(out, "runs.csv"), row)
    write_summary(plan, out, command)
    if commit:
        commit_results(out, f"{label} {protocol} seed {seed}: the chosen trial reused")
    return True
