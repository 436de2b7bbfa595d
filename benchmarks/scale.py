"""The whole path at full XING scale on one machine: raw log to test metrics.

    python -m benchmarks.scale [--rows 10000000] [--epochs 1] [--protocols LS last_session]
                               [--loss BPR] [--ce-batches 100] [--fused-adam] [--device cpu]
                               [--eval-batch-size 4096] [--work-dir DIR]

Generates the synthetic XING-format log (``dataset_converters.xing_sample``, 10.2 million rows
by default), converts it with the ``hiertcn`` preset (8.47 million interactions), builds the
plugin's dataset (and, for the ratio, RecBole's own reader on the same files), trains HierTCN
(``train_mode: sequence``, ``--loss``) for ``--epochs`` and evaluates it with full sort over all
items, under each protocol. A softmax over 34,000 items costs about 26 MFLOP per target, ten
times the rest of HierTCN; so the default full runs use BPR (one uniform negative), and one CE
epoch of HierTCN and of RecBole's GRU4Rec (on the plugin's O(N) dataset) is timed on its first
``--ce-batches`` batches and extrapolated (marked ``~``). Every step runs in its own process:
its wall time and peak resident memory (``wait4``, imports included) are the process's own.

Printed: one row per step (seconds, peak RSS, interactions per second), the dataset's bytes per
interaction at rest, the largest log that fits this machine by those figures, and each target
of the scale issue with its verdict.
"""

import argparse
import json
import os
import sys
import tempfile
import threading
import time

from benchmarks.measure import run_measured

EVENTS_PER_USER = 31  # what xing_sample's defaults give per user
TARGETS = {"load_s": 20.0, "load_mib": 1536.0, "run_mib": 4096.0, "train_rate": 20_000.0}


# ----------------------------------------------------------------------------- child process
def _rss_mib():
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


class _PeakRss:
    """Highest resident memory of this process while the block runs, sampled every 20 ms."""

    def __enter__(self):
        self.peak, self._done = _rss_mib(), threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self):
        while not self._done.wait(0.02):
            self.peak = max(self.peak, _rss_mib())

    def __exit__(self, *exc):
        self._done.set()
        self._thread.join()
        self.peak = max(self.peak, _rss_mib())


def _config(spec, model, **settings):
    from recbole_hiertcn.quick_start import build_config

    values = {"data_path": spec["data_path"], "checkpoint_dir": spec["work"],
              "show_progress": spec["progress"], "state": "INFO" if spec["progress"] else "ERROR",
              "use_gpu": spec["device"] == "cuda", "train_batch_size": spec["batch_size"],
              "eval_batch_size": spec["eval_batch_size"], "train_neg_sample_args": None,
              "eval_args": {"split": {spec["protocol"]: "valid_and_test"}, "order": "TO",
                            "group_by": "user", "mode": "full"},
              "fused_optimizer": spec["fused_adam"]}
    values.update(settings)
    return build_config(model, "xing", config_dict=values)


def _load(config):
    """make_dataset + data_preparation, timed; the dataset's tensors' bytes."""
    from recbole.data import data_preparation

    from recbole_hiertcn.quick_start import make_dataset

    started = time.perf_counter()
    dataset = make_dataset(config)
    created = time.perf_counter()
    train, valid, test = data_preparation(config, dataset)
    prepared = time.perf_counter()
    at_rest = sum(t.numel() * t.element_size() for t in dataset.inter_feat.interaction.values())
    at_rest += sum(a.nbytes for a in (dataset.user_starts, dataset.user_lengths))
    at_rest += sum(t.numel() * t.element_size()
                   for t in (dataset.position_user_start, dataset.all_targets))
    return dataset, (train, valid, test), {
        "create_s": created - started, "prepare_s": prepared - created,
        "interactions": len(dataset.inter_feat), "users": int(dataset.user_num) - 1,
        "items": int(dataset.item_num) - 1, "tensor_bytes": at_rest}


def child_load(spec):
    import recbole_hiertcn  # noqa: F401

    imported = _rss_mib()
    _, _, figures = _load(_config(spec, "HierTCN", train_mode="sequence"))
    figures.update({"imports_mib": imported, "after_mib": _rss_mib()})
    return figures


def child_recbole_load(spec):
    """RecBole's own reader and filters on the same files and config (no split: RecBole's
    per-target augmentation of 8 million rows would not fit)."""
    from recbole.data.dataset import SequentialDataset

    import recbole_hiertcn  # noqa: F401

    config = _config(spec, "HierTCN", train_mode="sequence")
    started = time.perf_counter()
    dataset = SequentialDataset(config)
    return {"create_s": time.perf_counter() - started, "interactions": len(dataset.inter_feat)}


