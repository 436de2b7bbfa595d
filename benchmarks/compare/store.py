"""What a comparison keeps on disk: the rows of ``runs.csv`` / ``tuning.csv``, the curves,
the results folder's lock and its commits. Every file is written whole to a temporary file
and renamed, so an interrupted write never leaves half a file."""

import contextlib
import csv
import fcntl
import json
import os
import subprocess
import time

from benchmarks.compare.plan import setting_key, tuned_as

METRICS = [f"{m}@{k}" for m in ("recall", "mrr", "ndcg") for k in (5, 10, 20)]
FIELDS = (["model", "protocol", "seed", "status"] + METRICS
          + ["valid_score", "s_per_epoch", "epochs", "best_epoch", "peak_rss_mib", "wall_s",
             "setting", "machine"])  # machine: benchmarks.measure.machine() of the run's end


def read_runs(path):
    """The rows of the csv at ``path`` (dicts of strings); none when it does not exist."""
    if not os.path.isfile(path):
        return []
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def record_run(path, row):
    """Add ``row`` to the csv at ``path``, replacing an earlier row of the same run (model,
    protocol, seed, setting: a run extended under a higher epoch cap)."""
    key = run_key(row)
    rows = [r for r in read_runs(path) if run_key(r) != key] + [row]
    with open(path + ".tmp", "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=FIELDS, restval="")
        writer.writeheader()
        writer.writerows({k: r.get(k) or "" for k in FIELDS} for r in rows)
    os.replace(path + ".tmp", path)


def run_key(row):
    return row["model"], row["protocol"], str(row["seed"]), row.get("setting") or ""


def trained_seconds(row):
    """A row's epochs times its median epoch (0 for a row without them, a failed run). Unlike
    ``wall_s``, which is only the last attempt's when the run was resumed, it covers every
    epoch."""
    return float(row.get("s_per_epoch") or 0) * int(row.get("epochs") or 0)


def final_rows(runs, label, protocol, chosen, plan=None):
    """The finished runs of ``label`` at its chosen setting (plan settings when not tuned);
    ``chosen``: {(label, protocol): setting}."""
    source = tuned_as(plan, label) if plan else label
    wanted = setting_key(chosen.get((source, protocol)))
    return [r for r in runs if r["protocol"] == protocol and r["model"] == label
            and r["status"] == "ok" and (r.get("setting") or "") == wanted]


def by_seed(runs, label, protocol, chosen, plan):
    """{seed: row} of :func:`final_rows`."""
    return {r["seed"]: r for r in final_rows(runs, label, protocol, chosen, plan)}


def curve_name(label, protocol, seed, setting=None):
    suffix = "".join(f"_{name}-{value}" for name, value in (setting or {}).items())
    return f"{label}_{protocol}_{seed}{suffix}.json"


def write_json(path, record):
    with open(path + ".tmp", "w", encoding="utf-8") as handle:
        json.dump(record, handle)
    os.replace(path + ".tmp", path)


def load_curves(out):
    """{(label, protocol): [curve record, ...]} of the final runs' curves in ``out/curves``."""
    curves = {}
    folder = os.path.join(out, "curves")
    if os.path.isdir(folder):
        for name in sorted(os.listdir(folder)):
            with open(os.path.join(folder, name), encoding="utf-8") as handle:
                record = json.load(handle)
            curves.setdefault((record["model"], record["protocol"]), []).append(record)
    return curves


@contextlib.contextmanager
def exclusive_results_folder(out):
    """Hold ``out/.lock`` for the whole comparison: a second comparison writing to the same
    folder stops at once instead of appending to the same ``runs.csv`` and re-running its runs."""
    with open(os.path.join(out, ".lock"), "w", encoding="utf-8") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise SystemExit(f"{out}: another benchmarks.compare is writing results there; "
                             f"wait for it, or give this one its own --out") from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def commit_results(out, message, attempts=20):
    """``git add`` and ``git commit`` the results folder ``out`` alone (other staged or
    changed files are left as they are), retrying while another git command holds the
    repository's lock. A failure is printed, never raised: the run's row is on disk either way."""
    for attempt in range(attempts):
        added = subprocess.run(["git", "add", "-A", "--", out], capture_output=True, text=True)
        done = added.returncode == 0 and subprocess.run(
            ["git", "commit", "-q", "-m", f"results: {message}", "--", out],
            capture_output=True, text=True)
        if done and done.returncode == 0:
            return True
        error = (done.stdout + done.stderr) if done else added.stderr
        if "nothing to commit" in error or "no changes added" in error:
            return True
        if "index.lock" not in error:
            break
        time.sleep(1 + attempt)
    print(f"could not commit {out}: {error.strip()}", flush=True)
    return False
