"""Compare models on one dataset under both protocols and several seeds, resumable.

    python -m benchmarks.compare benchmarks/ml-100k.yaml [--out results/ml-100k] [--only HierTCN GRU4Rec] [--workers 2]

The config names the dataset, the protocols, the seeds, the models (each a RecBole model name
plus its own overrides) and the settings every run shares. Every (protocol, seed, model) trains
in its own process through ``recbole_hiertcn.quick_start.run`` - RecBole's trainer, best
checkpoint reloaded for the test - and its figures are appended to ``runs.csv`` as soon as it
ends, so an interrupted comparison resumes where it stopped. ``--workers N`` trains N runs at
a time (set the plan's ``threads`` so that N x threads fits the CPU cores). After every run the summary is
rewritten: ``results.md`` (mean and standard deviation over seeds of Recall, MRR and NDCG at 5,
10 and 20, training seconds per epoch, epochs to the best validation score, peak memory) and
the charts ``metrics_<protocol>.png`` and ``validation_<protocol>.png``.
"""

import argparse
import concurrent.futures
import contextlib
import csv
import fcntl
import json
import os
import statistics
import sys
import time

import yaml

from benchmarks.measure import run_measured

PROTOCOL_SPLITS = {"LS": {"LS": "valid_and_test"},
                   "last_session": {"last_session": "valid_and_test"}}
METRICS = [f"{m}@{k}" for m in ("recall", "mrr", "ndcg") for k in (5, 10, 20)]
FIELDS = (["model", "protocol", "seed", "status"] + METRICS
          + ["valid_score", "s_per_epoch", "epochs", "best_epoch", "peak_rss_mib", "wall_s"])
BASELINES_FOR_TARGET = ("GRU4Rec", "NextItNet")


# ----------------------------------------------------------------------------- one run (child)
def run_one(spec):
    """Train and test one (model, protocol, seed); returns the figures and the curves."""
    import recbole_hiertcn  # noqa: F401  (registers HierTCN before any config is built)
    from recbole.trainer import Trainer

    from recbole_hiertcn.quick_start import run

    epoch_seconds, valid_scores = [], []
    original_train, original_valid = Trainer._train_epoch, Trainer._valid_epoch

    def timed_train(self, *args, **kwargs):
        started = time.perf_counter()
        loss = original_train(self, *args, **kwargs)
        epoch_seconds.append(time.perf_counter() - started)
        return loss

    def recorded_valid(self, *args, **kwargs):
        score, result = original_valid(self, *args, **kwargs)
        valid_scores.append(float(score))
        return score, result

    Trainer._train_epoch, Trainer._valid_epoch = timed_train, recorded_valid
    settings = dict(spec["settings"])
    settings["seed"] = spec["seed"]
    settings["eval_args"] = {"split": PROTOCOL_SPLITS[spec["protocol"]], "order": "TO",
                             "group_by": "user", "mode": "full"}
    result = run(model=spec["model"], dataset=spec["dataset"], config_dict=settings)
    best = max(range(len(valid_scores)), key=valid_scores.__getitem__) if valid_scores else -1
    return {
        "test": {k: float(v) for k, v in result["test_result"].items()},
        "valid_score": float(result["best_valid_score"]),
        "epoch_seconds": epoch_seconds, "valid_scores": valid_scores,
        "epochs": len(epoch_seconds), "best_epoch": best + 1,
        "run_id": result["config"]["run_id"], "model_file": result["model_file"],
    }


# ----------------------------------------------------------------------------- plan and records
def child_environment(plan):
    """The environment of every run: ``threads`` in the plan pins torch's CPU threads."""
    env = dict(os.environ)
    if plan.get("threads"):
        for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            env[name] = str(plan["threads"])
    return env


def load_plan(path):
    with open(path, encoding="utf-8") as handle:
        plan = yaml.safe_load(handle)
    for key in ("dataset", "models", "seeds", "protocols"):
        if key not in plan:
            raise SystemExit(f"{path}: missing key {key!r}")
    for protocol in plan["protocols"]:
        if protocol not in PROTOCOL_SPLITS:
            raise SystemExit(f"{path}: unknown protocol {protocol!r}; use {list(PROTOCOL_SPLITS)}")
    return plan


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


def read_runs(path):
    if not os.path.isfile(path):
        return []
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def append_run(path, row):
    new = not os.path.isfile(path)
    with open(path, "a", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=FIELDS)
        if new:
            writer.writeheader()
        writer.writerow(row)


# ----------------------------------------------------------------------------- summary
def summarise(runs, plan):
    """{protocol: {label: {field: (mean, std, n)}}} over the finished runs."""
    table = {}
    for protocol in plan["protocols"]:
        for label in plan["models"]:
            rows = [r for r in runs if r["protocol"] == protocol and r["model"] == label
                    and r["status"] == "ok"]
            if not rows:
                continue
            cell = {}
            for field in METRICS + ["s_per_epoch", "best_epoch", "peak_rss_mib"]:
                values = [float(r[field]) for r in rows]
                spread = statistics.stdev(values) if len(values) > 1 else 0.0
                cell[field] = (statistics.mean(values), spread, len(values))
            table.setdefault(protocol, {})[label] = cell
    return table


