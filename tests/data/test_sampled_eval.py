"""Sampled evaluation (``mode: uni100``) over the session dataset: every test row is scored
once, against its own target, as RecBole's own dataset scores it."""

import pytest

from tests.conftest import build_model

UNI100 = {"split": {"LS": "valid_and_test"}, "order": "TO", "group_by": "user",
          "mode": "uni100"}


def positives(loader):
    """Sorted ``(user, positive item)`` of every row a sampled-evaluation loader scores."""
    pairs = []
    for data, rows, positive_users, positive_items in loader:
        user_of = {}
        for row, user in zip(rows.tolist(), data["user_id"].tolist()):
            user_of.setdefault(row, user)
        pairs += [(user_of[u], i) for u, i in zip(positive_users.tolist(),
                                                   positive_items.tolist())]
    return sorted(pairs)


def test_the_session_dataset_scores_each_test_target_once_as_recboles_dataset_does(data_root):
    _, _, _, session_test = build_model("HierTCN", data_root, eval_args=UNI100)
    _, _, _, recbole_test = build_model("GRU4Rec", data_root, eval_args=UNI100,
                                        use_session_dataset=False, MAX_ITEM_LIST_LENGTH=20,
                                        train_neg_sample_args=None)
    ours = positives(session_test)
    assert ours == positives(recbole_test)
    assert len(ours) == len(set(user for user, _ in ours)) > 3  # one test row per user
    data, *_ = next(iter(session_test))
    assert data["item_id"].numel() == 101 * len(set(data["user_id"].tolist()))


def test_a_view_is_never_reordered(data_root):
    _, _, _, test = build_model("HierTCN", data_root, eval_args=UNI100)
    with pytest.raises(ValueError, match="cannot be sorted by 'timestamp'"):
        test._dataset.sort(by="timestamp")
