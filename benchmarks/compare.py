"""Compare models on one dataset under both protocols and several seeds, resumable.

    python -m benchmarks.compare benchmarks/ml-100k.yaml [--out results/ml-100k] [--only HierTCN GRU4Rec] [--workers 2]

The config names the dataset, the protocols, the seeds, the models (each a RecBole model name
plus its own overrides) and the settings every run shares. Every (protocol, seed, model) trains
in its own process through ``recbole_hiertcn.quick_start.run`` - RecBole's trainer, best
checkpoint reloaded for the test - and its figures are appended to ``runs.csv`` as soon as it
ends, so an interrupted comparison resumes where it stopped; a run that was stopped half way
resumes from its last checkpoint (``<out>/progress/``, see :func:`run_one`), before any run
that has not begun. ``--workers N``
trains N runs at a time (set the plan's ``threads`` so that N x threads fits the CPU cores).
After every run the summary is rewritten: ``results.md`` (mean and standard deviation over
seeds of Recall, MRR and NDCG at 5, 10 and 20, training seconds per epoch, epochs to the best
validation score, peak memory; with a tuned plan, HierTCN and each of its variants against the
best of GRU4Rec, NextItNet and HRNN, and paired t-tests) and the charts
``metrics_<protocol>.png`` and ``validation_<protocol>.png``.

Equal tuning (the plan's ``tuning:``): every model named in ``tuning.grid`` gets every
combination of its own knobs - the same number of trials for each, or the plan is refused - at
``tuning.seed`` under each protocol; the setting with the best validation score is chosen (the
test split plays no part), then the plan's seeds run at it (the tuning seed's trial is reused).
Trials go to ``tuning.csv`` and ``tuning.md``; ``results.md`` then adds paired t-tests over the
seeds of HierTCN against every other model.
"""

import argparse
import concurrent.futures
import contextlib
import csv
import fcntl
import itertools
import json
import os
import statistics
import subprocess
import sys
import time

import yaml

from benchmarks.measure import die_with_parent, run_measured

PROTOCOL_SPLITS = {"LS": {"LS": "valid_and_test"},
                   "last_session": {"last_session": "valid_and_test"},
                   "user_holdout": {"user_holdout": "valid_and_test"}}
METRICS = [f"{m}@{k}" for m in ("recall", "mrr", "ndcg") for k in (5, 10, 20)]
FIELDS = (["model", "protocol", "seed", "status"] + METRICS
          + ["valid_score", "s_per_epoch", "epochs", "best_epoch", "peak_rss_mib", "wall_s",
             "setting"])
BASELINES_FOR_TARGET = ("GRU4Rec", "NextItNet", "HRNN")
PAIRED_METRICS = ("recall@10", "mrr@10")
PROGRESS_CURVES = "curves.json"  # in a run's progress folder
PLAN_ONLY_KEYS = ("tuned_as", "seeds")  # a model entry's keys that are the plan's, not RecBole's
RUN_BUSY = 75  # a child's exit code: another process holds the run (EX_TEMPFAIL)


# ----------------------------------------------------------------------------- one run (child)
def earlier_attempt(folder):
    """The newest checkpoint an earlier, interrupted attempt of a run left in its progress
    ``folder`` and that attempt's curves up to the checkpoint's epoch: ``(path or None,
    epoch_seconds, valid_scores)``."""
    from recbole_hiertcn.checkpoint import load_checkpoint

    checkpoints = [os.path.join(folder, name) for name in os.listdir(folder)
                   if name.endswith(".pth")]
    if not checkpoints:
        return None, [], []
    newest = max(checkpoints, key=os.path.getmtime)
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
    instead of writing checkpoints and curves into the same folder."""
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
    the earlier ones. One process at a time trains a run (:func:`only_process_training`)."""
    progress = spec.get("progress")
    if not progress:
        return _train_and_test(spec, None)
    os.makedirs(progress, exist_ok=True)
    with only_process_training(progress):
        return _train_and_test(spec, progress)