def markdown(table, plan, command):
    lines = [f"# {plan['dataset']}: HierTCN against RecBole's baselines", "",
             f"Regenerate with `{command}`. Mean ± standard deviation over seeds "
             f"{', '.join(str(s) for s in plan['seeds'])}; test metrics of the epoch with the "
             "best validation MRR@10; training seconds per epoch; the epoch of the best "
             "validation score; peak resident memory of the run's process."
             + (f" Every run on {plan['threads']} CPU thread(s)." if plan.get("threads") else ""),
             ""]
    for protocol, rows in table.items():
        lines += [f"## Protocol `{protocol}`", "",
                  "| model | " + " | ".join(m.replace("recall", "Recall").replace(
                      "mrr", "MRR").replace("ndcg", "NDCG") for m in METRICS)
                  + " | s/epoch | best epoch | peak MiB | seeds |",
                  "|---" * (len(METRICS) + 5) + "|"]
        for label, cell in rows.items():
            metrics = " | ".join(f"{cell[m][0]:.4f} ± {cell[m][1]:.4f}" for m in METRICS)
            lines.append(f"| {label} | {metrics} | {cell['s_per_epoch'][0]:.1f} | "
                         f"{cell['best_epoch'][0]:.1f} | {cell['peak_rss_mib'][0]:,.0f} | "
                         f"{cell['recall@10'][2]} |")
        lines += ["", *lift_lines(rows), ""]
    return "\n".join(lines) + "\n"


def lift_lines(rows):
    """HierTCN's Recall@10 and MRR@10 against the best of GRU4Rec and NextItNet."""
    if "HierTCN" not in rows:
        return []
    base = [label for label in BASELINES_FOR_TARGET if label in rows]
    if not base:
        return []
    out = []
    for metric in ("recall@10", "mrr@10"):
        best = max(base, key=lambda label: rows[label][metric][0])
        ratio = rows["HierTCN"][metric][0] / max(rows[best][metric][0], 1e-12)
        out.append(f"HierTCN {metric.replace('recall', 'Recall').replace('mrr', 'MRR')}: "
                   f"{ratio:.2f}x the best of {' and '.join(base)} ({best}).")
    return [" ".join(out)]


