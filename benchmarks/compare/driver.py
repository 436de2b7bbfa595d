"""The command: tune, run every missing (label, protocol, seed), rewrite the report.

    python -m benchmarks.compare <plan.yaml> [--out FOLDER] [--only LABEL ...] [--workers N]
        [--commit] [--readme README.md]
    python -m benchmarks.compare <plan.yaml> --report [--readme README.md]
    python -m benchmarks.compare <plan.yaml> --todo [--only LABEL ...]
    python -m benchmarks.compare <plan.yaml> --park [--only LABEL ...] [--commit]

and, for the runs it starts, ``python -m benchmarks.compare --run '<json spec>'`` (see
:mod:`benchmarks.compare.runner`).
"""

import argparse
import json
import os

from benchmarks.compare.park import RunStillTraining, park
from benchmarks.compare.pending import (cut_by_a_lower_cap, final_jobs, reusable_trial,
                                        tuning_jobs)
from benchmarks.compare.plan import load_plan, results_folder
from benchmarks.compare.report import headline_lines, update_readme, write_summary
from benchmarks.compare.runner import child_main, prepare_data, run_pool
from benchmarks.compare.store import (commit_results, curve_name, exclusive_results_folder,
                                      read_runs, record_run, write_json)
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
    parser.add_argument("--park", action="store_true",
                        help="only copy the begun runs' progress (stop the comparison first) "
                             "into <out>/parked/, tracked by git (with --commit, committed), "
                             "for the next comparison on any checkout to resume: runs nothing")
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
        print_todo(plan, out, args.only)
        return 0
    if args.park:
        try:
            park(plan, out, args.only, commit=args.commit)
        except RunStillTraining as error:
            raise SystemExit(str(error)) from None
        return 0
    command = "python -m benchmarks.compare " + args.config + (
        f" --out {args.out}" if args.out else "")
    if args.report:
        # A report reads what a comparison wrote; it never creates the folder itself.
        if not os.path.isdir(out):
            raise SystemExit(f"{out}: no results folder yet, so nothing to report "
                             f"(run `{command}` first)")
        write_report(plan, args, out, command)
        return 0
    os.makedirs(os.path.join(out, "curves"), exist_ok=True)
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


def report_extended(rows, plan):
    for row in rows:
        if cut_by_a_lower_cap(row, plan):
            print(f"{row['model']} {row['setting'] or ''} seed {row['seed']}: stopped at "
                  f"{row['epochs']} epochs, still improving within patience; it runs again "
                  f"under the plan's {plan['shared']['epochs']} (resumed where its progress "
                  "folder has a checkpoint)", flush=True)


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
