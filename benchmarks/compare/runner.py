"""Training the runs: each (model label, protocol, seed[, setting]) in a process of its own.

The parent (:func:`run_job`, :func:`run_pool`) starts ``python -m benchmarks.compare --run
'<json spec>'`` (the spec: :func:`~benchmarks.compare.plan.job_spec`, plus ``progress``); the
child (:func:`run_one`) trains and tests through RecBole's trainer and prints ``RESULT
<json>``, or exits with :data:`RUN_BUSY` when another process holds the run's progress folder.
"""

import concurrent.futures
import contextlib
import fcntl
import json
import os
import statistics
import sys
import time

from benchmarks.compare.park import drop_parked, unpark
from benchmarks.compare.pending import (PROGRESS_CURVES, newest_latest_state, parked_folder,
                                        progress_folder, resumed_first)
from benchmarks.compare.plan import eval_args, job_spec, setting_key, setting_text
from benchmarks.compare.report import write_summary
from benchmarks.compare.store import (METRICS, commit_results, curve_name, record_run,
                                      write_json)
from benchmarks.measure import machine, run_measured

RUN_BUSY = 75  # a child's exit code: another process holds the run (EX_TEMPFAIL)
CHILD_MODULE = "benchmarks.compare"  # python -m CHILD_MODULE --run '<spec>'


# ----------------------------------------------------------------------------- one run (child)
def earlier_attempt(folder):
    """The checkpoint an earlier, interrupted attempt of a run left in its progress ``folder``
    to resume from, and that attempt's curves up to the checkpoint's epoch: ``(path or None,
    epoch_seconds, valid_scores)``. The newest latest state (runs keep one, see
    :func:`_train_and_test`) comes first: it repeats no validated epoch; else the newest
    checkpoint (a folder of an attempt from before latest states were kept)."""
    from recbole_hiertcn.checkpoint import load_checkpoint

    checkpoints = [os.path.join(folder, name) for name in os.listdir(folder)
                   if name.endswith(".pth")]
    if not checkpoints:
        return None, [], []
    newest = newest_latest_state(folder) or max(checkpoints, key=os.path.getmtime)
    kept = load_checkpoint(newest)["epoch"] + 1  # epochs up to the checkpoint's
    curves = {"epoch_seconds": [], "valid_scores": []}
    if os.path.isfile(os.path.join(folder, PROGRESS_CURVES)):
        with open(os.path.join(folder, PROGRESS_CURVES), encoding="utf-8") as handle:
            curves = json.load(handle)
    return newest, curves["epoch_seconds"][:kept], curves["valid_scores"][:kept]


@contextlib.contextmanager
def only_process_training(folder):
    """Hold ``folder/.lock`` while a run trains there: a second process started on the same run
    (a comparison restarted while an orphaned child of the first still trains) stops at once
    (exit code :data:`RUN_BUSY`) instead of writing checkpoints and curves into the same
    folder."""
    with open(os.path.join(folder, ".lock"), "w", encoding="utf-8") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"{folder}: another process is training this run; stop it (or wait for it) "
                  "before running it again", file=sys.stderr)
            raise SystemExit(RUN_BUSY) from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def record_epochs(trainer, epoch_seconds, valid_scores, progress):
    """Time every training epoch and keep every validation score of this one ``trainer``
    (its own methods are wrapped; the Trainer class is left alone), writing the curves to the
    ``progress`` folder after each validation."""
    train_epoch, valid_epoch = trainer._train_epoch, trainer._valid_epoch

    def timed_train(*args, **kwargs):
        started = time.perf_counter()
        loss = train_epoch(*args, **kwargs)
        epoch_seconds.append(time.perf_counter() - started)
        return loss

    def recorded_valid(*args, **kwargs):
        score, result = valid_epoch(*args, **kwargs)
        valid_scores.append(float(score))
        if progress:
            write_json(os.path.join(progress, PROGRESS_CURVES),
                       {"epoch_seconds": epoch_seconds, "valid_scores": valid_scores})
        return score, result

    trainer._train_epoch, trainer._valid_epoch = timed_train, recorded_valid


