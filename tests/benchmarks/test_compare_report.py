"""benchmarks.compare.report on its own: results.md's text (the leader in bold, the focus
table only with a focus, the tests), tuning.md and the charts."""

import os

import pytest

from benchmarks.compare.report import (compute_lines, markdown, readme_block, tuning_markdown,
                                      update_readme, write_summary)
from benchmarks.compare.store import record_run
from benchmarks.compare.summary import against_best_other, leader_against_others
from tests.benchmarks.test_compare_summary import example


def report_of(plan, runs, table):
    return markdown(table, plan, "cmd", leader_against_others(runs, plan, {}, table),
                    against_best_other(runs, plan, {}, table))


def line_of(report, start):
    return next(text for text in report.splitlines() if text.startswith(start))


def test_the_leader_is_bold_in_the_table_of_every_model():
    plan, runs, table = example()
    report = report_of(plan, runs, table)
    assert report.startswith("# d: comparison\n") and "HierTCN against" not in report
    assert "In bold: the leader, the model with the best mean test MRR@10" in report
    row = line_of(report, "| **VSTAN** |")
    assert row.startswith("| **VSTAN** | 0.1000 ± 0.0000 | **0.3500 ± 0.0000** |")
    assert "| **0.2100 ± 0.0000** |" in row and row.endswith("| 1 |")
    for label in ("HierTCN", "HierTCN-x", "GRU4Rec", "HRNN"):
        assert "**" not in line_of(report, f"| {label} | 0.1000")


def test_the_headline_and_the_focus_table():
    plan, runs, table = example()
    report = report_of(plan, runs, table)
    assert ("Leader on test MRR@10: VSTAN. Best HierTCN variant / best other model: "
            "Recall@10 1.10x (HierTCN-x / GRU4Rec), MRR@10 0.96x (HierTCN-x / VSTAN).") in report
    assert "Each HierTCN variant against the best other model" in report
    focus_rows = [text for text in report.splitlines() if text.startswith("| HierTCN |")]
    # paired: t = -0.08 / (0.01 / 3 ** 0.5), p 0.005; one-sample: t = -0.06 / (0.01 / 3 ** 0.5)
    assert focus_rows[1] == (
        "| HierTCN | 0.80x GRU4Rec, -0.0800 (p 0.005, paired, 3 seeds) | 0.71x VSTAN, "
        "-0.0600 (p 0.009, one-sample, 3 seeds against 1 run) |")


def test_the_leader_against_every_other_model():
    plan, runs, table = example()
    report = report_of(plan, runs, table)
    assert "The leader, VSTAN, against every other model" in report
    assert ("| HRNN | one-sample, 3 seeds against 1 run | +0.1500 (< 0.001) | +0.0460 (< 0.001) |"
            in report)
    assert ("| HierTCN-x | one-sample, 2 seeds against 1 run | -0.0900 (< 0.001) | +0.0085 "
            "(0.037) |") in report  # t = 0.0085 / (0.000707 / 2 ** 0.5), 1 df


def test_a_plan_without_focus_gets_no_focus_table():
    plan, runs, table = example(focus=None)
    report = report_of(plan, runs, table)
    assert "Leader on test MRR@10: VSTAN.\n" in report
    assert "variant" not in report and "best other model" not in report
    assert "The leader, VSTAN, against every other model" in report


def test_the_summary_is_written_with_its_charts(tmp_path):
    plan, runs, _ = example()
    out = str(tmp_path)
    for run in runs:
        record_run(os.path.join(out, "runs.csv"), run)
    table = write_summary(plan, out, "python -m benchmarks.compare d.yaml")
    assert list(table["LS"])[-1] == "VSTAN"
    report = (tmp_path / "results.md").read_text()
    assert "Regenerate with `python -m benchmarks.compare d.yaml`" in report
    assert "| **VSTAN** |" in report
    for name in ("metrics_LS.png", "validation_LS.png"):
        assert (tmp_path / name).stat().st_size > 1000
    assert not (tmp_path / "tuning.md").exists()  # not a tuned plan


