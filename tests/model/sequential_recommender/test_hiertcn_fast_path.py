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


# gap_decay 20000 s against sessions 2 h - 3 days apart: every session state is decayed. A
# one-row prefix batch puts the target's session in the last column of the decays.
@pytest.mark.parametrize("dataset, loss_type, gap_decay", [
    ("tiny_sess", "CE", None), ("tiny_time", "CE", None), ("tiny_time", "BPR", None),
    ("tiny_sess", "CE", 20_000.0), ("tiny_time", "CE", 20_000.0)])
def test_sequence_loss_is_the_mean_of_recboles_per_target_losses(data_root, dataset, loss_type,
                                                                 gap_decay):
    extra = {"train_neg_sample_args": {"distribution": "uniform", "sample_num": 1}} \
        if loss_type == "BPR" else {}
    config, _, model, train, _ = setup(data_root, dataset, loss_type=loss_type,
                                       gap_decay=gap_decay, **extra)
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


def test_gap_decay_applies_to_the_targets_session_at_test_time(data_root):
    """An evaluation row whose target opens a new session: a longer gap decays the session
    state more, and the row's scores equal the sequence-mode output at the target, as in
    training. Rows have padding after the target, whose session id 0 opens a "session" too."""
    _, _, model, _, test = setup(data_root, "tiny_sess", gap_decay=20_000.0)
    rows = test[torch.arange(len(test))]
    length = rows["item_length"]
    last = length - 1
    sessions = rows["session_id_list"].gather(1, last.unsqueeze(1)).squeeze(1)
    times = rows["timestamp_list"].gather(1, last.unsqueeze(1)).squeeze(1)
    rows.interaction["session_id"] = sessions + 1000  # a session id no row has used yet
    predicted = {}
    with torch.no_grad():
        for gap in (4_000.0, 100_000.0):
            rows.interaction["timestamp"] = times + gap
            predicted[gap] = model.full_sort_predict(rows)
            for i in range(len(rows)):
                n = int(length[i])
                items = torch.cat([rows["item_id_list"][i, :n], rows["item_id"][i:i + 1]])
                ids = torch.cat([rows["session_id_list"][i, :n], rows["session_id"][i:i + 1]])
                stamps = torch.cat([rows["timestamp_list"][i, :n], rows["timestamp"][i:i + 1]])
                outputs = model.encode(items.unsqueeze(0), model.session_opens(ids.unsqueeze(0)),
                                       times=stamps.unsqueeze(0))
                assert torch.allclose(predicted[gap][i], model.score_all(outputs[0, -1]),
                                      atol=1e-5), (gap, i)
    for i in range(len(rows)):
        assert not torch.allclose(predicted[4_000.0][i], predicted[100_000.0][i], atol=1e-4), i


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
