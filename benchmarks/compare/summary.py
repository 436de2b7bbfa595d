"""The figures of a comparison's report, model-agnostic: the mean and spread of every label,
the leader, the plan's ``focus`` model against the best other one, and the tests over seeds.
Text is :mod:`benchmarks.compare.report`'s."""

import statistics

from benchmarks.compare.plan import focus_labels, model_seeds
from benchmarks.compare.significance import seed_test
from benchmarks.compare.store import METRICS, by_seed, final_rows

LEADER_METRIC = "mrr@10"  # the leader is the label with the best mean of this test metric
COMPARED_METRICS = ("recall@10", "mrr@10")  # the metrics of the ratios and the tests
SUMMARY_FIELDS = METRICS + ["valid_score", "s_per_epoch", "best_epoch", "peak_rss_mib"]


def summarise(runs, plan, chosen=None):
    """{protocol: {label: {field: (mean, std, n)}}} over the finished runs, labels in plan
    order; ``chosen``: {(label, protocol): setting} of the tuned models."""
    table, chosen = {}, chosen or {}
    for protocol in plan["protocols"]:
        for label in plan["models"]:
            rows = final_rows(runs, label, protocol, chosen, plan)
            if not rows:
                continue
            cell = {}
            for field in SUMMARY_FIELDS:
                values = [float(r[field]) for r in rows]
                spread = statistics.stdev(values) if len(values) > 1 else 0.0
                cell[field] = (statistics.mean(values), spread, len(values))
            table.setdefault(protocol, {})[label] = cell
    return table


def best_of(rows, labels, metric):
    """The label of ``labels`` with the best mean ``metric`` in ``rows`` (one protocol of
    :func:`summarise`); ties: the first; None when there is none."""
    labels = [label for label in labels if label in rows]
    return max(labels, key=lambda label: rows[label][metric][0]) if labels else None


def leader(rows, metric=LEADER_METRIC):
    """The label with the best mean test ``metric`` (ties: the first in plan order)."""
    return best_of(rows, list(rows), metric)


def ratio(rows, label, other, metric):
    """``label``'s mean ``metric`` over ``other``'s."""
    return rows[label][metric][0] / max(rows[other][metric][0], 1e-12)


def runs_once(plan, label):
    """True for a label the plan runs with one seed (a deterministic model): its single run
    is a fixed value to test other labels' seeds against. A label that has run one of its
    several seeds so far is not."""
    return len(model_seeds(plan, label)) == 1


def compare_labels(runs, plan, chosen, protocol, label, other, metric):
    """:func:`~benchmarks.compare.significance.seed_test` of ``label`` minus ``other``."""
    return seed_test(by_seed(runs, label, protocol, chosen, plan),
                     by_seed(runs, other, protocol, chosen, plan), metric,
                     runs_once(plan, label), runs_once(plan, other))


def split_by_focus(rows, plan):
    """(the focus model's labels, every other label) among ``rows``; ([], []) without a focus."""
    if not plan.get("focus"):
        return [], []
    focus = [label for label in focus_labels(plan) if label in rows]
    return focus, [label for label in rows if label not in focus]


def against_best_other(runs, plan, chosen, table):
    """{protocol: {focus label: [cell per COMPARED_METRICS]}} for each label of the plan's
    ``focus`` model: a cell is ``(other, ratio, test)``, ``other`` the non-focus label with the
    best mean on that metric, ``ratio`` the focus label's mean over it and ``test`` the
    :class:`~benchmarks.compare.significance.SeedTest` of the focus label minus it. Empty
    without a ``focus`` or without another model."""
    out = {}
    for protocol, rows in table.items():
        focus, others = split_by_focus(rows, plan)
        if not focus or not others:
            continue
        for label in focus:
            cells = []
            for metric in COMPARED_METRICS:
                best = best_of(rows, others, metric)
                cells.append((best, ratio(rows, label, best, metric),
                              compare_labels(runs, plan, chosen, protocol, label, best, metric)))
            out.setdefault(protocol, {})[label] = cells
    return out


def leader_against_others(runs, plan, chosen, table):
    """{protocol: (leader, {label: [test per COMPARED_METRICS]})}: the :func:`leader` against
    every other label, each test a :class:`~benchmarks.compare.significance.SeedTest` of the
    leader minus that label (paired over shared seeds, or one-sample against a label the plan
    runs once, or none). Protocols with a single label are left out."""
    out = {}
    for protocol, rows in table.items():
        if len(rows) < 2:
            continue
        first = leader(rows)
        tests = {label: [compare_labels(runs, plan, chosen, protocol, first, label, metric)
                         for metric in COMPARED_METRICS] for label in rows if label != first}
        out[protocol] = (first, tests)
    return out


def focus_over_best_other(rows, plan):
    """[(metric, best focus label, best other label, ratio) per COMPARED_METRICS] in one
    protocol's ``rows``: the best of the focus model's labels over the best of the rest; empty
    without a ``focus``, or without labels on either side."""
    focus, others = split_by_focus(rows, plan)
    if not focus or not others:
        return []
    out = []
    for metric in COMPARED_METRICS:
        ours, theirs = best_of(rows, focus, metric), best_of(rows, others, metric)
        out.append((metric, ours, theirs, ratio(rows, ours, theirs, metric)))
    return out
