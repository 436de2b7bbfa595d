"""The comparison's report: ``results.md``, ``tuning.md`` and the charts, rewritten after
every run from ``runs.csv`` and ``tuning.csv``."""

import os
import statistics

from benchmarks.compare.plan import (choose, chosen_settings, grid_trials, setting_key,
                                     setting_text, valid_metric)
from benchmarks.compare.significance import describe, p_text
from benchmarks.compare.store import METRICS, load_curves, read_runs, run_key, trained_seconds
from benchmarks.compare.summary import (COMPARED_METRICS, LEADER_METRIC, against_best_other,
                                        best_of, focus_over_best_other, leader,
                                        leader_against_others, ratio, split_by_focus,
                                        summarise)
from benchmarks.compare.todo import still_to_run_lines

BOLD_METRICS = ("recall@10", "mrr@10")  # the leader's cells set in bold
TESTS_TEXT = ("paired over the seeds both finished, or one-sample against the single run of a "
              "model the plan runs with one seed")


def metric_name(metric):
    """'mrr@10' -> 'MRR@10'."""
    return metric.replace("recall", "Recall").replace("mrr", "MRR").replace("ndcg", "NDCG")


def write_summary(plan, out, command):
    """Rewrite ``out/results.md`` (and ``out/tuning.md`` for a tuned plan) and the charts from
    the csv files in ``out``; returns the :func:`~benchmarks.compare.summary.summarise` table."""
    runs = read_runs(os.path.join(out, "runs.csv"))
    tuning_rows = read_runs(os.path.join(out, "tuning.csv"))
    chosen = chosen_settings(plan, tuning_rows)
    table = summarise(runs, plan, chosen)
    tests = leader_against_others(runs, plan, chosen, table)
    versus = against_best_other(runs, plan, chosen, table)
    with open(os.path.join(out, "results.md"), "w", encoding="utf-8") as handle:
        handle.write(markdown(table, plan, command, tests, versus)
                     + "\n".join(compute_lines(runs, tuning_rows)
                                 + still_to_run_lines(plan, out, command)) + "\n")
    trials = grid_trials(plan)
    if trials:
        with open(os.path.join(out, "tuning.md"), "w", encoding="utf-8") as handle:
            handle.write(tuning_markdown(plan, trials, tuning_rows, command))
    charts(table, load_curves(out), out)
    return table


def readme_block(table, plan, out, protocol):
    """The README's results table of one protocol: Recall@10 and MRR@10 of every label (the
    leader in bold), each over the best model that is not the plan's ``focus`` (1.00x: that
    model), the seeds, s/epoch, and the chart."""
    rows = table.get(protocol) or {}
    if not rows:
        return [f"(no finished run of protocol `{protocol}` yet)"]
    first = leader(rows)
    _, others = split_by_focus(rows, plan)
    others = others or list(rows)
    best = {metric: best_of(rows, others, metric) for metric in COMPARED_METRICS}
    names = [metric_name(m) for m in COMPARED_METRICS]
    lines = ["| model | " + " | ".join(names) + " | "
             + " | ".join(f"{n} / {best[m]}" for n, m in zip(names, COMPARED_METRICS))
             + " | seeds | s/epoch |", "|---" * (2 * len(names) + 3) + "|"]
    for label, cell in rows.items():
        bold = label == first
        values = [f"{cell[m][0]:.4f}" + (f" ± {cell[m][1]:.4f}" if cell[m][2] > 1 else "")
                  for m in COMPARED_METRICS]
        values = [f"**{v}**" if bold else v for v in values]
        ratios = [f"{ratio(rows, label, best[m], m):.2f}x" for m in COMPARED_METRICS]
        seconds = cell["s_per_epoch"][0]
        lines.append(f"| {f'**{label}**' if bold else label} | {' | '.join(values)} | "
                     f"{' | '.join(ratios)} | {cell['recall@10'][2]} | "
                     f"{f'{seconds:.0f}' if seconds else '-'} |")
    chart = os.path.join(out, f"metrics_{protocol}.png")
    return lines + ["", f"![{plan['dataset']}, {protocol}: Recall@10, MRR@10, NDCG@10]"
                        f"({chart})"]