def run_one(spec):
    """Train and test one (model, protocol, seed); returns the figures and the curves.

    With ``spec["progress"]`` (a folder of this run), checkpoints go there and the curves are
    written there after every validation; if an earlier attempt of the run left a checkpoint,
    training resumes from it (the plugin's trainers resume exactly) and the curves continue
    the earlier ones; a parked attempt (``spec["parked"]``, :mod:`~benchmarks.compare.park`)
    that went further is copied there first. One process at a time trains a run
    (:func:`only_process_training`)."""
    progress = spec.get("progress")
    if not progress:
        return _train_and_test(spec, None)
    os.makedirs(progress, exist_ok=True)
    with only_process_training(progress):
        if unpark(spec.get("parked"), progress):
            print(f"{progress}: resumed from its parked copy", file=sys.stderr, flush=True)
        return _train_and_test(spec, progress)


def _train_and_test(spec, progress):
    import recbole_hiertcn  # noqa: F401  (registers HierTCN before any config is built)
    from recbole_hiertcn.quick_start import fit_and_test, prepare_run

    epoch_seconds, valid_scores = [], []
    settings = dict(spec["settings"])
    if progress:
        settings["checkpoint_dir"] = progress
        settings["keep_latest_checkpoint"] = True  # an interrupted run repeats no epoch
        earlier, epoch_seconds, valid_scores = earlier_attempt(progress)
        if earlier is not None:
            settings["resume_checkpoint"] = earlier
    settings["seed"] = spec["seed"]
    settings["eval_args"] = eval_args(spec["protocol"])
    prepared = prepare_run(spec["model"], spec["dataset"], config_dict=settings)
    record_epochs(prepared.trainer, epoch_seconds, valid_scores, progress)
    result = fit_and_test(prepared)
    best = max(range(len(valid_scores)), key=valid_scores.__getitem__) if valid_scores else -1
    return {
        "test": {k: float(v) for k, v in result["test_result"].items()},
        "valid_score": float(result["best_valid_score"]),
        "epoch_seconds": epoch_seconds, "valid_scores": valid_scores,
        "epochs": len(epoch_seconds), "best_epoch": best + 1,
        "run_id": result["config"]["run_id"], "model_file": result["model_file"],
        "machine": machine(),
    }


def child_main(spec_text):
    """The child's whole work: ``--run '<spec>'`` -> ``RESULT <json>`` on stdout."""
    from benchmarks.measure import die_with_parent

    die_with_parent()
    print("RESULT " + json.dumps(run_one(json.loads(spec_text))))
    return 0


# ----------------------------------------------------------------------------- runs (parent)
def child_environment(plan):
    """The environment of every run: ``threads`` in the plan pins torch's CPU threads."""
    env = dict(os.environ)
    if plan.get("threads"):
        for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            env[name] = str(plan["threads"])
    return env


def prepare_data(plan):
    """Run the plan's ``prepare`` commands when its dataset's files are missing."""
    folder = plan.get("data_path")
    if not folder or not plan.get("prepare"):
        return
    if os.path.isfile(os.path.join(folder, plan["dataset"], f"{plan['dataset']}.inter")):
        return
    for command in plan["prepare"]:
        print("preparing: python -m " + " ".join(str(part) for part in command), flush=True)
        code, _, _, stdout, stderr = run_measured([sys.executable, "-m", *map(str, command)])
        if code != 0:
            raise SystemExit(f"preparing the data failed:\n{stderr}")


