"""``--park``: carry begun runs across machines through the repository.

A run's progress folder (``<out>/progress/``) is ignored by git, so a run longer than a session
loses its epochs when the next session starts on a fresh checkout. Parking copies each begun
run's latest state, the best checkpoint it names and its curves into ``<out>/parked/`` (tracked)
and, with ``--commit``, commits them; the next comparison on any checkout resumes the run from
there (:func:`unpark`, in the run's own process) and, once its row lands, deletes the parked
copy in the same commit (:func:`drop_parked`). Parked files are only ever added and deleted,
never rewritten, so each park costs the repository one copy of each file.

Park after stopping the comparison: a run still training holds its folder's lock and is refused.
"""

import contextlib
import fcntl
import os
import shutil

from benchmarks.compare.pending import (PROGRESS_CURVES, final_jobs, parked_folder,
                                        progress_folder, tuning_jobs, validated_epochs)
from benchmarks.compare.plan import setting_text
from benchmarks.compare.store import commit_results


class RunStillTraining(RuntimeError):
    """A run to park is training now (its progress folder's lock is held)."""


@contextlib.contextmanager
def idle_run(folder):
    """Hold ``folder/.lock`` (the lock a training run holds) while its files are read, or raise
    :class:`RunStillTraining`."""
    with open(os.path.join(folder, ".lock"), "a", encoding="utf-8") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RunStillTraining(f"{folder}: this run is training now; stop the comparison "
                                   "before parking its runs") from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def resumable_files(folder):
    """The files a run resumes from in ``folder``: its latest state, the best checkpoint that
    state names, and the curves; empty when the folder holds no latest state (not begun)."""
    from recbole_hiertcn.checkpoint import load_checkpoint
    from recbole_hiertcn.trainer.trainer import LATEST_OF, LATEST_SUFFIX

    if not os.path.isdir(folder):
        return []
    latest = [name for name in os.listdir(folder) if name.endswith(LATEST_SUFFIX)]
    if not latest:
        return []
    newest = max(latest, key=lambda name: os.path.getmtime(os.path.join(folder, name)))
    best = load_checkpoint(os.path.join(folder, newest))[LATEST_OF]
    names = [newest, best] + ([PROGRESS_CURVES]
                              if os.path.isfile(os.path.join(folder, PROGRESS_CURVES)) else [])
    missing = [name for name in names if not os.path.isfile(os.path.join(folder, name))]
    if missing:
        raise FileNotFoundError(f"{folder}: the latest state {newest} names {best}, which is "
                                "missing; this run cannot be parked")
    return names


def copy_run(source, target, names):
    """Replace ``target`` by a copy of ``names`` from ``source``, written beside it first so
    an interruption leaves the old copy or the new one, never half of either."""
    staging = target + ".partial"
    shutil.rmtree(staging, ignore_errors=True)
    os.makedirs(staging)
    for name in names:
        shutil.copy2(os.path.join(source, name), os.path.join(staging, name))
    shutil.rmtree(target, ignore_errors=True)
    os.replace(staging, target)


def park(plan, out, only=None, commit=False):
    """Park every begun, unfinished run of the plan in ``out`` (the labels ``only`` names, all
    when None); returns the (run, epochs validated, MiB) parked. A run whose parked copy is as
    far as its progress folder is left as it is."""
    parked = []
    for curve_folder, jobs in (("tuning", tuning_jobs(plan, out, only)[1]),
                               ("curves", final_jobs(plan, out, only)[1])):
        for job in jobs:
            source = progress_folder(out, curve_folder, job)
            target = parked_folder(out, curve_folder, job)
            if not os.path.isdir(source):
                continue
            with idle_run(source):
                names = resumable_files(source)
                epochs = validated_epochs(source)[0]
                if not names or epochs <= validated_epochs(target)[0]:
                    continue
                copy_run(source, target, names)
            size = sum(os.path.getsize(os.path.join(target, name)) for name in names)
            label, protocol, seed, setting = job
            parked.append((f"{label} [{setting_text(setting)}] {protocol} seed {seed}",
                           epochs, size / 2 ** 20))
    for what, epochs, mib in parked:
        print(f"parked {what}: {epochs} epochs validated, {mib:.1f} MiB", flush=True)
    if not parked:
        print(f"{out}: no begun run to park", flush=True)
    elif commit:
        commit_results(out, f"parked {len(parked)} begun run(s): "
                            + "; ".join(f"{what} at epoch {epochs}" for what, epochs, _ in parked))
    return parked


def unpark(parked, progress):
    """Before a run trains: copy its parked state into its ``progress`` folder when the parked
    attempt validated more epochs than the folder's own (a fresh checkout has none)."""
    if parked and validated_epochs(parked)[0] > validated_epochs(progress)[0]:
        for name in os.listdir(progress):
            if name.endswith(".pth"):  # an older attempt's states: the parked one goes on
                os.remove(os.path.join(progress, name))
        for name in os.listdir(parked):
            shutil.copy2(os.path.join(parked, name), os.path.join(progress, name))
        return True
    return False


def drop_parked(out, curve_folder, job):
    """Once a run's row has landed: delete its parked copy (the row's commit records that)."""
    shutil.rmtree(parked_folder(out, curve_folder, job), ignore_errors=True)
