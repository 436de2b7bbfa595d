"""Training speed and peak memory: HierTCN against RecBole's GRU4Rec and NextItNet.

    python -m benchmarks.speed [--datasets ml-100k xing500k] [--histories 50 200] [--batch-size 2048]

Every (model, dataset, history length) trains one epoch in its own process, measured from the
outside (peak resident memory of that process, via ``wait4``) and inside (seconds of the
training epoch alone, after data preparation). Baselines run the way RecBole runs them: RecBole's
own ``SequentialDataset`` with its per-target augmentation and RecBole's trainer; ``--ours``
adds them on the plugin's O(N) dataset too. HierTCN runs in ``train_mode: sequence``. History
length is ``MAX_ITEM_LIST_LENGTH`` for the baselines and ``max_history`` for HierTCN.

``xing500k`` is a synthetic XING-format log (``dataset_converters.xing_sample``) of about
650,000 raw rows, converted with the hiertcn preset to about 540,000 interactions and loaded
with the ``xing`` preset.

With ``--baseline-batches N`` a baseline's epoch is timed on its first N batches and
extrapolated (marked ``~``): RecBole's NextItNet needs hours per epoch on 500k interactions at
L=200 on two cores. Memory is still that of the full data preparation plus N training steps.

The compute-bound estimate divides the machine's measured matrix-multiply rate (on HierTCN's
own layer shapes) by HierTCN's floating-point work per training interaction.
"""

import argparse
import json
import os
import sys
import tempfile
import time

import torch

from benchmarks.measure import run_measured

BASELINES = ("GRU4Rec", "NextItNet")
DATASETS = {"xing500k": "xing"}  # benchmark label -> dataset name (its preset applies)
XING_ROWS = 650_000


# ----------------------------------------------------------------------------- child process
def _train_one_epoch(spec):
    """Runs inside the child: prepare data, time one training epoch, return the figures."""
    import itertools

    import recbole_hiertcn  # noqa: F401
    from recbole.data import data_preparation
    from recbole.utils import get_model, get_trainer, init_seed

    from recbole_hiertcn.quick_start import build_config, make_dataset

    settings = {
        "MAX_ITEM_LIST_LENGTH": spec["history"], "max_history": spec["history"],
        "train_batch_size": spec["batch_size"], "epochs": 1, "show_progress": False,
        "state": "ERROR", "use_gpu": spec["device"] == "cuda",
        "use_session_dataset": spec["ours"], "train_neg_sample_args": None,
        "data_path": spec["data_path"], "checkpoint_dir": spec["work"],
    }
    if spec["model"] == "HierTCN":
        settings["train_mode"] = "sequence"
    config = build_config(spec["model"], spec["dataset"], config_dict=settings)
    init_seed(config["seed"], config["reproducibility"])
    started = time.perf_counter()
    data = make_dataset(config)
    train, _, _ = data_preparation(config, data)
    prepared = time.perf_counter() - started
    model = get_model(config["model"])(config, train._dataset).to(config["device"])
    trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, model)
    batches = len(train)
    limit = spec["batches"] or batches
    timed = itertools.islice(iter(train), limit)
    if config["device"].type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    trainer._train_epoch(_Counted(timed, train), epoch_idx=0)
    if config["device"].type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - started
    steps = min(limit, batches)
    targets = _training_targets(train)
    return {
        "prepare_s": prepared, "epoch_s": seconds * batches / max(steps, 1),
        "extrapolated": steps < batches, "targets": targets, "batches": batches,
        "n_items": int(train._dataset.item_num),
        "gpu_peak_mib": (torch.cuda.max_memory_allocated() / 2**20
                         if config["device"].type == "cuda" else None),
    }


class _Counted:
    """An iterable the trainer can walk (it only iterates); keeps ``len`` of the real loader."""

    def __init__(self, iterator, loader):
        self.iterator, self.loader = iterator, loader
        self.shuffle = getattr(loader, "shuffle", False)

    def __iter__(self):
        return self.iterator

    def __len__(self):
        return len(self.loader)