def _train_and_test(spec, progress):
    import recbole_hiertcn  # noqa: F401  (registers HierTCN before any config is built)
    from recbole_hiertcn.quick_start import fit_and_test, prepare_run

    epoch_seconds, valid_scores = [], []
    settings = dict(spec["settings"])
    if progress:
        settings["checkpoint_dir"] = progress
        earlier, epoch_seconds, valid_scores = earlier_attempt(progress)
        if earlier is not None:
            settings["resume_checkpoint"] = earlier
    settings["seed"] = spec["seed"]
    settings["eval_args"] = {"split": PROTOCOL_SPLITS[spec["protocol"]], "order": "TO",
                             "group_by": "user", "mode": "full"}
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
    trials = grid_trials(plan, path)
    for label, entry in plan["models"].items():
        source = (entry or {}).get("tuned_as")
        if source is not None and source not in trials:
            raise SystemExit(f"{path}: models: {label}: tuned_as {source!r} is not a tuned model")
        extra = set(model_seeds(plan, label)) - set(plan["seeds"])
        if extra:
            raise SystemExit(f"{path}: models: {label}: seeds {sorted(extra)} are not among "
                             f"the plan's seeds {plan['seeds']}")
    return plan


def grid_trials(plan, path="the plan"):
    """{model label: [setting, ...]}: every combination of each tuned model's knobs, in the
    grid's order. Refuses models the plan does not list and unequal budgets."""
    tuning = plan.get("tuning") or {}
    grid = tuning.get("grid") or {}
    if grid and "seed" not in tuning:
        raise SystemExit(f"{path}: tuning: needs a seed")
    trials = {}
    for label, knobs in grid.items():
        if label not in plan["models"]:
            raise SystemExit(f"{path}: tuning: {label!r} is not one of the plan's models")
        names = list(knobs)
        trials[label] = [dict(zip(names, values))
                         for values in itertools.product(*(knobs[name] for name in names))]
    budgets = {label: len(settings) for label, settings in trials.items()}
    if len(set(budgets.values())) > 1:
        raise SystemExit(f"{path}: tuning: every model gets the same number of trials, got "
                         + ", ".join(f"{label} {n}" for label, n in budgets.items()))
    return trials


def setting_key(setting):
    """How a setting is written in the csv files ('' for a model that is not tuned)."""
    return json.dumps(setting, sort_keys=True) if setting else ""


def setting_text(setting):
    return ", ".join(f"{name} {value}" for name, value in (setting or {}).items()) or "plan settings"


def choose(trials, tuning_rows, protocol):
    """{label: setting with the best validation score} for the models whose trials under
    ``protocol`` are all done (ties: the first in grid order)."""
    chosen = {}
    for label, settings in trials.items():
        scores = {r["setting"]: float(r["valid_score"]) for r in tuning_rows
                  if r["model"] == label and r["protocol"] == protocol and r["status"] == "ok"}
        keys = [setting_key(setting) for setting in settings]
        if all(key in scores for key in keys):
            best = max(range(len(keys)), key=lambda i: (scores[keys[i]], -i))
            chosen[label] = settings[best]
    return chosen


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