def run_job(plan, label, protocol, seed, setting=None, progress=None, running=None,
            parked=None):
    """Train one run in its own process (checkpoints in the ``progress`` folder, where an
    interrupted attempt's last checkpoint - or a ``parked`` one that went further - is resumed
    from; ``running``: see
    :func:`~benchmarks.measure.run_measured`); its row for ``runs.csv`` (None when another
    process holds the run: nothing of it is recorded), its validation curve and a note."""
    spec = job_spec(plan, label, protocol, seed, setting)
    if progress:
        spec["progress"] = progress
    if parked:
        spec["parked"] = parked
    code, wall, peak, stdout, stderr = run_measured(
        [sys.executable, "-m", CHILD_MODULE, "--run", json.dumps(spec)],
        env=child_environment(plan), running=running)
    if code == RUN_BUSY:
        return None, None, "SKIPPED: " + (stderr.strip().splitlines() or ["?"])[-1]
    row = {"model": label, "protocol": protocol, "seed": seed, "wall_s": f"{wall:.1f}",
           "peak_rss_mib": f"{peak:.0f}", "setting": setting_key(setting)}
    if code != 0 or "RESULT " not in stdout:
        row["status"] = "failed"
        return row, None, "FAILED: " + (stderr.strip().splitlines() or ["?"])[-1]
    result = json.loads(stdout.split("RESULT ", 1)[1])
    seconds = result["epoch_seconds"]
    row.update({m: f"{result['test'].get(m, float('nan')):.4f}" for m in METRICS})
    row.update(status="ok", valid_score=f"{result['valid_score']:.4f}",
               s_per_epoch=f"{statistics.median(seconds) if seconds else 0:.2f}",
               epochs=result["epochs"], best_epoch=result["best_epoch"],
               machine=result.get("machine", ""))
    curve = {"model": label, "protocol": protocol, "seed": seed, "setting": setting or {},
             "valid_scores": result["valid_scores"], "epoch_seconds": seconds,
             "run_id": result["run_id"], "model_file": result["model_file"]}
    return row, curve, f"test MRR@10 {row['mrr@10']}, {row['epochs']} epochs"


def run_pool(plan, args, out, command, jobs, csv_name, curve_folder):
    """Train ``jobs`` (label, protocol, seed, setting), ``args.workers`` at a time, interrupted
    ones first (:func:`resumed_first`); each row goes to ``out/csv_name`` and each curve to
    ``out/curve_folder`` as soon as it ends, then the report is rewritten (and, with
    ``args.commit``, the results folder committed)."""
    if not jobs:
        return
    os.makedirs(os.path.join(out, curve_folder), exist_ok=True)

    def folder_of(job):
        return progress_folder(out, curve_folder, job)

    def parked_of(job):
        return parked_folder(out, curve_folder, job)

    jobs = resumed_first(jobs, folder_of, parked_of)
    started = time.perf_counter()
    running = set()  # the children training now
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=args.workers)
    try:
        futures = {pool.submit(run_job, plan, *job, progress=folder_of(job), running=running,
                               parked=parked_of(job)): job for job in jobs}
        for number, future in enumerate(concurrent.futures.as_completed(futures), 1):
            label, protocol, seed, setting = futures[future]
            row, curve, note = future.result()
            if curve is not None:
                name = curve_name(label, protocol, seed,
                                  setting if curve_folder != "curves" else None)
                write_json(os.path.join(out, curve_folder, name), curve)
            if row is not None:
                record_run(os.path.join(out, csv_name), row)
                if row["status"] == "ok":  # its parked copy goes in the row's commit
                    drop_parked(out, curve_folder, futures[future])
                write_summary(plan, out, command)
                if getattr(args, "commit", False):
                    commit_results(out, f"{label} {protocol} seed {seed} "
                                        f"[{setting_text(setting)}] {row['status']}")
            elapsed = time.perf_counter() - started
            eta = elapsed / number * (len(jobs) - number)
            what = f"{label} [{setting_text(setting)}]" if setting else label
            took = f"{float(row['wall_s']):.0f} s; " if row is not None else ""
            print(f"[{number}/{len(jobs)}] {what:<16} {protocol:<13} seed {seed}: {note} "
                  f"({took}about {eta / 60:.0f} min left)", flush=True)
    except BaseException:
        # Ctrl-C or an error here: start no queued run and stop the running ones (they resume
        # from their progress folders next time) instead of waiting for them to finish
        pool.shutdown(wait=False, cancel_futures=True)
        for child in list(running):
            child.terminate()
        raise
    pool.shutdown()