def _training_targets(train):
    dataset = train._dataset
    if hasattr(dataset, "chunk_first"):
        return int((dataset.chunk_end - dataset.chunk_first).sum())
    return len(dataset)


# ----------------------------------------------------------------------------- estimates
def matmul_gflops(shapes, device="cpu", repeats=20):
    """Measured rate of ``a @ b`` for the given (m, k, n) shapes, in GFLOP/s (all shapes)."""
    flops, seconds = 0.0, 0.0
    for m, k, n in shapes:
        a, b = torch.randn(m, k, device=device), torch.randn(k, n, device=device)
        for _ in range(3):
            a @ b
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(repeats):
            a @ b
        if device == "cuda":
            torch.cuda.synchronize()
        seconds += time.perf_counter() - start
        flops += 2.0 * m * k * n * repeats
    return flops / seconds / 1e9


def hiertcn_flops_per_interaction(n_items, mean_session_length, emb=128, hidden=128, layers=2,
                                  channels=(128, 128), kernel=5, convs=1):
    """Multiply-adds x 2 of one training interaction, forward and backward (x 3 forward)."""
    forward = 2 * emb * channels[0]                           # item projection
    width = channels[0]
    for out in channels:
        forward += convs * 2 * kernel * width * out          # session-causal convolutions
        if out != width:
            forward += 2 * width * out                       # residual projection
        width = out
    forward += 2 * width * n_items                           # untied scores of every item
    gru = 0
    size = emb
    for _ in range(layers):
        gru += 2 * 3 * (size + hidden) * hidden
        size = hidden
    forward += (gru + 2 * hidden * layers * channels[0]) / mean_session_length  # once a session
    return 3.0 * forward


def hiertcn_shapes(batch, n_items, channels=128, kernel=5):
    return [(batch, channels, channels), (batch, kernel * channels, channels),
            (batch, channels, n_items)]


