"""benchmarks.blend: the two ends of the blend are the two runs' own figures, a masked item
stays masked, and checkpoints of different evaluation rows are refused."""

import re

import pytest
import torch

from benchmarks import blend
from recbole_hiertcn.data.protocols import eval_args
from recbole_hiertcn.quick_start import run
from tests.conftest import small_config


def _table(printed):
    """{label or weight: (valid MRR, test Recall, test MRR)} of the printed table."""
    rows = {}
    for line in printed.splitlines():
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        if len(cells) == 5 and re.fullmatch(r"[0-9.]+|inf", cells[0]):
            rows[cells[0]] = tuple(float(c) for c in cells[1:4])
    return rows


def test_the_blends_ends_are_the_two_runs_own_figures(data_root, in_tmp_dir, capsys):
    settings = dict(epochs=2, topk=[10, 20], metrics=["Recall", "MRR"])
    neural = run("HierTCN", "tiny_sess", config_dict=small_config(data_root, "tiny_sess",
                                                                  **settings))
    knn = run("VSTAN", "tiny_sess", config_dict=small_config(
        data_root, "tiny_sess", k=5, sample_size=0, exclude_running_items=True, **settings))
    assert blend.main([neural["model_file"], knn["model_file"]]) == 0
    table = _table(capsys.readouterr().out)
    assert len(table) == len(blend.WEIGHTS) + 2
    for weight, ran in (("0", neural), ("inf", knn)):
        valid_mrr, test_recall, test_mrr = table[weight]
        assert valid_mrr == pytest.approx(ran["best_valid_result"]["mrr@10"], abs=1e-4)
        assert test_recall == pytest.approx(ran["test_result"]["recall@10"], abs=1e-4)
        assert test_mrr == pytest.approx(ran["test_result"]["mrr@10"], abs=1e-4)


def test_checkpoints_of_other_evaluation_rows_are_refused(data_root, in_tmp_dir):
    """One dataset, two protocols: the last event against the last session as the test."""
    first = run("HierTCN", "tiny_sess", config_dict=small_config(
        data_root, "tiny_sess", eval_args=eval_args("LS")))
    other = run("HierTCN", "tiny_sess", config_dict=small_config(
        data_root, "tiny_sess", eval_args=eval_args("last_session")))
    with pytest.raises(SystemExit, match="evaluation rows differ"):
        blend.main([first["model_file"], other["model_file"]])


def test_a_masked_item_stays_masked_and_a_row_the_second_model_leaves_empty_is_the_first():
    first = torch.tensor([[0.0, 3.0, 1.0, 2.0], [0.0, 1.0, 2.0, 3.0]])
    second = torch.tensor([[float("-inf"), float("-inf"), 1.0, 0.5], [0.0, 0.0, 0.0, 0.0]])
    scores = blend.blended(first, second, 4.0)
    assert torch.isneginf(scores[0, :2]).all()  # item 1, the first model's favourite, masked
    assert scores[0, 2] > scores[0, 3]  # the second model's 1.0 outweighs the first's margin
    assert torch.equal(scores[1], torch.log_softmax(first[1], dim=0))


def test_rows_of_batches_of_other_sizes_are_paired_in_order_and_a_missing_row_is_refused():
    def batches(sizes):
        start = 0
        for size in sizes:
            rows = torch.arange(start, start + size)
            yield rows, rows * 10, rows.float().unsqueeze(1)
            start += size

    pairs = list(blend.aligned(batches([3, 2]), batches([1, 4])))
    assert [len(first[0]) for first, _ in pairs] == [1, 2, 2]
    for first, second in pairs:
        assert all(torch.equal(a, b) for a, b in zip(first, second))
    assert torch.cat([first[0] for first, _ in pairs]).tolist() == [0, 1, 2, 3, 4]
    with pytest.raises(SystemExit, match="one has more rows"):
        list(blend.aligned(batches([3, 2]), batches([3, 1])))
