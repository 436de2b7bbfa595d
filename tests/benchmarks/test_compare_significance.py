"""benchmarks.compare.significance on its own: which test is made, and its p against scipy."""

import pytest
from scipy import stats

from benchmarks.compare.significance import (NO_TEST, ONE_SAMPLE, PAIRED, SeedTest, describe,
                                             one_sample_difference, p_text, paired_difference,
                                             seed_test)


def runs(**values):
    """{seed: row} from seed_<n>=value."""
    return {name.split("_")[1]: {"mrr@10": str(value)} for name, value in values.items()}


def test_two_seeded_models_are_paired_over_the_seeds_both_finished():
    ours = runs(s_1=0.30, s_2=0.32, s_3=0.35, s_4=0.50)  # seed 4: theirs did not finish it
    theirs = runs(s_1=0.28, s_2=0.31, s_3=0.30)
    test = seed_test(ours, theirs, "mrr@10")
    assert (test.kind, test.seeds, test.runs) == (PAIRED, 3, (4, 3))
    assert test.difference == pytest.approx((0.02 + 0.01 + 0.05) / 3)
    expected = stats.ttest_rel([0.30, 0.32, 0.35], [0.28, 0.31, 0.30]).pvalue
    assert test.p == pytest.approx(expected) and 0.15 < test.p < 0.16  # t = 2.219, 2 df
    assert paired_difference(ours, theirs, "mrr@10") == (3, test.difference, test.p)
    assert describe(test) == "paired, 3 seeds"


def test_a_model_run_once_is_a_fixed_value_for_the_others_seeds():
    seeded, once = runs(s_1=0.30, s_2=0.32, s_3=0.34), runs(s_1=0.29)
    test = seed_test(seeded, once, "mrr@10")
    assert (test.kind, test.seeds, test.difference) == (ONE_SAMPLE, 3, pytest.approx(0.03))
    expected = stats.ttest_1samp([0.30, 0.32, 0.34], 0.29).pvalue  # t = 0.03 / (0.02 / 3 ** .5)
    assert test.p == pytest.approx(expected) and 0.12 < test.p < 0.125
    assert describe(test) == "one-sample, 3 seeds against 1 run"
    # the other way round: the difference is still the first side minus the second
    reverse = seed_test(runs(s_2=0.40), seeded, "mrr@10")
    assert (reverse.kind, reverse.seeds) == (ONE_SAMPLE, 3)
    assert reverse.difference == pytest.approx(0.40 - 0.32)
    assert reverse.p == pytest.approx(stats.ttest_1samp([0.30, 0.32, 0.34], 0.40).pvalue)
    assert one_sample_difference([0.30, 0.32, 0.34], 0.29) == (test.difference, test.p)


def test_no_test_when_the_seeds_do_not_allow_one():
    one_each = seed_test(runs(s_1=0.3), runs(s_1=0.2), "mrr@10")
    assert (one_each.kind, one_each.p) == (NO_TEST, None)
    assert one_each.difference == pytest.approx(0.1) and describe(one_each) == "no test: 1 run each"
    # a seeded model that has run one of its seeds so far is no fixed value
    first_seed = seed_test(runs(s_1=0.3, s_2=0.4), runs(s_1=0.2), "mrr@10", theirs_fixed=False)
    assert (first_seed.kind, first_seed.seeds, first_seed.p) == (NO_TEST, 1, None)
    assert first_seed.difference == pytest.approx(0.15)
    assert describe(first_seed) == "no test: 1 shared seed(s)"
    apart = seed_test(runs(s_1=0.3, s_2=0.4), runs(s_2=0.2, s_3=0.2), "mrr@10")
    assert (apart.kind, apart.seeds, apart.difference) == (NO_TEST, 1, pytest.approx(0.15))
    nothing = seed_test(runs(s_1=0.3, s_2=0.4), {}, "mrr@10")
    assert nothing == SeedTest(NO_TEST, 0, None, None, (2, 0))


def test_without_spread_the_sign_decides():
    same_gap = seed_test(runs(s_1=0.5, s_2=0.75), runs(s_1=0.25, s_2=0.5), "mrr@10")
    assert same_gap.kind == PAIRED and same_gap.p == 0.0
    level = seed_test(runs(s_1=0.3, s_2=0.3), runs(s_1=0.3), "mrr@10")
    assert (level.kind, level.difference, level.p) == (ONE_SAMPLE, 0.0, 1.0)


def test_p_text():
    assert p_text(0.0004) == "< 0.001" and p_text(0.0123) == "0.012"
