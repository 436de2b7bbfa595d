"""RecBole's GRU4Rec, NextItNet and SASRec: one training epoch in prefix mode (RecBole's one row
per target) against sequence mode (one pass per window, the loss at every position), side by side.

    python -m benchmarks.baseline_speed [--plan benchmarks/online-retail.yaml]
        [--models GRU4Rec NextItNet SASRec] [--prefix-batches 8] [--threads 1]

Every (model, mode) runs in its own process on ``--threads`` CPU threads, with the plan's
dataset, preset and ``shared:`` settings (Online Retail: L = 50, 2048 targets a batch, CE, the
``last_session`` protocol), the plugin's dataset and the trainer ``run_recbole_hiertcn.py`` uses.
Reported: training targets, batches, seconds of the epoch (training only, after data
preparation), targets per second, the process's peak resident memory and how much of it the
training added (peak after the epoch less peak before it).

Prefix mode is timed on its first ``--prefix-batches`` batches and extrapolated to the epoch
(marked ``~``: its batches all have L slots per row, so they cost alike); sequence mode runs
its whole epoch. The dataset is converted first when missing (the plan's ``prepare``).
"""

import argparse
import json
import os
import resource
import shutil
import sys
import tempfile
import time

import yaml

from benchmarks.measure import run_measured

MODELS = ("GRU4Rec", "NextItNet", "SASRec")
MODES = ("prefix", "sequence")
DEFAULT_PLAN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "online-retail.yaml")


def _peak_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _train_one_epoch(spec):
    """Runs inside the child: prepare the data, time one training epoch (or its first batches)."""
    import itertools

    import torch

    torch.set_num_threads(spec["threads"])
    import recbole_hiertcn  # noqa: F401
    from recbole.data import data_preparation
    from recbole.utils import get_model, init_seed

    from benchmarks.speed import _Counted, _training_targets
    from recbole_hiertcn.quick_start import build_config, make_dataset
    from recbole_hiertcn.trainer import run_trainer

    settings = dict(spec["settings"], train_mode=spec["mode"], epochs=1, show_progress=False,
                    state="ERROR", use_gpu=False, checkpoint_dir=spec["work"])
    config = build_config(spec["model"], spec["dataset"], config_dict=settings)
    init_seed(config["seed"], config["reproducibility"])
    started = time.perf_counter()
    train, _, _ = data_preparation(config, make_dataset(config))
    prepared = time.perf_counter() - started
    init_seed(config["seed"], config["reproducibility"])
    model = get_model(config["model"])(config, train._dataset)
    trainer = run_trainer(config["MODEL_TYPE"], config["model"])(config, model)
    batches = len(train)
    limit = min(spec["batches"] or batches, batches)
    before = _peak_mib()
    started = time.perf_counter()
    loss = trainer._train_epoch(_Counted(itertools.islice(iter(train), limit), train), 0)
    seconds = time.perf_counter() - started
    return {"prepare_s": prepared, "epoch_s": seconds * batches / limit,
            "extrapolated": limit < batches, "timed_batches": limit, "batches": batches,
            "targets": _training_targets(train), "train_extra_mib": _peak_mib() - before,
            "loss": float(sum(loss) if isinstance(loss, tuple) else loss)}


def load_plan(plan_path):
    """A compare plan: its ``dataset``, ``data_path``, ``prepare`` and ``shared:`` are used."""
    with open(plan_path, encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def prepare_dataset(plan):
    """Run the plan's ``prepare`` commands when the dataset's atomic files are missing."""
    inter = os.path.join(plan["data_path"], plan["dataset"], f"{plan['dataset']}.inter")
    if os.path.isfile(inter):
        return
    for command in plan.get("prepare") or []:
        code, _, _, out, err = run_measured([sys.executable, "-m", *map(str, command)])
        if code != 0:
            raise SystemExit(f"preparing {plan['dataset']} failed:\n{out[-2000:]}{err[-2000:]}")


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.baseline_speed",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--plan", default=DEFAULT_PLAN,
                        help="compare plan whose dataset and shared settings are used")
    parser.add_argument("--models", nargs="+", default=list(MODELS))
    parser.add_argument("--modes", nargs="+", default=list(MODES), choices=MODES)
    parser.add_argument("--prefix-batches", type=int, default=8,
                        help="time prefix mode on its first N batches and extrapolate (0: all)")
    parser.add_argument("--sequence-batches", type=int, default=0,
                        help="likewise for sequence mode (0: the whole epoch)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads per run")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                        help="extra settings (yaml values), e.g. MAX_ITEM_LIST_LENGTH=20")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print("RESULT " + json.dumps(_train_one_epoch(json.loads(args.child))))
        return 0

    plan = load_plan(args.plan)
    prepare_dataset(plan)
    settings = dict(plan.get("shared") or {}, data_path=os.path.abspath(plan["data_path"]),
                    seed=(plan.get("seeds") or [2020])[0])
    for item in args.set:
        key, _, value = item.partition("=")
        settings[key] = yaml.safe_load(value)
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
    work = tempfile.mkdtemp(prefix="baseline-speed-")  # the trainers' checkpoint_dir (unused)
    print(f"{plan['dataset']}: L={settings.get('MAX_ITEM_LIST_LENGTH')}, "
          f"batch {settings.get('train_batch_size')} targets, {args.threads} thread(s) per run")
    print(f"{'model':<10}{'mode':<10}{'targets':>9}{'batches':>9}{'epoch s':>10}"
          f"{'targets/s':>11}{'peak RSS MiB':>14}{'train +MiB':>12}{'speed-up':>10}", flush=True)
    for model in args.models:
        results = {}
        for mode in args.modes:
            batches = args.prefix_batches if mode == "prefix" else args.sequence_batches
            spec = {"model": model, "mode": mode, "dataset": plan["dataset"], "batches": batches,
                    "settings": settings, "threads": args.threads, "work": work}
            code, _, peak, out, err = run_measured(
                [sys.executable, "-m", "benchmarks.baseline_speed", "--child", json.dumps(spec)],
                env=env)
            if code != 0 or "RESULT " not in out:
                print(f"{model:<10}{mode:<10} failed\n{err[-2000:]}", flush=True)
                continue
            result = json.loads(out.split("RESULT ", 1)[1])
            results[mode] = result
            base = results.get("prefix", {}).get("epoch_s")
            ratio = f"{base / result['epoch_s']:.1f}x" if base and mode != "prefix" else "-"
            mark = "~" if result["extrapolated"] else ""
            print(f"{model:<10}{mode:<10}{result['targets']:>9,}{result['batches']:>9,}"
                  f"{mark + format(result['epoch_s'], ',.1f'):>10}"
                  f"{result['targets'] / result['epoch_s']:>11,.0f}{peak:>14,.0f}"
                  f"{result['train_extra_mib']:>12,.0f}{ratio:>10}", flush=True)
    shutil.rmtree(work, ignore_errors=True)
    print("~: timed on the first batches of the epoch and extrapolated "
          f"({args.prefix_batches} prefix batches).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
