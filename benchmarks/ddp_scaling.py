"""Training speed with one and with several processes (DDP; gloo on the CPU).

    python -m benchmarks.ddp_scaling [--model HierTCN] [--dataset ml-100k] [--epochs 3]
                                     [--setups 1x2 1x1 2x1] [--train-batch-size 2048]

Each setup ``PxT`` runs ``run_recbole_hiertcn.py`` in a fresh process with ``--nproc=P`` and
``T`` torch threads per process, for ``--epochs`` epochs with validation only after the last,
and reads the training time of every epoch from rank 0's log (RecBole's ``training [time: ...``
lines). Printed: the median seconds per training epoch, interactions per second, the speed-up
over the first setup, the test MRR@10 (the same global batch in every setup, so it should agree)
and the wall time of the whole run.
"""

import argparse
import glob
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_setup(processes, threads, args, port):
    with tempfile.TemporaryDirectory() as work:
        command = [sys.executable, os.path.join(ROOT, "run_recbole_hiertcn.py"),
                   f"--model={args.model}", f"--dataset={args.dataset}",
                   f"--epochs={args.epochs}", f"--eval_step={args.epochs}",
                   f"--train_batch_size={args.train_batch_size}", "--show_progress=False",
                   f"--nproc={processes}", f"--port={port}"]
        environment = dict(os.environ, OMP_NUM_THREADS=str(threads),
                           MKL_NUM_THREADS=str(threads))
        start = time.perf_counter()
        finished = subprocess.run(command, cwd=work, env=environment, capture_output=True,
                                  text=True)
        wall = time.perf_counter() - start
        if finished.returncode:
            raise SystemExit(f"{processes}x{threads} failed:\n{finished.stdout[-3000:]}"
                             f"{finished.stderr[-3000:]}")
        logs = sorted(glob.glob(os.path.join(work, "log", "**", "*.log"), recursive=True))
        text = "".join(open(path, encoding="utf-8").read() for path in logs)
        epochs = [float(t) for t in re.findall(r"training \[time: ([\d.]+)s", text)]
        mrr = re.search(r"test\s+(?:[\d.]+\s+){4}([\d.]+)", finished.stdout)
        return epochs, wall, mrr.group(1) if mrr else "?"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="HierTCN")
    parser.add_argument("--dataset", default="ml-100k")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--train-batch-size", type=int, default=2048)
    parser.add_argument("--setups", nargs="+", default=["1x2", "1x1", "2x1"],
                        help="PROCESSESxTHREADS per setup")
    args = parser.parse_args(argv)
    rows, base = [], None
    for number, setup in enumerate(args.setups):
        processes, threads = (int(part) for part in setup.split("x"))
        epochs, wall, mrr = run_setup(processes, threads, args, 29500 + number)
        median = statistics.median(epochs)
        base = base or median
        rows.append((setup, median, base / median, mrr, wall, len(epochs)))
    print(f"\n{args.model} on {args.dataset}, global batch {args.train_batch_size} targets, "
          f"{args.epochs} epochs\n")
    print("| processes x threads | s per training epoch (median) | speed-up | test MRR@10 | "
          "wall s |")
    print("|---|---|---|---|---|")
    for setup, median, speedup, mrr, wall, _ in rows:
        print(f"| {setup} | {median:.2f} | {speedup:.2f}x | {mrr} | {wall:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
