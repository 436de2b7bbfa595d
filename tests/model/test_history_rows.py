"""Evaluation rows in length groups, trimmed to their longest history: same outputs."""

import pytest
import torch

from recbole_hiertcn.model import history_rows
from tests.conftest import build_model


def full_batch(test_data):
    """Every evaluation row of the test split as one interaction."""
    dataset = test_data._dataset
    return dataset[torch.arange(len(dataset))]


@pytest.mark.parametrize("model, dataset, overrides", [
    ("HierTCN", "tiny_time", {}),
    ("HierTCN", "tiny_sess", {"gap_decay": 3600.0, "high_level": "gru"}),
    ("HierTCN", "tiny_sess", {"target_session_known": False, "low_level": "gru"}),
    ("HRNN", "tiny_sess", {}),
])
def test_grouped_trimmed_rows_score_like_the_whole_padded_batch(data_root, monkeypatch, model,
                                                                 dataset, overrides):
    _, network, _, test = build_model(model, data_root, dataset, max_history=200,
                                      eval_args={"split": {"last_session": "valid_and_test"},
                                                 "order": "TO", "mode": "full"}, **overrides)
    rows = full_batch(test)
    lengths = rows["item_length"]
    assert len(lengths) > 20 and lengths.max() < 200 and lengths.min() < lengths.max()
    with torch.no_grad():
        grouped = network.full_sort_predict(rows)  # one group: all rows fit
        monkeypatch.setattr(history_rows, "EVAL_GROUP_ROWS", 7)
        small_groups = network.full_sort_predict(rows)
        # each row alone, trimmed to its own history
        one_by_one = torch.cat([network.full_sort_predict(rows[torch.tensor([i])])
                                for i in range(len(lengths))])
    torch.testing.assert_close(small_groups, grouped, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(one_by_one, grouped, rtol=1e-5, atol=1e-5)


def test_trim_keeps_every_column_a_history_reaches():
    lengths = torch.tensor([3, 1, 0])
    items = torch.arange(1, 19).view(3, 6)
    (trimmed, none) = history_rows.trim_to_longest(lengths, items, None)
    assert none is None and torch.equal(trimmed, items[:, :3])
    (one,) = history_rows.trim_to_longest(torch.tensor([0, 0]), items[:2])
    assert one.shape == (2, 1)
