"""Two-sided t-tests over seeds between two labels' runs.

Each side is ``{seed: run row}``. Two labels that both ran several seeds are paired by seed;
a deterministic model (the session-kNN ones) runs once, and then the other side's per-seed
values are tested against that single value (a one-sample t-test).
"""

import statistics
from typing import NamedTuple, Optional, Tuple

PAIRED, ONE_SAMPLE, NO_TEST = "paired", "one-sample", "n/a"


class SeedTest(NamedTuple):
    """A difference of means (first side minus second) and its test: ``kind`` is
    :data:`PAIRED`, :data:`ONE_SAMPLE` or :data:`NO_TEST`; ``seeds`` the number of seeds the
    test reads (the shared seeds when paired, the repeated side's when one-sample, the shared
    ones otherwise); ``difference`` None when a side has no run; ``p`` None without a test;
    ``runs`` the number of runs on each side."""
    kind: str
    seeds: int
    difference: Optional[float]
    p: Optional[float]
    runs: Tuple[int, int] = (0, 0)


def paired_difference(ours, theirs, metric):
    """Mean difference and two-sided paired t-test p of ``metric`` over the seeds both
    ``ours`` and ``theirs`` ({seed: run row}) finished: ``(seeds, difference, p)``; the
    difference and p are None below two shared seeds."""
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


def one_sample_difference(values, value):
    """Mean of ``values`` minus ``value`` and the two-sided one-sample t-test p of ``values``
    against ``value``: ``(difference, p)`` (needs two values or more)."""
    from scipy import stats

    diff = statistics.mean(values) - value
    if len(set(values)) == 1:  # no spread, as in paired_difference
        return diff, 1.0 if diff == 0 else 0.0
    return diff, float(stats.ttest_1samp(values, value).pvalue)


def seed_test(ours, theirs, metric, ours_fixed=True, theirs_fixed=True):
    """``ours`` against ``theirs`` ({seed: run row}) on ``metric``, as a :class:`SeedTest`:
    paired over the shared seeds when both ran two seeds or more; one-sample when one side ran
    once and the other two seeds or more (that one run taken as a fixed value: pass
    ``ours_fixed`` / ``theirs_fixed`` False for a side whose single run is only the first of
    several seeds); no test otherwise (then the difference is that of the means, when both
    ran)."""
    mine = [float(row[metric]) for row in ours.values()]
    other = [float(row[metric]) for row in theirs.values()]
    runs = (len(mine), len(other))
    if len(mine) >= 2 and len(other) >= 2:
        seeds, diff, p = paired_difference(ours, theirs, metric)
        if diff is not None:
            return SeedTest(PAIRED, seeds, diff, p, runs)
    elif len(mine) >= 2 and len(other) == 1 and theirs_fixed:
        diff, p = one_sample_difference(mine, other[0])
        return SeedTest(ONE_SAMPLE, len(mine), diff, p, runs)
    elif len(mine) == 1 and len(other) >= 2 and ours_fixed:
        diff, p = one_sample_difference(other, mine[0])
        return SeedTest(ONE_SAMPLE, len(other), -diff, p, runs)
    shared = len(set(ours) & set(theirs))
    if mine and other:
        return SeedTest(NO_TEST, shared, statistics.mean(mine) - statistics.mean(other), None,
                        runs)
    return SeedTest(NO_TEST, shared, None, None, runs)


def p_text(p):
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def describe(test):
    """How a :class:`SeedTest` was made, for a report: 'paired, 5 seeds', 'one-sample, 5
    seeds against 1 run', 'no test: 1 run each'."""
    if test.kind == PAIRED:
        return f"paired, {test.seeds} seeds"
    if test.kind == ONE_SAMPLE:
        return f"one-sample, {test.seeds} seeds against 1 run"
    if test.difference is None:
        return "no test: a side has no run"
    if test.runs == (1, 1):
        return "no test: 1 run each"
    return f"no test: {test.seeds} shared seed(s)"
