"""benchmarks.compare.report on its own: results.md's text (the leader in bold, the focus
table only with a focus, the tests), tuning.md and the charts."""

import os

from benchmarks.compare.report import compute_lines, markdown, tuning_markdown, write_summary
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


def test_tuning_md_marks_the_chosen_setting():
    plan = {"dataset": "d", "protocols": ["LS"], "tuning": {"seed": 1}}
    trials = {"A": [{"lr": 1}, {"lr": 2}]}
    rows = [{"model": "A", "protocol": "LS", "status": "ok", "setting": f'{{"lr": {lr}}}',
             "valid_score": score, "recall@10": "0.3", "mrr@10": "0.1", "epochs": "4",
             "s_per_epoch": "1.5"} for lr, score in ((1, "0.2"), (2, "0.25"))]
    text = tuning_markdown(plan, trials, rows, "cmd")
    assert "| A | lr 2 **chosen** | 0.25 |" in text and "| A | lr 1 | 0.2 |" in text
    assert "| A | lr 2 | (not run yet)" in tuning_markdown(plan, trials, rows[:1], "cmd")