def child_hiertcn(spec):
    import torch
    from recbole.utils import get_model, get_trainer, init_seed

    import recbole_hiertcn  # noqa: F401

    config = _config(spec, "HierTCN", train_mode="sequence", epochs=spec["epochs"],
                     loss_type=spec["loss"])
    init_seed(config["seed"], config["reproducibility"])
    _, (train, _, test), figures = _load(config)
    model = get_model("HierTCN")(config, train._dataset).to(config["device"])
    trainer = get_trainer(config["MODEL_TYPE"], "HierTCN")(config, model)
    targets = int((train._dataset.chunk_end - train._dataset.chunk_first).sum())
    started = time.perf_counter()
    for epoch in range(spec["epochs"]):
        trainer._train_epoch(train, epoch_idx=epoch, show_progress=config["show_progress"])
    if config["device"].type == "cuda":
        torch.cuda.synchronize()
    trained = time.perf_counter()
    before_eval = _rss_mib()
    with _PeakRss() as peak:
        result = trainer.evaluate(test, load_best_model=False,
                                  show_progress=config["show_progress"])
    figures.update({
        "train_s": trained - started, "train_targets": targets * spec["epochs"],
        "eval_s": time.perf_counter() - trained, "eval_rows": len(test._dataset),
        "eval_extra_mib": peak.peak - before_eval,
        "test": {k: float(v) for k, v in result.items()},
        "gpu_peak_mib": (torch.cuda.max_memory_allocated() / 2**20
                         if config["device"].type == "cuda" else None)})
    return figures


def child_timed_epoch(spec):
    """One CE epoch of ``spec["model"]`` timed on its first ``spec["batches"]`` batches and
    extrapolated (HierTCN in sequence mode, a RecBole model on the plugin's O(N) dataset)."""
    import itertools

    from recbole.utils import get_model, get_trainer, init_seed

    import recbole_hiertcn  # noqa: F401
    from benchmarks.speed import _Counted, _training_targets

    model_name = spec["model"]
    extra = {"train_mode": "sequence"} if model_name == "HierTCN" else {}
    config = _config(spec, model_name, epochs=1, loss_type="CE", **extra)
    init_seed(config["seed"], config["reproducibility"])
    _, (train, _, _), figures = _load(config)
    model = get_model(model_name)(config, train._dataset).to(config["device"])
    trainer = get_trainer(config["MODEL_TYPE"], model_name)(config, model)
    batches = len(train)
    steps = min(spec["batches"] or batches, batches)
    started = time.perf_counter()
    trainer._train_epoch(_Counted(itertools.islice(iter(train), steps), train), epoch_idx=0)
    seconds = time.perf_counter() - started
    figures.update({"train_s": seconds * batches / steps,
                    "train_targets": _training_targets(train),
                    "extrapolated": steps < batches, "timed_batches": steps})
    return figures


CHILDREN = {"load": child_load, "recbole_load": child_recbole_load, "hiertcn": child_hiertcn,
            "timed_epoch": child_timed_epoch}


# ----------------------------------------------------------------------------- orchestration
def _run_child(kind, spec):
    code, wall, peak, out, err = run_measured(
        [sys.executable, "-m", "benchmarks.scale", "--child", kind, json.dumps(spec)])
    if code != 0:
        raise SystemExit(f"{kind} failed (exit {code}):\n{err[-3000:]}")
    if spec["progress"]:
        sys.stderr.write(err)
    return json.loads(out.split("RESULT ", 1)[1]), wall, peak


def _row(step, seconds, peak, rate=None, note=""):
    rate = f"{rate:,.0f}" if rate else "-"
    print(f"| {step} | {seconds} | {peak:,.0f} | {rate} | {note} |", flush=True)


def _machine_mib():
    with open("/proc/meminfo") as info:
        return int(info.readline().split()[1]) / 1024.0


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.scale",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=10_000_000, help="approximate raw rows")
    parser.add_argument("--epochs", type=int, default=1, help="HierTCN training epochs")
    parser.add_argument("--protocols", nargs="+", default=["LS", "last_session"])
    parser.add_argument("--loss", default="BPR", choices=["BPR", "CE"],
                        help="HierTCN's loss in the full runs (BPR: one uniform negative, "
                             "O(1) per target; CE: a softmax over every item)")
    parser.add_argument("--ce-batches", type=int, default=100,
                        help="batches of a CE epoch timed for HierTCN and GRU4Rec (0: whole "
                             "epoch; -1: skip)")
    parser.add_argument("--skip-recbole-loader", action="store_true",
                        help="do not time RecBole's own reader for the ratio")
    parser.add_argument("--fused-adam", action="store_true",
                        help="train with fused_optimizer: True (torch's fused Adam)")
    parser.add_argument("--batch-size", type=int, default=2048)
    parser.add_argument("--eval-batch-size", type=int, default=4096)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--progress", action="store_true",
                        help="show the children's logs and progress bars (on stderr)")
    parser.add_argument("--work-dir", help="where the log and dataset go (a temporary folder)")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        kind, spec = args.child
        print("RESULT " + json.dumps(CHILDREN[kind](json.loads(spec))))
        return 0

    with tempfile.TemporaryDirectory(dir=args.work_dir) as work:
        return _benchmark(args, work)


