"""The per-group breakdown of a trained checkpoint: groups told apart right, and the whole equal
to the run's own evaluation."""

import pytest
import torch
from recbole.data.interaction import Interaction

from benchmarks import breakdown
from tests.conftest import small_config

CONFIG = {"ITEM_ID_FIELD": "item_id", "LIST_SUFFIX": "_list",
          "ITEM_LIST_LENGTH_FIELD": "item_length", "session_field": "session_id",
          "MAX_ITEM_LIST_LENGTH": 3}


def test_groups_follow_the_session_ids_and_the_history_read():
    rows = Interaction({
        "item_id": torch.tensor([5, 6, 7, 8]),
        "session_id": torch.tensor([2, 3, 3, 1]),
        "item_length": torch.tensor([3, 3, 2, 0]),
        # history rows, padded at the end: the last real entry is the previous interaction
        "item_id_list": torch.tensor([[5, 1, 2, 0], [1, 2, 3, 0], [4, 7, 0, 0], [0, 0, 0, 0]]),
        "session_id_list": torch.tensor([[1, 1, 2, 0], [2, 2, 2, 0], [3, 3, 0, 0], [0, 0, 0, 0]]),
    })
    groups = breakdown.target_groups(rows, CONFIG)
    assert groups["opens a session"].tolist() == [False, True, False, True]
    assert groups["bought before"].tolist() == [True, False, True, False]
    assert groups["full window"].tolist() == [True, True, False, False]
    for one, other in (("opens a session", "continues a session"),
                       ("bought before", "new to the user"), ("full window", "shorter history")):
        assert (groups[one] ^ groups[other]).all()


def test_padding_in_the_history_is_never_a_purchase():
    rows = Interaction({
        "item_id": torch.tensor([3]), "session_id": torch.tensor([1]),
        "item_length": torch.tensor([1]), "item_id_list": torch.tensor([[4, 3, 3]]),
        "session_id_list": torch.tensor([[1, 1, 1]]),
    })
    assert not breakdown.target_groups(rows, CONFIG)["bought before"].item()


def test_ranks_are_the_positions_in_the_top_k():
    scores = torch.tensor([[0.0, 0.9, 0.5, 0.1], [0.0, 0.1, 0.2, 0.3]])
    hit, reciprocal = breakdown.hits_and_ranks(scores, torch.tensor([2, 1]), k=2)
    assert hit.tolist() == [True, False]
    assert reciprocal.tolist() == [0.5, 0.0]


@pytest.mark.parametrize("model", ["HierTCN", "GRU4Rec"])
def test_a_checkpoints_whole_equals_its_runs_test_figures(data_root, in_tmp_dir, model, capsys):
    from recbole_hiertcn.quick_start import run

    config = small_config(data_root, "tiny_sess", checkpoint_dir=str(in_tmp_dir / "saved"),
                          eval_args={"split": {"last_session": "valid_and_test"}, "order": "TO",
                                     "group_by": "user", "mode": "full"})
    result = run(model=model, dataset="tiny_sess", config_dict=config)
    name, groups, reported = breakdown.breakdown(result["model_file"], "test", 10)
    assert name == model
    assert groups["all"][1] == pytest.approx(result["test_result"]["recall@10"], abs=1e-4)
    assert groups["all"][2] == pytest.approx(result["test_result"]["mrr@10"], abs=1e-4)
    total = groups["all"][0]
    assert groups["opens a session"][0] + groups["continues a session"][0] == total
    assert groups["bought before"][0] + groups["new to the user"][0] == total
    assert groups["full window"][0] + groups["shorter history"][0] == total
    assert 0 < groups["opens a session"][0] < total  # last_session: one opening per user
    assert breakdown.main([result["model_file"]]) == 0
    assert f"| {model} (all) |" in capsys.readouterr().out
