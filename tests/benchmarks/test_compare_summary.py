"""benchmarks.compare.summary on its own: the leader, the focus model against the best other
model, and which test sets the leader against each model (hand-checkable figures)."""

import pytest
from scipy import stats

from benchmarks.compare.significance import NO_TEST, ONE_SAMPLE, PAIRED
from benchmarks.compare.store import METRICS
from benchmarks.compare.summary import (against_best_other, focus_over_best_other, leader,
                                        leader_against_others, summarise)


def row(model, seed, recall, mrr):
    values = {field: "0.1" for field in METRICS + [
        "valid_score", "s_per_epoch", "best_epoch", "peak_rss_mib"]}
    return {**values, "model": model, "protocol": "LS", "seed": str(seed), "status": "ok",
            "setting": "", "recall@10": str(recall), "mrr@10": str(mrr)}


def example(focus="HierTCN"):
    """Five labels: two of HierTCN, two seeded baselines, a deterministic model run once
    (the leader on MRR@10); the best other model is GRU4Rec on Recall@10, VSTAN on MRR@10."""
    plan = {"dataset": "d", "protocols": ["LS"], "seeds": [1, 2, 3],
            "models": {"HierTCN": {"model": "HierTCN"},
                       "HierTCN-x": {"model": "HierTCN", "dropout_prob": 0.3},
                       "GRU4Rec": {"model": "GRU4Rec"}, "HRNN": {"model": "HRNN"},
                       "VSTAN": {"model": "VSTAN", "seeds": [1]}}}
    if focus:
        plan["focus"] = focus
    runs = ([row("HierTCN", s, 0.30 + 0.01 * s, 0.13 + 0.01 * s) for s in (1, 2, 3)]
            + [row("HierTCN-x", s, 0.44, 0.200 + 0.001 * s) for s in (1, 2)]
            + [row("GRU4Rec", s, 0.40, 0.10) for s in (1, 2, 3)]
            + [row("HRNN", s, 0.20, 0.16 + 0.002 * s) for s in (1, 2, 3)]
            + [row("VSTAN", 1, 0.35, 0.21)])
    return plan, runs, summarise(runs, plan)


def test_the_summary_is_mean_spread_and_count_in_plan_order():
    plan, runs, table = example()
    rows = table["LS"]
    assert list(rows) == ["HierTCN", "HierTCN-x", "GRU4Rec", "HRNN", "VSTAN"]
    mean, spread, count = rows["HierTCN"]["recall@10"]
    assert (mean, spread, count) == (pytest.approx(0.32), pytest.approx(0.01), 3)
    assert rows["VSTAN"]["mrr@10"] == (0.21, 0.0, 1)


def test_the_leader_is_the_best_mean_test_mrr_first_in_plan_order_on_ties():
    plan, runs, table = example()
    assert leader(table["LS"]) == "VSTAN"
    tied = {"B": {"mrr@10": (0.2, 0, 1)}, "A": {"mrr@10": (0.2, 0, 1)},
            "C": {"mrr@10": (0.1, 0, 1)}}
    assert leader(tied) == "B" and leader({}) is None


def test_each_focus_label_meets_the_best_other_model_of_each_metric():
    plan, runs, table = example()
    versus = against_best_other(runs, plan, {}, table)["LS"]
    assert list(versus) == ["HierTCN", "HierTCN-x"]  # HRNN, GRU4Rec, VSTAN are not HierTCN
    (best_r, ratio_r, test_r), (best_m, ratio_m, test_m) = versus["HierTCN"]
    assert (best_r, best_m) == ("GRU4Rec", "VSTAN")  # the best differs by metric
    assert ratio_r == pytest.approx(0.32 / 0.40) and ratio_m == pytest.approx(0.15 / 0.21)
    assert (test_r.kind, test_r.seeds) == (PAIRED, 3)
    assert test_r.difference == pytest.approx(-0.08)
    assert test_r.p == pytest.approx(stats.ttest_rel([0.31, 0.32, 0.33], [0.40] * 3).pvalue)
    assert (test_m.kind, test_m.seeds) == (ONE_SAMPLE, 3)  # VSTAN runs once: a fixed value
    assert test_m.difference == pytest.approx(0.15 - 0.21)
    assert test_m.p == pytest.approx(stats.ttest_1samp([0.14, 0.15, 0.16], 0.21).pvalue)
    recall_x, _ = versus["HierTCN-x"]
    assert recall_x[:2] == ("GRU4Rec", pytest.approx(1.10))
    assert recall_x[2].seeds == 2  # paired on seeds 1 and 2 only
    assert focus_over_best_other(table["LS"], plan) == [
        ("recall@10", "HierTCN-x", "GRU4Rec", pytest.approx(0.44 / 0.40)),
        ("mrr@10", "HierTCN-x", "VSTAN", pytest.approx(0.2015 / 0.21))]


def test_without_a_focus_there_is_no_focus_comparison():
    plan, runs, table = example(focus=None)
    assert against_best_other(runs, plan, {}, table) == {}
    assert focus_over_best_other(table["LS"], plan) == []
    # with a focus but no other model in the table, neither
    plan, runs, table = example()
    only_focus = {label: table["LS"][label] for label in ("HierTCN", "HierTCN-x")}
    assert against_best_other(runs, plan, {}, {"LS": only_focus}) == {}


def test_the_leader_meets_every_other_model_paired_or_one_sample():
    plan, runs, table = example()
    first, tests = leader_against_others(runs, plan, {}, table)["LS"]
    assert first == "VSTAN" and list(tests) == ["HierTCN", "HierTCN-x", "GRU4Rec", "HRNN"]
    recall, mrr = tests["HRNN"]
    # the leader ran once, HRNN three seeds: HRNN's seeds against the leader's one value
    assert (mrr.kind, mrr.seeds) == (ONE_SAMPLE, 3)
    assert mrr.difference == pytest.approx(0.21 - 0.164)  # the leader minus the model
    assert mrr.p == pytest.approx(stats.ttest_1samp([0.162, 0.164, 0.166], 0.21).pvalue)
    assert recall.kind == ONE_SAMPLE and recall.p == 0.0  # HRNN's Recall@10 has no spread
    _, mrr_x = tests["HierTCN-x"]
    assert mrr_x.p == pytest.approx(stats.ttest_1samp([0.201, 0.202], 0.21).pvalue)


def test_a_seeded_model_part_way_through_its_seeds_is_not_a_fixed_value():
    plan, runs, table = example()
    runs = [r for r in runs if not (r["model"] == "HRNN" and r["seed"] != "1")]
    runs = [r for r in runs if r["model"] != "VSTAN"]  # the leader: HierTCN-x, two seeds
    table = summarise(runs, plan)
    first, tests = leader_against_others(runs, plan, {}, table)["LS"]
    assert first == "HierTCN-x"
    assert tests["HRNN"][1].kind == NO_TEST  # one of its three seeds so far
    assert tests["HierTCN"][1].kind == PAIRED and tests["HierTCN"][1].seeds == 2


def test_a_protocol_of_one_model_has_no_leader_tests():
    plan, runs, table = example()
    assert leader_against_others(runs, plan, {}, {"LS": {"HRNN": table["LS"]["HRNN"]}}) == {}