def charts(table, curves, out):
    """Metric bars with error bars and validation curves, one pair of PNGs per protocol."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    for protocol, rows in table.items():
        labels = list(rows)
        figure, axes = plt.subplots(1, 3, figsize=(13, 4))
        for axis, metric in zip(axes, ("recall@10", "mrr@10", "ndcg@10")):
            means = [rows[label][metric][0] for label in labels]
            spread = [rows[label][metric][1] for label in labels]
            axis.bar(range(len(labels)), means, yerr=spread, capsize=4, color="#4c72b0")
            axis.set_xticks(range(len(labels)), labels, rotation=35, ha="right")
            axis.set_title(metric)
        figure.suptitle(f"{protocol}: mean and standard deviation over seeds")
        figure.tight_layout()
        figure.savefig(os.path.join(out, f"metrics_{protocol}.png"), dpi=110)
        plt.close(figure)

        figure, axis = plt.subplots(figsize=(7, 4))
        for label in labels:
            series = [c["valid_scores"] for c in curves.get((label, protocol), [])]
            if not series:
                continue
            length = max(len(s) for s in series)
            mean = [statistics.mean([s[i] for s in series if len(s) > i]) for i in range(length)]
            axis.plot(range(1, length + 1), mean, marker="o", label=label)
        axis.set_xlabel("epoch")
        axis.set_ylabel("validation MRR@10 (mean over seeds)")
        axis.set_title(f"{protocol}: validation curve")
        axis.legend(fontsize=8)
        figure.tight_layout()
        figure.savefig(os.path.join(out, f"validation_{protocol}.png"), dpi=110)
        plt.close(figure)


def load_curves(out):
    curves = {}
    folder = os.path.join(out, "curves")
    if os.path.isdir(folder):
        for name in sorted(os.listdir(folder)):
            with open(os.path.join(folder, name), encoding="utf-8") as handle:
                record = json.load(handle)
            curves.setdefault((record["model"], record["protocol"]), []).append(record)
    return curves


def write_summary(plan, out, command):
    runs = read_runs(os.path.join(out, "runs.csv"))
    table = summarise(runs, plan)
    with open(os.path.join(out, "results.md"), "w", encoding="utf-8") as handle:
        handle.write(markdown(table, plan, command))
    charts(table, load_curves(out), out)
    return table


# ----------------------------------------------------------------------------- driver
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


def job_spec(plan, label, protocol, seed):
    """What the child process of one (model label, protocol, seed) run receives."""
    entry = dict(plan["models"][label])
    model = entry.pop("model", label)
    spec = {"model": model, "dataset": plan["dataset"], "protocol": protocol, "seed": seed,
            "settings": {**(plan.get("shared") or {}), **entry}}
    if plan.get("data_path"):
        spec["settings"]["data_path"] = plan["data_path"]
    return spec


def run_job(plan, label, protocol, seed):
    """Train one run in its own process; its row for ``runs.csv`` and its validation curve."""
    code, wall, peak, stdout, stderr = run_measured(
        [sys.executable, "-m", "benchmarks.compare", "--run",
         json.dumps(job_spec(plan, label, protocol, seed))],
        env=child_environment(plan))
    row = {"model": label, "protocol": protocol, "seed": seed, "wall_s": f"{wall:.1f}",
           "peak_rss_mib": f"{peak:.0f}"}
    if code != 0 or "RESULT " not in stdout:
        row["status"] = "failed"
        return row, None, "FAILED: " + (stderr.strip().splitlines() or ["?"])[-1]
    result = json.loads(stdout.split("RESULT ", 1)[1])
    seconds = result["epoch_seconds"]
    row.update({m: f"{result['test'].get(m, float('nan')):.4f}" for m in METRICS})
    row.update(status="ok", valid_score=f"{result['valid_score']:.4f}",
               s_per_epoch=f"{statistics.median(seconds) if seconds else 0:.2f}",
               epochs=result["epochs"], best_epoch=result["best_epoch"])
    curve = {"model": label, "protocol": protocol, "seed": seed,
             "valid_scores": result["valid_scores"], "epoch_seconds": seconds,
             "run_id": result["run_id"], "model_file": result["model_file"]}
    return row, curve, f"test MRR@10 {row['mrr@10']}, {row['epochs']} epochs"


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.compare",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("config", nargs="?", help="benchmark yaml, e.g. benchmarks/ml-100k.yaml")
    parser.add_argument("--out", help="results folder (results/<dataset>)")
    parser.add_argument("--only", nargs="+", help="run only these model labels")
    parser.add_argument("--workers", type=int, default=1,
                        help="runs trained at the same time (each in its own process; pair "
                             "with the plan's threads so workers x threads <= CPU cores)")
    parser.add_argument("--run", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.run:
        print("RESULT " + json.dumps(run_one(json.loads(args.run))))
        return 0
    if not args.config:
        parser.error("the benchmark yaml is required")
    if args.workers < 1:
        parser.error("--workers must be at least 1")
    plan = load_plan(args.config)
    prepare_data(plan)
    out = args.out or plan.get("out") or os.path.join("results", plan["dataset"])
    os.makedirs(os.path.join(out, "curves"), exist_ok=True)
    command = "python -m benchmarks.compare " + args.config + (
        f" --out {args.out}" if args.out else "")
    with exclusive_results_folder(out):
        compare(plan, args, out, command)
    return 0


def compare(plan, args, out, command):
    """Train every run of the plan not yet in ``out/runs.csv`` and rewrite the summary."""
    done = {(r["model"], r["protocol"], r["seed"]) for r in read_runs(os.path.join(out, "runs.csv"))
            if r["status"] == "ok"}
    todo = [(label, protocol, seed) for protocol in plan["protocols"] for seed in plan["seeds"]
            for label in plan["models"] if not args.only or label in args.only]
    pending = [job for job in todo if (job[0], job[1], str(job[2])) not in done]
    print(f"{plan['dataset']}: {len(todo)} runs, {len(todo) - len(pending)} already done, "
          f"{len(pending)} to go -> {out}", flush=True)
    started = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(max_workers=args.workers) as pool:
        futures = {pool.submit(run_job, plan, *job): job for job in pending}
        for number, future in enumerate(concurrent.futures.as_completed(futures), 1):
            label, protocol, seed = futures[future]
            row, curve, note = future.result()
            if curve is not None:
                with open(os.path.join(out, "curves", f"{label}_{protocol}_{seed}.json"), "w",
                          encoding="utf-8") as handle:
                    json.dump(curve, handle)
            append_run(os.path.join(out, "runs.csv"), row)
            write_summary(plan, out, command)
            elapsed = time.perf_counter() - started
            eta = elapsed / number * (len(pending) - number)
            print(f"[{number}/{len(pending)}] {label:<16} {protocol:<13} seed {seed}: {note} "
                  f"({float(row['wall_s']):.0f} s; about {eta / 60:.0f} min left)", flush=True)
    table = write_summary(plan, out, command)
    for protocol, rows in table.items():
        for line in lift_lines(rows):
            print(f"{protocol}: {line}")


if __name__ == "__main__":
    sys.exit(main())