def update_readme(path, out, table, plan):
    """Rewrite every block of the README at ``path`` that starts with
    ``<!-- compare: OUT PROTOCOL -->`` (``OUT`` this results folder) and ends with
    ``<!-- /compare -->`` with :func:`readme_block`; returns how many were rewritten."""
    with open(path, encoding="utf-8") as handle:
        lines = handle.read().split("\n")
    result, count, index = [], 0, 0
    while index < len(lines):
        line = lines[index]
        result.append(line)
        index += 1
        words = line.split()
        if words[:2] != ["<!--", "compare:"] or len(words) != 5 or words[2] != out:
            continue
        end = next((i for i in range(index, len(lines)) if lines[i].strip()
                    == "<!-- /compare -->"), None)
        if end is None:
            raise ValueError(f"{path}: the block {line.strip()} has no <!-- /compare -->")
        result += readme_block(table, plan, out, words[3]) + [lines[end]]
        index, count = end + 1, count + 1
    with open(path + ".tmp", "w", encoding="utf-8") as handle:
        handle.write("\n".join(result))
    os.replace(path + ".tmp", path)
    return count


def markdown(table, plan, command, tests=None, versus=None):
    """``results.md``: per protocol every label's figures (the leader in bold), the headline,
    the focus model's labels against the best other model (``versus``, from
    :func:`~benchmarks.compare.summary.against_best_other`) and the leader against every
    other label (``tests``, from :func:`~benchmarks.compare.summary.leader_against_others`)."""
    lines = [f"# {plan['dataset']}: comparison", "",
             f"Regenerate with `{command}`. Mean ± standard deviation over seeds "
             f"{', '.join(str(s) for s in plan['seeds'])}; test metrics of the epoch with the "
             f"best validation {valid_metric(plan)} (the validation column: that score, by "
             "which settings are chosen); training seconds per epoch; the epoch of the best "
             "validation score; peak resident memory of the run's process."
             + (f" Every run on {plan['threads']} CPU thread(s)." if plan.get("threads") else "")
             + f" In bold: the leader, the model with the best mean test "
             f"{metric_name(LEADER_METRIC)} (ties: the first in the plan).", ""]
    for protocol, rows in table.items():
        lines += [f"## Protocol `{protocol}`", "", *metrics_table(rows), "",
                  *headline_lines(rows, plan), ""]
        if versus and versus.get(protocol):
            lines += focus_markdown(plan["focus"], versus[protocol])
        if tests and tests.get(protocol):
            lines += leader_markdown(*tests[protocol])
    return "\n".join(lines) + "\n"


def compute_lines(runs, tuning_rows):
    """``## Compute``: per label, the runs and tuning trials finished (or failed) and the
    one-thread hours they took (each run's own wall time, :func:`run_seconds`; a tuning trial
    reused as a final run, the same row in both files, counted once)."""
    spent, counted = {}, set()
    for row in list(tuning_rows) + list(runs):
        key = run_key(row)
        if key in counted or not row.get("wall_s"):
            continue
        counted.add(key)
        count, seconds = spent.get(row["model"], (0, 0.0))
        spent[row["model"]] = count + 1, seconds + run_seconds(row)
    if not spent:
        return []
    lines = ["## Compute", "",
             "What the runs in `runs.csv` and `tuning.csv` took, each on its own thread(s) "
             "(wall seconds of the run's process; a run resumed from an earlier attempt, whose "
             "wall time is its last attempt's only, counts at least its epochs times its median "
             "epoch; a tuning trial reused as a final run counted once). Runs side by side share "
             "the elapsed time: on two workers the comparison took about half the total.", "",
             "| model | runs and trials | hours |", "|---|---|---|"]
    for label, (count, seconds) in spent.items():
        lines.append(f"| {label} | {count} | {seconds / 3600:.2f} |")
    total = sum(seconds for _, seconds in spent.values())
    lines.append(f"| **total** | {sum(count for count, _ in spent.values())} | "
                 f"**{total / 3600:.2f}** |")
    return lines + [""]


def run_seconds(row):
    """A row's one-thread seconds: its wall time, or its :func:`trained_seconds` when that is
    more (a resumed run)."""
    return max(float(row["wall_s"]), trained_seconds(row))


