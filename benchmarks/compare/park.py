"""``--park``: carry begun runs across machines through the repository.

A run's progress folder (``<out>/progress/``) is ignored by git, so a run longer than a session
loses its epochs when the next session starts on a fresh checkout. Parking copies each begun
run's latest state, the best checkpoint it names and its curves into ``<out>/parked/`` (tracked)
and, with ``--commit``, commits them; the next comparison on any checkout resumes the run from
there (:func:`unpark`, in the run's own process) and, once its row lands, deletes the parked
copy in the same commit (:func:`drop_parked`). A parked checkpoint is only ever added and
deleted, never rewritten in place, so each park costs the repository one copy of the two
checkpoints (the small curves file is replaced).

Park after stopping the comparison: while it writes to the folder, or while any run of the plan
still trains, the whole park is refused before anything is copied. A run whose files include
one over the repository's limit for a committed file (:data:`MAX_COMMITTED_BYTES`) is not
parked: it stays in its progress folder, and a later session on this checkout resumes it, a
fresh checkout retrains it. Size such runs to finish within a session.
"""

import contextlib
import fcntl
import os
import shutil

from benchmarks.compare.pending import (PARKED, PROGRESS_CURVES, final_jobs,
                                        newest_latest_state, parked_folder, progress_folder,
                                        tuning_jobs)
from benchmarks.compare.plan import setting_text
from benchmarks.compare.store import commit_results, exclusive_results_folder


MAX_COMMITTED_BYTES = 5 * 10 ** 6  # the repository takes no file over 5 MB


class RunStillTraining(RuntimeError):
    """A run to park is training now (its progress folder's lock is held)."""


def hold_idle(stack, folder):
    """Take ``folder/.lock`` (the lock a training run holds) for the rest of ``stack``, or raise
    :class:`RunStillTraining`."""
    handle = stack.enter_context(open(os.path.join(folder, ".lock"), "a", encoding="utf-8"))
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise RunStillTraining(f"{folder}: this run is training now; stop the comparison "
                               "before parking its runs") from None
    stack.callback(fcntl.flock, handle, fcntl.LOCK_UN)


def loaded_latest_state(folder):
    """``(name, loaded checkpoint)`` of the newest latest state in ``folder`` (the one a resume
    takes, :func:`~benchmarks.compare.runner.earlier_attempt`), or ``(None, None)``."""
    from recbole_hiertcn.checkpoint import load_checkpoint

    newest = newest_latest_state(folder)
    if newest is None:
        return None, None
    return os.path.basename(newest), load_checkpoint(newest)


def epochs_trained(state):
    """The epochs a loaded latest state holds (0 for None). The checkpoint's own count: the
    curves are written at validation, before the checkpoints."""
    return 0 if state is None else state["epoch"] + 1


def latest_state(folder):
    """``(name, epochs trained)`` of the newest latest state in ``folder``, or ``(None, 0)``."""
    name, state = loaded_latest_state(folder)
    return name, epochs_trained(state)


def resumable_files(folder, latest, state):
    """The files a run resumes from: its ``latest`` state (loaded: ``state``), the best
    checkpoint that state names, and the curves."""
    from recbole_hiertcn.trainer.trainer import LATEST_OF

    best = state[LATEST_OF]
    if not os.path.isfile(os.path.join(folder, best)):
        raise FileNotFoundError(f"{folder}: the latest state {latest} names {best}, which is "
                                "missing; this run cannot be parked")
    curves = [PROGRESS_CURVES] if os.path.isfile(os.path.join(folder, PROGRESS_CURVES)) else []
    return [latest, best] + curves


def copy_run(source, target, names, staging):
    """Replace ``target`` by a copy of ``names`` from ``source``, assembled in ``staging`` (an
    ignored folder) first, so an interruption leaves the old copy or the new one, never half of
    either, and nothing half-written where git would record it."""
    shutil.rmtree(staging, ignore_errors=True)
    os.makedirs(staging)
    for name in names:
        shutil.copy2(os.path.join(source, name), os.path.join(staging, name))
    shutil.rmtree(target, ignore_errors=True)
    os.makedirs(os.path.dirname(target), exist_ok=True)
    os.replace(staging, target)


def begun_runs(plan, out, only):
    """(job, progress folder, parked folder) of every unfinished run of the plan (the labels
    ``only`` names, all when None), trials first."""
    for curve_folder, jobs in (("tuning", tuning_jobs(plan, out, only)[1]),
                               ("curves", final_jobs(plan, out, only)[1])):
        for job in jobs:
            yield (job, progress_folder(out, curve_folder, job),
                   parked_folder(out, curve_folder, job))