def _benchmark(args, work):
    raw, data_path = os.path.join(work, "raw"), os.path.join(work, "dataset")
    print(f"Full-scale path, {args.device}, {os.cpu_count()} cores, "
          f"{_machine_mib() / 1024:.0f} GiB; synthetic XING-format log; Adam "
          f"{'fused' if args.fused_adam else 'as RecBole builds it'}\n")
    print("| step | seconds | peak RSS MiB | interactions/s | note |")
    print("|---|---|---|---|---|")
    code, seconds, peak, out, err = run_measured(
        [sys.executable, "-m", "dataset_converters.xing_sample", "--output-dir", raw,
         "--users", str(max(args.rows // EVENTS_PER_USER, 10)),
         "--items", str(max(args.rows // 170, 100)), "--seed", "1"])
    if code != 0:
        raise SystemExit(err)
    rows = int(out.split("(")[1].split()[0].replace(",", ""))
    _row("generate raw log", f"{seconds:.1f}", peak, rows / seconds, f"{rows:,} rows")
    code, seconds, peak, out, err = run_measured(
        [sys.executable, "-m", "dataset_converters.xing", "--input",
         os.path.join(raw, "interactions.csv"), "--output-dir", data_path, "--preset", "hiertcn",
         "--temp-dir", work])
    if code != 0:
        raise SystemExit(err)
    _row("convert (hiertcn preset)", f"{seconds:.1f}", peak, rows / seconds, "DuckDB")

    spec = {"data_path": data_path, "work": work, "device": args.device,
            "progress": args.progress, "batch_size": args.batch_size,
            "eval_batch_size": args.eval_batch_size, "epochs": args.epochs,
            "batches": args.ce_batches, "protocol": args.protocols[0], "loss": args.loss,
            "fused_adam": args.fused_adam}
    load, wall, load_peak = _run_child("load", spec)
    n = load["interactions"]
    _row("create dataset (columnar)", f"{load['create_s']:.1f}", load_peak,
         n / load["create_s"], f"{n:,} interactions, {load['users']:,} users, "
         f"{load['items']:,} items; imports alone {load['imports_mib']:,.0f} MiB")
    _row("split + loaders", f"{load['prepare_s']:.1f}", load_peak, n / load["prepare_s"],
         "same process")
    if not args.skip_recbole_loader:
        theirs, _, peak = _run_child("recbole_load", spec)
        _row("create dataset (RecBole's reader)", f"{theirs['create_s']:.1f}", peak,
             n / theirs["create_s"], f"{theirs['create_s'] / load['create_s']:.1f}x the time, "
             f"{peak / load_peak:.1f}x the memory; same {theirs['interactions']:,} interactions")

    runs = {}
    for protocol in args.protocols:
        result, wall, peak = _run_child("hiertcn", dict(spec, protocol=protocol))
        runs[protocol] = (result, peak)
        rate = result["train_targets"] / result["train_s"]
        _row(f"HierTCN train ({args.loss}), {args.epochs} epoch(s), {protocol}",
             f"{result['train_s']:.1f}", peak, rate, f"{result['train_targets']:,} targets")
        test = result["test"]
        _row(f"HierTCN full-sort test, {protocol}", f"{result['eval_s']:.1f}", peak,
             result["eval_rows"] / result["eval_s"],
             f"{result['eval_rows']:,} rows x {load['items']:,} items; Recall@10 "
             f"{test.get('recall@10', float('nan')):.4f}, MRR@10 "
             f"{test.get('mrr@10', float('nan')):.4f}; +{result['eval_extra_mib']:,.0f} MiB "
             "while evaluating")
        _row(f"HierTCN whole run, {protocol}", f"{wall:.1f}", peak, None,
             "load + train + test, one process" + (
                 f"; GPU peak {result['gpu_peak_mib']:,.0f} MiB"
                 if result["gpu_peak_mib"] is not None else ""))
    softmax = {}
    if args.ce_batches >= 0:
        for model in ("HierTCN", "GRU4Rec"):
            result, wall, peak = _run_child("timed_epoch", dict(spec, model=model))
            softmax[model] = result
            mark = "~" if result["extrapolated"] else ""
            data = "sequence mode" if model == "HierTCN" else "RecBole's model, O(N) dataset"
            _row(f"{model} train (CE, softmax over all items), 1 epoch, {args.protocols[0]}",
                 f"{mark}{result['train_s']:.0f}", peak,
                 result["train_targets"] / result["train_s"],
                 data + (f"; {result['timed_batches']} batches timed, extrapolated"
                         if mark else ""))
    _summary(args, load, load_peak, runs, softmax)
    return 0


def _summary(args, load, load_peak, runs, softmax):
    n = load["interactions"]
    mib = 2**20
    tensors = load["tensor_bytes"] / n
    rest = (load["after_mib"] - load["imports_mib"]) * mib / n
    loading = (load_peak - load["imports_mib"]) * mib / n
    print(f"\nAt rest: {tensors:.0f} bytes per interaction in the dataset's tensors, {rest:.0f} in "
          f"the process after loading (over its imports); {loading:.0f} at the loading peak.")
    worst = max(peak for _, peak in runs.values()) if runs else load_peak
    # What does not grow with the log (model, optimiser, batches, score blocks) is the run's
    # peak less the data at rest; the log may grow until loading or the run fills 90 % of RAM.
    fixed = worst - load["imports_mib"] - rest * n / mib
    room = _machine_mib() * 0.9 - load["imports_mib"]
    largest = min(room * mib / loading, (room - fixed) * mib / rest)
    print(f"Whole HierTCN run: peak {worst:,.0f} MiB, of which about {fixed:,.0f} MiB does not "
          f"grow with the log; by these figures 90 % of this machine's memory holds a log of "
          f"about {largest / 1e6:,.0f} million interactions.")
    checks = [
        (f"dataset creation <= {TARGETS['load_s']:.0f} s", load["create_s"] <= TARGETS["load_s"],
         f"{load['create_s']:.1f} s"),
        (f"dataset creation peak <= {TARGETS['load_mib']:,.0f} MiB",
         load_peak <= TARGETS["load_mib"], f"{load_peak:,.0f} MiB (process, imports included)"),
        (f"whole HierTCN run peak <= {TARGETS['run_mib']:,.0f} MiB",
         worst <= TARGETS["run_mib"], f"{worst:,.0f} MiB"),
    ]
    for protocol, (result, _) in runs.items():
        rate = result["train_targets"] / result["train_s"]
        checks.append((f"training >= {TARGETS['train_rate']:,.0f} interactions/s "
                       f"({args.loss}, {protocol})", rate >= TARGETS["train_rate"], f"{rate:,.0f}"))
    if "HierTCN" in softmax:
        rate = softmax["HierTCN"]["train_targets"] / softmax["HierTCN"]["train_s"]
        checks.append((f"training >= {TARGETS['train_rate']:,.0f} interactions/s (CE)",
                       rate >= TARGETS["train_rate"], f"{rate:,.0f}"))
    if len(runs) > 1:
        # Evaluation memory must follow the batch, not the rows: the protocols rank different
        # numbers of rows with the same batch size.
        ordered = sorted((result for result, _ in runs.values()), key=lambda r: r["eval_rows"])
        few, many = ordered[0], ordered[-1]
        rows = many["eval_rows"] / few["eval_rows"]
        memory = max(many["eval_extra_mib"], 1.0) / max(few["eval_extra_mib"], 1.0)
        checks.append(("evaluation memory bounded by the batch, not the rows",
                       memory < 1 + (rows - 1) / 2,
                       f"+{few['eval_extra_mib']:,.0f} MiB for {few['eval_rows']:,} rows, "
                       f"+{many['eval_extra_mib']:,.0f} MiB for {many['eval_rows']:,} rows "
                       f"({rows:.1f}x the rows); all rows x all items as scores would be "
                       f"{many['eval_rows'] * load['items'] * 4 / 2**30:,.1f} GiB"))
    if len(softmax) == 2:
        ratio = softmax["GRU4Rec"]["train_s"] / softmax["HierTCN"]["train_s"]
        print(f"GRU4Rec / HierTCN CE epoch time: {ratio:.1f}x")
    print("\nTargets:")
    for name, ok, value in checks:
        print(f"  {'met ' if ok else 'MISSED'} {name}: {value}")


if __name__ == "__main__":
    sys.exit(main())