# ----------------------------------------------------------------------------- data
def prepare_xing(work):
    """A ~540k-interaction XING-format dataset under ``work/dataset/xing``."""
    from dataset_converters import xing, xing_sample

    frame, items = xing_sample.generate(n_users=XING_ROWS // 31, n_items=XING_ROWS // 170, seed=5)
    raw = os.path.join(work, "raw")
    xing_sample.write(frame, items, raw)
    xing.convert(os.path.join(raw, "interactions.csv"), os.path.join(work, "dataset"),
                 name="xing", echo=None)
    with open(os.path.join(work, "dataset", "xing", "xing.inter")) as handle:
        return sum(1 for _ in handle) - 1


def mean_session_length(data_path, dataset):
    import numpy as np
    import pandas as pd

    import recbole_hiertcn  # noqa: F401
    from recbole_hiertcn.core.session_rule import SessionRule
    from recbole_hiertcn.quick_start import build_config

    config = build_config("HierTCN", dataset, config_dict={"data_path": data_path})
    frame = pd.read_csv(os.path.join(config["data_path"], f"{dataset}.inter"), sep="\t")
    frame.columns = [c.split(":")[0] for c in frame.columns]
    frame = frame.sort_values(["user_id", "timestamp"], kind="stable")
    by_time = "session_id" not in frame
    starts = np.flatnonzero(frame.user_id.ne(frame.user_id.shift()).to_numpy())
    values = frame.timestamp if by_time else frame.session_id
    opens = SessionRule(by_time).opens(values.to_numpy(), starts)
    return len(frame) / int(opens.sum())


# ----------------------------------------------------------------------------- orchestration
def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.speed",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", nargs="+", default=["ml-100k", "xing500k"])
    parser.add_argument("--histories", nargs="+", type=int, default=[50, 200])
    parser.add_argument("--models", nargs="+", default=["HierTCN", *BASELINES])
    parser.add_argument("--batch-size", type=int, default=2048)
    parser.add_argument("--baseline-batches", type=int, default=0,
                        help="time only the first N batches of a baseline's epoch, extrapolate")
    parser.add_argument("--ours", action="store_true",
                        help="also run the baselines on the plugin's O(N) dataset")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print("RESULT " + json.dumps(_train_one_epoch(json.loads(args.child))))
        return 0

    with tempfile.TemporaryDirectory() as work:
        data_path = os.path.join(work, "dataset")
        if "xing500k" in args.datasets:
            print(f"xing500k: {prepare_xing(work):,} synthetic interactions after conversion")
        runs = [(m, False) for m in args.models] + (
            [(m, True) for m in args.models if m in BASELINES] if args.ours else [])
        header = (f"{'dataset':<10}{'model':<11}{'data':<10}{'mode':<9}{'L':>5}{'epoch s':>10}"
                  f"{'inter/s':>10}{'peak RSS MiB':>14}{'x GRU4Rec t':>12}{'x NextItNet mem':>16}")
        print(header)
        hier_rates = {}
        for dataset in args.datasets:
            for history in args.histories:
                results = {}
                for model, ours in runs:
                    spec = {"model": model, "dataset": DATASETS.get(dataset, dataset),
                            "history": history, "batch_size": args.batch_size,
                            "batches": 0 if model == "HierTCN" else args.baseline_batches,
                            "ours": ours or model == "HierTCN", "device": args.device,
                            "data_path": data_path, "work": work}
                    code, wall, peak, out, err = run_measured(
                        [sys.executable, "-m", "benchmarks.speed", "--child", json.dumps(spec)])
                    if code != 0:
                        print(f"{dataset} {model} L={history}: failed\n{err[-2000:]}")
                        continue
                    result = json.loads(out.split("RESULT ", 1)[1])
                    result["peak"] = peak
                    results[(model, ours or model == "HierTCN")] = result
                    if model == "HierTCN":
                        hier_rates[(dataset, history)] = result
                base_t = results.get(("GRU4Rec", False), {}).get("epoch_s")
                base_m = results.get(("NextItNet", False), {}).get("peak")
                for (model, ours), r in results.items():
                    mark = "~" if r["extrapolated"] else ""
                    data = "ours O(N)" if ours else "RecBole"
                    mode = "sequence" if model == "HierTCN" else "prefix"
                    ratio_t = f"{r['epoch_s'] / base_t:.2f}" if base_t else "-"
                    ratio_m = f"{r['peak'] / base_m:.3f}" if base_m else "-"
                    gpu = (f"  GPU peak {r['gpu_peak_mib']:,.0f} MiB"
                           if r["gpu_peak_mib"] is not None else "")
                    print(f"{dataset:<10}{model:<11}{data:<10}{mode:<9}{history:>5}"
                          f"{mark + format(r['epoch_s'], '.1f'):>10}"
                          f"{r['targets'] / r['epoch_s']:>10,.0f}{r['peak']:>14,.0f}"
                          f"{ratio_t:>12}{ratio_m:>16}{gpu}", flush=True)

        print("\nCompute-bound estimate for HierTCN (defaults: emb 128, GRU 2x128, TCN 2x128 k5):")
        for (dataset, history), r in hier_rates.items():
            session = mean_session_length(data_path, DATASETS.get(dataset, dataset))
            flops = hiertcn_flops_per_interaction(r["n_items"], session)
            rate = matmul_gflops(hiertcn_shapes(args.batch_size, r["n_items"]), args.device)
            bound = rate * 1e9 / flops
            measured = r["targets"] / r["epoch_s"]
            print(f"  {dataset} L={history}: {flops / 1e6:.2f} MFLOP/interaction, matmul "
                  f"{rate:.1f} GFLOP/s -> bound {bound:,.0f} inter/s; measured {measured:,.0f} "
                  f"inter/s = {100 * measured / bound:.0f}% of the bound")
    return 0


if __name__ == "__main__":
    sys.exit(main())