def stale_parked(out, wanted):
    """Parked folders of runs that are no longer to go (finished elsewhere, another chosen
    setting, a label gone from the plan): kept, they would stay in the repository for good."""
    root = os.path.join(out, PARKED)
    if not os.path.isdir(root):
        return []
    return [os.path.join(root, curve_folder, name)
            for curve_folder in sorted(os.listdir(root))
            if os.path.isdir(os.path.join(root, curve_folder))
            for name in sorted(os.listdir(os.path.join(root, curve_folder)))
            if os.path.join(root, curve_folder, name) not in wanted]


def park(plan, out, only=None, commit=False):
    """Park every begun, unfinished run of the plan in ``out`` (the labels ``only`` names, all
    when None) whose progress folder holds a later state than its parked copy, and delete the
    parked copies of runs no longer to go; returns the (run, epochs, MiB) parked.

    Refused as a whole (:class:`RunStillTraining`, or SystemExit while a comparison writes to
    ``out``) before anything is copied when a run still trains."""
    parked, dropped, too_large = [], [], []
    if not os.path.isdir(out):
        print(f"{out}: no results folder, so no begun run to park", flush=True)
        return parked
    with exclusive_results_folder(out), contextlib.ExitStack() as locks:
        runs = list(begun_runs(plan, out, only))
        to_park = []
        for job, source, target in runs:
            if not os.path.isdir(source):
                continue
            hold_idle(locks, source)  # every run checked before any is copied
            latest, state = loaded_latest_state(source)
            epochs = epochs_trained(state)
            if latest is None or epochs <= latest_state(target)[1]:
                continue
            names = resumable_files(source, latest, state)
            largest = max(os.path.getsize(os.path.join(source, name)) for name in names)
            if largest > MAX_COMMITTED_BYTES:
                too_large.append((run_text(job), epochs, largest / 2 ** 20))
            else:
                to_park.append((job, source, target, names, epochs))
        for job, source, target, names, epochs in to_park:
            staging = os.path.join(out, "progress", ".parking")
            copy_run(source, target, names, staging)
            size = sum(os.path.getsize(os.path.join(target, name)) for name in names)
            parked.append((run_text(job), epochs, size / 2 ** 20))
        if only is None:
            for folder in stale_parked(out, {target for _, _, target in runs}):
                shutil.rmtree(folder)
                dropped.append(folder)
    for what, epochs, mib in parked:
        print(f"parked {what}: {epochs} epochs trained, {mib:.1f} MiB", flush=True)
    for what, epochs, mib in too_large:
        print(f"not parked {what}: {epochs} epochs trained, but a file of {mib:.1f} MiB is over "
              f"the {MAX_COMMITTED_BYTES / 10 ** 6:g} MB a committed file may take; it stays in "
              "its progress folder (this checkout resumes it)", flush=True)
    for folder in dropped:
        print(f"dropped {folder}: that run is no longer to go", flush=True)
    if not parked and not dropped and not too_large:
        print(f"{out}: no begun run to park", flush=True)
    if commit and (parked or dropped):
        commit_results(out, f"parked {len(parked)} begun run(s)"
                            + "".join(f"; {what} at epoch {epochs}" for what, epochs, _ in parked)
                            + (f"; dropped {len(dropped)} stale" if dropped else ""))
    return parked


def run_text(job):
    """``job`` as the park's messages name it."""
    label, protocol, seed, setting = job
    return f"{label} [{setting_text(setting)}] {protocol} seed {seed}"


def unpark(parked, progress):
    """Before a run trains: copy its parked state into its ``progress`` folder when the parked
    state is further than the folder's own (a fresh checkout has none). Each file arrives under
    a temporary name and is renamed, the curves last, so an interrupted copy leaves no truncated
    checkpoint that a later attempt would take for a whole one."""
    from recbole_hiertcn.trainer.trainer import LATEST_SUFFIX

    if not parked or latest_state(parked)[1] <= latest_state(progress)[1]:
        return False
    for name in os.listdir(progress):
        if name.endswith((".pth", ".partial")):  # an older attempt's: the parked one goes on
            os.remove(os.path.join(progress, name))

    def arrival(name):
        # the best checkpoint first, then the latest state that names it: a copy stopped
        # between them leaves no latest state, so the next attempt copies again instead of
        # failing to load a best file that is not there
        return name == PROGRESS_CURVES, name.endswith(LATEST_SUFFIX)

    for name in sorted(os.listdir(parked), key=arrival):
        partial = os.path.join(progress, name + ".partial")
        shutil.copy2(os.path.join(parked, name), partial)
        os.replace(partial, os.path.join(progress, name))
    return True


def drop_parked(out, curve_folder, job):
    """Once a run's row has landed: delete its parked copy (the row's commit records that)."""
    shutil.rmtree(parked_folder(out, curve_folder, job), ignore_errors=True)