def record_run(path, row):
    """Add ``row`` to the csv at ``path``, replacing an earlier row of the same run (model,
    protocol, seed, setting: a run extended under a higher epoch cap); written whole to a
    temporary file and renamed, so an interrupted write never leaves half a file."""
    key = run_key(row)
    rows = [r for r in read_runs(path) if run_key(r) != key] + [row]
    with open(path + ".tmp", "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=FIELDS, restval="")
        writer.writeheader()
        writer.writerows({k: r.get(k) or "" for k in FIELDS} for r in rows)
    os.replace(path + ".tmp", path)


def run_key(row):
    return row["model"], row["protocol"], str(row["seed"]), row.get("setting") or ""


def cut_by_a_lower_cap(row, plan):
    """True for a finished run that stopped at an epoch cap below the plan's ``epochs`` while
    its validation score was still within patience: under the plan's cap it would have gone on
    (RecBole stops after ``stopping_step`` + 1 validations without a new best)."""
    shared = plan.get("shared") or {}
    entry = (plan["models"].get(row["model"]) or {}) if "models" in plan else {}
    settings = {**shared, **entry, **(json.loads(row["setting"]) if row.get("setting") else {})}
    cap, patience = settings.get("epochs"), settings.get("stopping_step", 10)
    if row["status"] != "ok" or cap is None or int(row["epochs"]) >= cap:
        return False
    validations = int(row["epochs"]) // int(settings.get("eval_step", 1))
    return validations - int(row["best_epoch"]) <= patience


# ----------------------------------------------------------------------------- summary
def model_seeds(plan, label):
    """The seeds ``label`` runs with: its entry's ``seeds`` (a subset of the plan's, e.g. one
    for a deterministic model or a costly check), else the plan's."""
    return (plan["models"][label] or {}).get("seeds", plan["seeds"])


def tuned_as(plan, label):
    """The label whose chosen setting ``label`` runs at: its ``tuned_as`` entry, else itself
    (a variant such as HierTCN with the target's session signal withheld)."""
    return (plan["models"][label] or {}).get("tuned_as", label)


def final_rows(runs, label, protocol, chosen, plan=None):
    """The finished runs of ``label`` at its chosen setting (plan settings when not tuned)."""
    source = tuned_as(plan, label) if plan else label
    wanted = setting_key(chosen.get((source, protocol)))
    return [r for r in runs if r["protocol"] == protocol and r["model"] == label
            and r["status"] == "ok" and (r.get("setting") or "") == wanted]


def summarise(runs, plan, chosen=None):
    """{protocol: {label: {field: (mean, std, n)}}} over the finished runs."""
    table, chosen = {}, chosen or {}
    for protocol in plan["protocols"]:
        for label in plan["models"]:
            rows = final_rows(runs, label, protocol, chosen, plan)
            if not rows:
                continue
            cell = {}
            for field in METRICS + ["valid_score", "s_per_epoch", "best_epoch", "peak_rss_mib"]:
                values = [float(r[field]) for r in rows]
                spread = statistics.stdev(values) if len(values) > 1 else 0.0
                cell[field] = (statistics.mean(values), spread, len(values))
            table.setdefault(protocol, {})[label] = cell
    return table


def markdown(table, plan, command, tests=None, versus_baselines=None):
    lines = [f"# {plan['dataset']}: HierTCN against RecBole's baselines", "",
             f"Regenerate with `{command}`. Mean ± standard deviation over seeds "
             f"{', '.join(str(s) for s in plan['seeds'])}; test metrics of the epoch with the "
             f"best validation {valid_metric(plan)} (the validation column: that score, by "
             "which settings are chosen); training seconds per epoch; the epoch of the best "
             "validation score; peak resident memory of the run's process."
             + (f" Every run on {plan['threads']} CPU thread(s)." if plan.get("threads") else ""),
             ""]
    for protocol, rows in table.items():
        lines += [f"## Protocol `{protocol}`", "",
                  "| model | " + " | ".join(m.replace("recall", "Recall").replace(
                      "mrr", "MRR").replace("ndcg", "NDCG") for m in METRICS)
                  + " | validation | s/epoch | best epoch | peak MiB | seeds |",
                  "|---" * (len(METRICS) + 6) + "|"]
        for label, cell in rows.items():
            metrics = " | ".join(f"{cell[m][0]:.4f} ± {cell[m][1]:.4f}" for m in METRICS)
            lines.append(f"| {label} | {metrics} | {cell['valid_score'][0]:.4f} | "
                         f"{cell['s_per_epoch'][0]:.1f} | "
                         f"{cell['best_epoch'][0]:.1f} | {cell['peak_rss_mib'][0]:,.0f} | "
                         f"{cell['recall@10'][2]} |")
        lines += ["", *lift_lines(rows), ""]
        if versus_baselines and versus_baselines.get(protocol):
            lines += baseline_markdown(versus_baselines[protocol])
        if tests and tests.get(protocol):
            lines += ["Paired t-tests over seeds (HierTCN minus the model, test metrics):", "",
                      "| model | seeds | " + " | ".join(
                          f"{m.replace('recall', 'Recall').replace('mrr', 'MRR')} difference "
                          "(p)" for m in PAIRED_METRICS) + " |",
                      "|---" * (2 + len(PAIRED_METRICS)) + "|"]
            for label, (count, cells) in tests[protocol].items():
                lines.append(f"| {label} | {count} | " + " | ".join(
                    f"{diff:+.4f} ({p_text(p)})" for diff, p in cells) + " |")
            lines.append("")
    return "\n".join(lines) + "\n"


def valid_metric(plan):
    return (plan.get("shared") or {}).get("valid_metric", "MRR@10")


def paired_difference(ours, theirs, metric):
    """Mean difference and two-sided paired t-test p of ``metric`` over the seeds both
    ``ours`` and ``theirs`` ({seed: run row}) finished: ``(seeds, difference, p)``."""
    from scipy import stats

    seeds = sorted(set(ours) & set(theirs))
    if len(seeds) < 2:
        return len(seeds), None, None
    a = [float(ours[seed][metric]) for seed in seeds]
    b = [float(theirs[seed][metric]) for seed in seeds]
    differences = [x - y for x, y in zip(a, b)]
    diff = statistics.mean(differences)
    if len(set(differences)) == 1:  # no spread: the t statistic is undefined, the sign is not
        return len(seeds), diff, 1.0 if diff == 0 else 0.0
    return len(seeds), diff, float(stats.ttest_rel(a, b).pvalue)


def by_seed(runs, label, protocol, chosen, plan):
    return {r["seed"]: r for r in final_rows(runs, label, protocol, chosen, plan)}


def paired_tests(runs, plan, chosen):
    """{protocol: {label: (seeds, [(mean difference, p), ...])}}: HierTCN against every other
    model, paired by seed, over the seeds both finished (two-sided paired t-test); none when
    the plan has no HierTCN (a plan of baselines only)."""
    out = {}
    if "HierTCN" not in plan["models"]:
        return out
    for protocol in plan["protocols"]:
        ours = by_seed(runs, "HierTCN", protocol, chosen, plan)
        for label in plan["models"]:
            if label == "HierTCN":
                continue
            theirs = by_seed(runs, label, protocol, chosen, plan)
            pairs = [paired_difference(ours, theirs, metric) for metric in PAIRED_METRICS]
            if pairs[0][0] < 2:
                continue
            out.setdefault(protocol, {})[label] = (pairs[0][0], [(d, p) for _, d, p in pairs])
    return out


def hiertcn_labels(plan):
    """The plan's labels that train HierTCN (the reference and its variants)."""
    return [label for label, entry in plan["models"].items()
            if entry.get("model", label) == "HierTCN"]


def best_baseline(rows, label, metric):
    """``(baseline, ratio)``: the best of ``BASELINES_FOR_TARGET`` in ``rows`` on ``metric``
    (by mean test score) and ``label``'s mean over it; None when no baseline is in ``rows``."""
    baselines = [name for name in BASELINES_FOR_TARGET if name in rows]
    if not baselines:
        return None
    best = max(baselines, key=lambda name: rows[name][metric][0])
    return best, rows[label][metric][0] / max(rows[best][metric][0], 1e-12)


def against_best_baseline(runs, plan, chosen, table):
    """{protocol: {label: [cell per PAIRED_METRICS]}} for HierTCN and each of its variants:
    a cell is ``(baseline, ratio, seeds, difference, p)`` against the best of
    ``BASELINES_FOR_TARGET`` on that metric (:func:`best_baseline`), the difference and p
    paired by seed (None below two shared seeds); the issue's target is the ratio >= 1.10."""
    out = {}
    for protocol, rows in table.items():
        runs_of = {label: by_seed(runs, label, protocol, chosen, plan) for label in rows}
        for label in hiertcn_labels(plan):
            if label not in rows:
                continue
            cells = []
            for metric in PAIRED_METRICS:
                found = best_baseline(rows, label, metric)
                if found is None:
                    break
                best, ratio = found
                cells.append((best, ratio,
                              *paired_difference(runs_of[label], runs_of[best], metric)))
            if cells:
                out.setdefault(protocol, {})[label] = cells
    return out


def p_text(p):
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def baseline_markdown(cells_by_label):
    """The :func:`against_best_baseline` table of one protocol."""
    names = [m.replace("recall", "Recall").replace("mrr", "MRR") for m in PAIRED_METRICS]
    lines = ["HierTCN and its variants against the best of "
             f"{', '.join(BASELINES_FOR_TARGET)} on each metric (ratio of the means; "
             "difference and paired t-test over the seeds both finished):", "",
             "| model | " + " | ".join(names) + " |", "|---" * (1 + len(names)) + "|"]
    for label, cells in cells_by_label.items():
        texts = []
        for best, ratio, seeds, diff, p in cells:
            paired = (f", {diff:+.4f} (p {p_text(p)}, {seeds} seeds)" if diff is not None
                      else f", {seeds} shared seed(s)")
            texts.append(f"{ratio:.2f}x {best}{paired}")
        lines.append(f"| {label} | " + " | ".join(texts) + " |")
    return lines + [""]


def tuning_markdown(plan, trials, tuning_rows, command):
    """Every trial's validation score, the chosen setting marked, per protocol."""
    tuning = plan["tuning"]
    budget = len(next(iter(trials.values())))
    lines = [f"# {plan['dataset']}: tuning", "",
             f"Regenerate with `{command}`. Every tuned model gets {budget} trials (every "
             f"combination of its grid) at seed {tuning['seed']}; the setting with the best "
             f"validation {valid_metric(plan)} is chosen "
             "(marked **chosen**); test figures play no part.", ""]
    for protocol in plan["protocols"]:
        chosen = choose(trials, tuning_rows, protocol)
        lines += [f"## Protocol `{protocol}`", "",
                  "| model | setting | validation | test Recall@10 | test MRR@10 | epochs | "
                  "s/epoch |", "|---" * 7 + "|"]
        for label, settings in trials.items():
            for setting in settings:
                row = next((r for r in tuning_rows if r["model"] == label
                            and r["protocol"] == protocol and r["status"] == "ok"
                            and r["setting"] == setting_key(setting)), None)
                mark = " **chosen**" if chosen.get(label) == setting else ""
                if row is None:
                    lines.append(f"| {label} | {setting_text(setting)} | (not run yet) "
                                 "| | | | |")
                    continue
                lines.append(f"| {label} | {setting_text(setting)}{mark} | "
                             f"{row['valid_score']} | {row['recall@10']} | {row['mrr@10']} | "
                             f"{row['epochs']} | {row['s_per_epoch']} |")
        lines.append("")
    return "\n".join(lines) + "\n"


def lift_lines(rows):
    """HierTCN's Recall@10 and MRR@10 against the best of the baselines in ``rows``."""
    if "HierTCN" not in rows or best_baseline(rows, "HierTCN", "recall@10") is None:
        return []
    base = [label for label in BASELINES_FOR_TARGET if label in rows]
    out = []
    for metric in ("recall@10", "mrr@10"):
        best, ratio = best_baseline(rows, "HierTCN", metric)
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


def chosen_settings(plan, tuning_rows):
    """{(label, protocol): chosen setting} from the rows of ``tuning.csv``."""
    trials = grid_trials(plan)
    return {(label, protocol): setting for protocol in plan["protocols"]
            for label, setting in choose(trials, tuning_rows, protocol).items()}


def write_summary(plan, out, command):
    runs = read_runs(os.path.join(out, "runs.csv"))
    tuning_rows = read_runs(os.path.join(out, "tuning.csv"))
    chosen = chosen_settings(plan, tuning_rows)
    table = summarise(runs, plan, chosen)
    tests = paired_tests(runs, plan, chosen) if plan.get("tuning") else None
    versus = against_best_baseline(runs, plan, chosen, table) if plan.get("tuning") else None
    with open(os.path.join(out, "results.md"), "w", encoding="utf-8") as handle:
        handle.write(markdown(table, plan, command, tests, versus))
    trials = grid_trials(plan)
    if trials:
        with open(os.path.join(out, "tuning.md"), "w", encoding="utf-8") as handle:
            handle.write(tuning_markdown(plan, trials, tuning_rows, command))
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


def job_spec(plan, label, protocol, seed, setting=None):
    """What the child process of one (model label, protocol, seed[, setting]) run receives."""
    entry = dict(plan["models"][label])
    model = entry.pop("model", label)
    for key in PLAN_ONLY_KEYS:
        entry.pop(key, None)
    spec = {"model": model, "dataset": plan["dataset"], "protocol": protocol, "seed": seed,
            "settings": {**(plan.get("shared") or {}), **entry, **(setting or {})}}
    if plan.get("data_path"):
        spec["settings"]["data_path"] = plan["data_path"]
    return spec


def run_job(plan, label, protocol, seed, setting=None, progress=None, running=None):
    """Train one run in its own process (checkpoints in the ``progress`` folder, where an
    interrupted attempt's last checkpoint is resumed from; ``running``: see
    :func:`~benchmarks.measure.run_measured`); its row for ``runs.csv`` (None when another
    process holds the run: nothing of it is recorded), its validation curve and a note."""
    spec = job_spec(plan, label, protocol, seed, setting)
    if progress:
        spec["progress"] = progress
    code, wall, peak, stdout, stderr = run_measured(
        [sys.executable, "-m", "benchmarks.compare", "--run", json.dumps(spec)],
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
               epochs=result["epochs"], best_epoch=result["best_epoch"])
    curve = {"model": label, "protocol": protocol, "seed": seed, "setting": setting or {},
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
    parser.add_argument("--commit", action="store_true",
                        help="git-commit the results folder after every finished run, so a "
                             "session that ends mid-comparison loses no finished run")
    parser.add_argument("--run", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.run:
        die_with_parent()
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
    """Tune (the plan's ``tuning``), then train every run of the plan not yet in
    ``out/runs.csv`` at the chosen settings, and rewrite the summary."""
    trials = {label: settings for label, settings in grid_trials(plan).items()
              if not args.only or label in args.only}
    if trials:
        tuning_seed = plan["tuning"]["seed"]
        rows = read_runs(os.path.join(out, "tuning.csv"))
        done = {(r["model"], r["protocol"], r["setting"]) for r in rows
                if r["status"] == "ok" and not cut_by_a_lower_cap(r, plan)}
        report_extended(rows, plan)
        jobs = [(label, protocol, tuning_seed, setting) for protocol in plan["protocols"]
                for label, settings in trials.items() for setting in settings]
        pending = [job for job in jobs if (job[0], job[1], setting_key(job[3])) not in done]
        print(f"{plan['dataset']}: tuning, {len(jobs)} trials, {len(jobs) - len(pending)} "
              f"already done, {len(pending)} to go -> {out}/tuning.csv", flush=True)
        run_pool(plan, args, out, command, pending, "tuning.csv", "tuning")
    chosen = chosen_settings(plan, read_runs(os.path.join(out, "tuning.csv")))
    tuned = grid_trials(plan)
    untuned = [label for label in plan["models"] if tuned_as(plan, label) in tuned
               and any((tuned_as(plan, label), p) not in chosen for p in plan["protocols"])]
    if untuned:
        print(f"not all trials of {', '.join(untuned)} finished; their seeds wait", flush=True)
    runs = read_runs(os.path.join(out, "runs.csv"))
    done = {run_key(r) for r in runs if r["status"] == "ok" and not cut_by_a_lower_cap(r, plan)}
    report_extended(runs, plan)
    todo = [(label, protocol, seed, chosen.get((tuned_as(plan, label), protocol)))
            for protocol in plan["protocols"] for seed in plan["seeds"]
            for label in plan["models"] if seed in model_seeds(plan, label)
            and (not args.only or label in args.only) and label not in untuned]
    pending = [job for job in todo
               if (job[0], job[1], str(job[2]), setting_key(job[3])) not in done]
    pending = [job for job in pending if not reuse_trial(plan, out, command, job, args.commit)]
    print(f"{plan['dataset']}: {len(todo)} runs, {len(todo) - len(pending)} already done, "
          f"{len(pending)} to go -> {out}", flush=True)
    run_pool(plan, args, out, command, pending, "runs.csv", "curves")
    table = write_summary(plan, out, command)
    for protocol, rows in table.items():
        for line in lift_lines(rows):
            print(f"{protocol}: {line}")


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
    if setting is None or seed != plan["tuning"]["seed"] or tuned_as(plan, label) != label:
        return False
    key = setting_key(setting)
    row = next((r for r in read_runs(os.path.join(out, "tuning.csv")) if r["model"] == label
                and r["protocol"] == protocol and r["setting"] == key and r["status"] == "ok"),
               None)
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


def curve_name(label, protocol, seed, setting=None):
    suffix = "".join(f"_{name}-{value}" for name, value in (setting or {}).items())
    return f"{label}_{protocol}_{seed}{suffix}.json"


def write_json(path, record):
    with open(path + ".tmp", "w", encoding="utf-8") as handle:
        json.dump(record, handle)
    os.replace(path + ".tmp", path)


def progress_folder(out, curve_folder, job):
    """Where the run ``job`` (label, protocol, seed, setting) keeps its checkpoints."""
    return os.path.join(out, "progress", curve_folder, curve_name(*job)[:-len(".json")])


def resumed_first(jobs, folder_of):
    """``jobs`` with those an interrupted attempt left a checkpoint for moved to the front
    (otherwise in their order): stopped and started again, a comparison finishes the runs it
    had begun before it starts new ones, instead of queueing their saved epochs behind them."""
    def begun(job):
        folder = folder_of(job)
        return os.path.isdir(folder) and any(name.endswith(".pth")
                                             for name in os.listdir(folder))
    return sorted(jobs, key=lambda job: not begun(job))  # stable: the order otherwise kept


def run_pool(plan, args, out, command, jobs, csv_name, curve_folder):
    """Train ``jobs`` (label, protocol, seed, setting), ``args.workers`` at a time, interrupted
    ones first (:func:`resumed_first`); each row goes to ``out/csv_name`` and each curve to
    ``out/curve_folder`` as soon as it ends."""
    if not jobs:
        return
    os.makedirs(os.path.join(out, curve_folder), exist_ok=True)
    def folder_of(job):
        return progress_folder(out, curve_folder, job)

    jobs = resumed_first(jobs, folder_of)
    started = time.perf_counter()
    running = set()  # the children training now
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=args.workers)
    try:
        futures = {pool.submit(run_job, plan, *job, progress=folder_of(job), running=running):
                   job for job in jobs}
        for number, future in enumerate(concurrent.futures.as_completed(futures), 1):
            label, protocol, seed, setting = futures[future]
            row, curve, note = future.result()
            if curve is not None:
                name = curve_name(label, protocol, seed,
                                  setting if curve_folder != "curves" else None)
                write_json(os.path.join(out, curve_folder, name), curve)
            if row is not None:
                record_run(os.path.join(out, csv_name), row)
                write_summary(plan, out, command)
                if args.commit:
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


if __name__ == "__main__":
    sys.exit(main())
