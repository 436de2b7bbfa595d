"""benchmarks.top_of_list counts what a model ranks first against each test row's history."""

import torch

from benchmarks.top_of_list import top_of_list
from tests.conftest import build_model


def test_a_model_that_ranks_the_last_item_first_is_counted_on_every_row(data_root):
    _, model, _, test = build_model("HierTCN", data_root, "tiny_time")

    def last_item_first(interaction):
        history, lengths = interaction[model.ITEM_SEQ], interaction[model.ITEM_SEQ_LEN]
        scores = torch.zeros(len(history), model.n_items)
        scores[torch.arange(len(history)), history[torch.arange(len(history)), lengths - 1]] = 1
        return scores

    model.full_sort_predict = last_item_first
    shares = top_of_list(model, test)
    assert shares["rows"] > 0
    assert shares["top1_last_item"] == 1.0 and shares["top1_in_history"] == 1.0
    targets = torch.cat([batch[0][model.ITEM_ID] for batch in test])
    lasts = torch.cat([b[0][model.ITEM_SEQ].gather(1, (b[0][model.ITEM_SEQ_LEN] - 1)
                                                  .unsqueeze(1)).squeeze(1) for b in test])
    assert shares["recall@1"] == int((targets == lasts).sum()) / len(targets)

    def target_first(interaction):
        scores = torch.zeros(len(interaction), model.n_items)
        scores[torch.arange(len(interaction)), interaction[model.ITEM_ID]] = 1
        return scores

    model.full_sort_predict = target_first
    assert top_of_list(model, test)["recall@1"] == 1.0