def metrics_table(rows):
    """One protocol's table of every label, the :func:`~benchmarks.compare.summary.leader`'s
    label and its Recall@10 and MRR@10 in bold."""
    first = leader(rows)
    lines = ["| model | " + " | ".join(metric_name(m) for m in METRICS)
             + " | validation | s/epoch | best epoch | peak MiB | seeds |",
             "|---" * (len(METRICS) + 6) + "|"]
    for label, cell in rows.items():
        bold = label == first
        texts = []
        for metric in METRICS:
            text = f"{cell[metric][0]:.4f} ± {cell[metric][1]:.4f}"
            texts.append(f"**{text}**" if bold and metric in BOLD_METRICS else text)
        lines.append(f"| {f'**{label}**' if bold else label} | {' | '.join(texts)} | "
                     f"{cell['valid_score'][0]:.4f} | {cell['s_per_epoch'][0]:.1f} | "
                     f"{cell['best_epoch'][0]:.1f} | {cell['peak_rss_mib'][0]:,.0f} | "
                     f"{cell['recall@10'][2]} |")
    return lines


def headline_lines(rows, plan):
    """One protocol's line: the leader, and the best of the focus model's labels over the best
    other model on each of COMPARED_METRICS (when the plan has a ``focus``)."""
    if not rows:
        return []
    line = f"Leader on test {metric_name(LEADER_METRIC)}: {leader(rows)}."
    ratios = focus_over_best_other(rows, plan)
    if ratios:
        line += (f" Best {plan['focus']} variant / best other model: "
                 + ", ".join(f"{metric_name(metric)} {value:.2f}x ({ours} / {theirs})"
                             for metric, ours, theirs, value in ratios) + ".")
    return [line]


def versus_text(best, value, test):
    """A cell of :func:`focus_markdown`: '1.12x HRNN, +0.0379 (p < 0.001, paired, 5 seeds)'."""
    head = f"{value:.2f}x {best}"
    if test.difference is None:
        return f"{head} ({describe(test)})"
    if test.p is None:
        return f"{head}, {test.difference:+.4f} ({describe(test)})"
    return f"{head}, {test.difference:+.4f} (p {p_text(test.p)}, {describe(test)})"


def focus_markdown(focus, cells_by_label):
    """The :func:`~benchmarks.compare.summary.against_best_other` table of one protocol."""
    names = [metric_name(m) for m in COMPARED_METRICS]
    lines = [f"Each {focus} variant against the best other model on each metric (the ratio of "
             f"the means; the difference, the {focus} variant minus that model, and a two-sided "
             f"t-test over seeds: {TESTS_TEXT}):", "",
             "| model | " + " | ".join(names) + " |", "|---" * (1 + len(names)) + "|"]
    for label, cells in cells_by_label.items():
        lines.append(f"| {label} | "
                     + " | ".join(versus_text(*cell) for cell in cells) + " |")
    return lines + [""]


def leader_markdown(first, tests_by_label):
    """The :func:`~benchmarks.compare.summary.leader_against_others` table of one protocol."""
    lines = [f"The leader, {first}, against every other model (the difference of the mean test "
             f"metrics, the leader minus the model, and a two-sided t-test over seeds: "
             f"{TESTS_TEXT}):", "",
             "| model | test | " + " | ".join(f"{metric_name(m)} difference (p)"
                                             for m in COMPARED_METRICS) + " |",
             "|---" * (2 + len(COMPARED_METRICS)) + "|"]
    for label, tests in tests_by_label.items():
        lines.append(f"| {label} | {describe(tests[0])} | "
                     + " | ".join(cell_text(test) for test in tests) + " |")
    return lines + [""]


def cell_text(test):
    """A cell of :func:`leader_markdown`: '+0.0123 (0.004)'."""
    if test.difference is None:
        return "n/a"
    return f"{test.difference:+.4f} ({'n/a' if test.p is None else p_text(test.p)})"


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
        if axis.get_lines():
            axis.legend(fontsize=8)
        figure.tight_layout()
        figure.savefig(os.path.join(out, f"validation_{protocol}.png"), dpi=110)
        plt.close(figure)