def test_the_compute_section_sums_each_models_hours_and_counts_a_reused_trial_once():
    trial = {"model": "HRNN", "protocol": "LS", "seed": "1", "setting": '{"lr": 1}',
             "wall_s": "1800.0", "status": "ok"}
    other_trial = dict(trial, setting='{"lr": 2}', wall_s="900.0", status="failed")
    runs = [trial, dict(trial, seed="2", wall_s="3600.0"),
            {"model": "SKNN", "protocol": "LS", "seed": "1", "setting": "", "wall_s": "36.0",
             "status": "ok"}]
    lines = compute_lines(runs, [trial, other_trial])
    assert lines[0] == "## Compute"
    assert "| HRNN | 3 | 1.75 |" in lines  # 1800 + 900 + 3600 s; the reused trial once
    assert "| SKNN | 1 | 0.01 |" in lines
    assert "| **total** | 4 | **1.76** |" in lines
    assert compute_lines([], []) == []


def test_the_readme_table_sets_every_model_against_the_best_other_one():
    plan, _, table = example()
    lines = readme_block(table, plan, "results/d", "LS")
    # the best model that is not HierTCN: GRU4Rec on Recall@10 (0.40), VSTAN on MRR@10 (0.21)
    assert lines[0] == ("| model | Recall@10 | MRR@10 | Recall@10 / GRU4Rec | MRR@10 / VSTAN | "
                        "seeds | s/epoch |")
    assert "| HierTCN-x | 0.4400 ± 0.0000 | 0.2015 ± 0.0007 | 1.10x | 0.96x | 2 |" in "\n".join(
        lines)
    assert next(line for line in lines if line.startswith("| **VSTAN** |")).startswith(
        "| **VSTAN** | **0.3500** | **0.2100** | 0.87x | 1.00x | 1 |")  # 0.35 / 0.40
    assert lines[-1] == "![d, LS: Recall@10, MRR@10, NDCG@10](results/d/metrics_LS.png)"
    assert readme_block(table, plan, "results/d", "user_holdout") == [
        "(no finished run of protocol `user_holdout` yet)"]


def test_only_the_readmes_blocks_of_the_results_folder_are_rewritten(tmp_path):
    plan, _, table = example()
    readme = tmp_path / "README.md"
    text = ("# title\n\n<!-- compare: results/d LS -->\nold table\n<!-- /compare -->\n"
            "kept paragraph\n<!-- compare: results/other LS -->\nother\n<!-- /compare -->\n")
    readme.write_text(text)
    assert update_readme(str(readme), "results/d", table, plan) == 1
    new = readme.read_text()
    assert "old table" not in new and "| **VSTAN** |" in new
    assert new.startswith("# title\n\n<!-- compare: results/d LS -->\n| model |")
    assert new.endswith("<!-- /compare -->\nkept paragraph\n<!-- compare: results/other LS -->"
                        "\nother\n<!-- /compare -->\n")
    readme.write_text("<!-- compare: results/d LS -->\nno end\n")
    with pytest.raises(ValueError, match="has no <!-- /compare -->"):
        update_readme(str(readme), "results/d", table, plan)
    assert readme.read_text() == "<!-- compare: results/d LS -->\nno end\n"  # left whole


def test_tuning_md_marks_the_chosen_setting():
    plan = {"dataset": "d", "protocols": ["LS"], "tuning": {"seed": 1}}
    trials = {"A": [{"lr": 1}, {"lr": 2}]}
    rows = [{"model": "A", "protocol": "LS", "status": "ok", "setting": f'{{"lr": {lr}}}',
             "valid_score": score, "recall@10": "0.3", "mrr@10": "0.1", "epochs": "4",
             "s_per_epoch": "1.5"} for lr, score in ((1, "0.2"), (2, "0.25"))]
    text = tuning_markdown(plan, trials, rows, "cmd")
    assert "| A | lr 2 **chosen** | 0.25 |" in text and "| A | lr 1 | 0.2 |" in text
    assert "| A | lr 2 | (not run yet)" in tuning_markdown(plan, trials, rows[:1], "cmd")


def test_a_resumed_run_counts_its_epochs_not_only_its_last_attempt():
    # wall time 958 s is the last attempt's; 49 epochs at a 52 s median trained for longer
    resumed = {"model": "HRNN", "protocol": "LS", "seed": "1", "setting": "",
               "wall_s": "958.0", "s_per_epoch": "52.00", "epochs": "49", "status": "ok"}
    whole = dict(resumed, seed="2", wall_s="3000.0")  # its epochs (2548 s) are within its wall
    lines = compute_lines([resumed, whole], [])
    assert "| HRNN | 2 | 1.54 |" in lines  # (2548 + 3000) / 3600
