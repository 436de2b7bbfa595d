"""Sequence-mode training against RecBole's one-target-at-a-time path, for fixed weights."""

import pytest
import torch

from recbole.config import Config
from recbole.data.dataset import SequentialDataset
from recbole.utils import init_seed

from recbole_hiertcn import HierTCN
from recbole_hiertcn.data.dataloader import SequenceTrainDataLoader
from recbole_hiertcn.data.dataset import SessionDataset
from tests.conftest import small_config


def setup(data_root, dataset, **overrides):
    settings = small_config(data_root, dataset, dataset == "tiny_sess", MAX_ITEM_LIST_LENGTH=60,
                            **overrides)
    config = Config(model="HierTCN", dataset=dataset, config_dict=settings)
    init_seed(config["seed"], True)
    data = SessionDataset(config)
    train, valid, test = data.build()
    model = HierTCN(config, train)
    model.eval()
    return config, data, model, train, test


@pytest.mark.parametrize("dataset, loss_type", [("tiny_sess", "CE"), ("tiny_time", "CE"),
                                                ("tiny_time", "BPR")])
def test_sequence_loss_is_the_mean_of_recboles_per_target_losses(data_root, dataset, loss_type):
    extra = {"train_neg_sample_args": {"distribution": "uniform", "sample_num": 1}} \
        if loss_type == "BPR" else {}
    config, _, model, train, _ = setup(data_root, dataset, loss_type=loss_type, **extra)
    loader = SequenceTrainDataLoader(config, train, shuffle=True)
    # RecBole's own rows for the same training targets (history never truncated here)
    reference = SequentialDataset(config).build()[0].inter_feat
    with torch.no_grad():
        total, count, negatives = 0.0, 0, {}
        for batch in loader:
            mask = batch["seq_target_mask"]
            total += float(model.calculate_loss(batch)) * int(mask.sum())
            count += int(mask.sum())
            if loss_type == "BPR":  # remember the negative of each (user, position)
                users = batch["user_id"].unsqueeze(1).expand_as(mask)[mask]
                positions = torch.arange(mask.size(1)).expand_as(mask)[mask]  # one chunk a user
                for key, neg in zip(zip(users.tolist(), positions.tolist()),
                                    batch["seq_neg_item_id"][mask][:, 0].tolist()):
                    negatives[key] = neg
        assert count == len(reference)
        one_by_one = []
        for i in range(len(reference)):
            row = reference[torch.tensor([i])]
            if loss_type == "BPR":
                key = (int(row["user_id"]), int(row["item_length"]))
                row.interaction["neg_item_id"] = torch.tensor([negatives[key]])
            one_by_one.append(float(model.calculate_loss(row)))
    assert total / count == pytest.approx(sum(one_by_one) / len(one_by_one), rel=1e-5)


def test_full_sort_predict_equals_the_sequence_output_at_that_position(data_root):
    config, data, model, _, test = setup(data_root, "tiny_sess")
    rows = test[torch.arange(len(test))]
    with torch.no_grad():
        predicted = model.full_sort_predict(rows)
        for i, target in enumerate(test.targets.tolist()[:12]):
            start = int(data.position_user_start[target])
            window = torch.arange(start, target + 1)
            items = data.inter_feat["item_id"][window].unsqueeze(0)
            sessions = data.inter_feat["session_id"][window].unsqueeze(0)
            outputs = model.encode(items, model.session_opens(sessions))
            assert torch.allclose(predicted[i], model.score_all(outputs[0, -1]), atol=1e-5)


def test_both_train_modes_learn_beyond_chance(data_root, in_tmp_dir):
    """Training through either mode ends well above a random ranking of the 60 items."""
    from recbole_hiertcn.quick_start import run

    results = {}
    for mode in ("sequence", "prefix"):
        settings = small_config(data_root, "tiny_sess", epochs=5, train_mode=mode,
                                checkpoint_dir=str(in_tmp_dir / mode))
        results[mode] = run(model="HierTCN", dataset="tiny_sess", config_dict=settings)
    chance = 10 / 60
    for mode, result in results.items():
        assert result["test_result"]["recall@10"] > chance, mode
