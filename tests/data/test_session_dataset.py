"""SessionDataset against RecBole's SequentialDataset, and the sequence loader's coverage."""

import pytest
import torch

from recbole.config import Config
from recbole.data import data_preparation
from recbole.data.dataset import SequentialDataset

from recbole_hiertcn.data.dataloader import SequenceTrainDataLoader
from recbole_hiertcn.data.dataset import SessionDataset
from tests.conftest import small_config


def config_for(data_root, dataset, model="GRU4Rec", **overrides):
    with_session = dataset == "tiny_sess"
    settings = small_config(data_root, dataset, with_session, train_neg_sample_args=None,
                            **overrides)
    return Config(model=model, dataset=dataset, config_dict=settings)


def rows_of(interaction, fields):
    """Rows as sorted tuples, to compare splits whatever their order."""
    columns = [interaction[f].reshape(len(interaction), -1).tolist() for f in fields]
    return sorted(tuple(tuple(c[i]) for c in columns) for i in range(len(interaction)))


@pytest.mark.parametrize("dataset", ["tiny_sess", "tiny_time"])
def test_prefix_rows_equal_recboles_augmentation_field_by_field(data_root, dataset):
    config = config_for(data_root, dataset, MAX_ITEM_LIST_LENGTH=7)
    theirs = SequentialDataset(config).build()
    ours = SessionDataset(config).build()
    for split, (a, b) in enumerate(zip(theirs, ours)):
        reference = a.inter_feat
        mine = b[torch.arange(len(b))]
        assert len(mine) == len(reference), split
        assert sorted(mine.interaction) == sorted(reference.interaction)
        for field in reference.interaction:
            assert mine[field].dtype == reference[field].dtype, field
            assert mine[field].shape[1:] == reference[field].shape[1:], field
        fields = sorted(reference.interaction)
        assert rows_of(mine, fields) == rows_of(reference, fields), split


def test_whole_dataset_rows_are_recboles_augmented_rows(data_root):
    config = config_for(data_root, "tiny_time", MAX_ITEM_LIST_LENGTH=5)
    reference = SequentialDataset(config)
    reference._change_feat_format()
    ours = SessionDataset(config)
    ours._change_feat_format()
    fields = sorted(reference.inter_feat.interaction)
    assert len(ours) == len(reference.inter_feat)
    assert rows_of(ours[torch.arange(len(ours))], fields) == rows_of(reference.inter_feat, fields)


def plan_targets(loader):
    """Global target positions of every batch the loader plans for one epoch."""
    data = loader.dataset
    targets = []
    for chunks in loader._plan_epoch():
        for c in chunks.tolist():
            targets.append(torch.arange(int(data.chunk_first[c]), int(data.chunk_end[c])))
    return torch.cat(targets)


@pytest.mark.parametrize("max_history", [500, 4])
def test_every_training_interaction_is_a_target_exactly_once_per_epoch(data_root, max_history):
    config = config_for(data_root, "tiny_sess", model="HierTCN", max_history=max_history)
    assert config["train_mode"] == "sequence"
    data = SessionDataset(config)
    train, _, _ = data.build()
    prefix = SessionDataset(config_for(data_root, "tiny_sess", model="HierTCN",
                                       train_mode="prefix"))
    expected = prefix.build()[0].targets
    loader = SequenceTrainDataLoader(config, train, shuffle=True)
    for _ in range(2):  # two epochs, different batches, the same targets
        seen = plan_targets(loader)
        assert torch.equal(torch.sort(seen).values, torch.sort(expected).values)
    # and the batches really carry those targets, each at its own position
    items = data.inter_feat["item_id"]
    count = 0
    for batch in loader:
        mask = batch["seq_target_mask"]
        assert int(mask.sum()) <= config["train_batch_size"] or mask.sum(1).max() == mask.sum()
        count += int(mask.sum())
    assert count == len(expected)
    assert set(items[expected].tolist()) >= set(batch["seq_item_id"][mask].tolist())


def test_sequence_chunks_carry_context_but_no_targets_before_their_first(data_root):
    config = config_for(data_root, "tiny_sess", model="HierTCN", max_history=4)
    train, _, _ = SessionDataset(config).build()
    batch = train[torch.arange(len(train))]
    mask, length = batch["seq_target_mask"], batch["seq_length"]
    later = train.chunk_first > train.position_user_start[train.chunk_first] + 1
    assert later.any()
    assert torch.all((length[later] - mask[later].sum(1)) > 0)  # context positions, no loss
    assert torch.all(mask.sum(1) <= 4)


def test_evaluation_targets_do_not_depend_on_the_model_or_train_mode(data_root):
    splits = []
    for model, mode in (("GRU4Rec", None), ("HierTCN", "sequence"), ("HierTCN", "prefix")):
        overrides = {"train_mode": mode} if mode else {}
        built = SessionDataset(config_for(data_root, "tiny_time", model=model,
                                          eval_args={"split": {"last_session": "valid_and_test"},
                                                     "order": "TO", "mode": "full"},
                                          **overrides)).build()
        splits.append((built[1].targets, built[2].targets))
    for valid, test in splits[1:]:
        assert torch.equal(valid, splits[0][0]) and torch.equal(test, splits[0][1])


def test_last_session_rows_reveal_earlier_items_of_the_test_session(data_root):
    config = config_for(data_root, "tiny_sess", model="HierTCN",
                        eval_args={"split": {"last_session": "valid_and_test"}, "order": "TO",
                                   "mode": "full"})
    data = SessionDataset(config)
    _, valid, test = data.build()
    rows = test[torch.arange(len(test))]
    sessions = data.inter_feat["session_id"]
    # every test target is in its user's last session; rows of one session grow by one item
    last = {}
    for user, target in zip(rows["user_id"].tolist(), test.targets.tolist()):
        last.setdefault(user, set()).add(int(sessions[target]))
    assert all(len(s) == 1 for s in last.values())
    assert len(test) > len(last)  # several targets per user
    assert torch.all(rows["item_length"] > 0)
    history = rows["session_id_list"]
    previous = history.gather(1, (rows["item_length"] - 1).unsqueeze(1)).squeeze(1)
    same = previous == rows["session_id"]
    assert same.any() and (~same).any()  # first of a session and later ones


def test_data_preparation_uses_the_sequence_loader_for_hiertcn(data_root):
    config = config_for(data_root, "tiny_sess", model="HierTCN")
    from recbole.data import create_dataset
    dataset = create_dataset(config)
    assert isinstance(dataset, SessionDataset)
    train, valid, test = data_preparation(config, dataset)
    assert isinstance(train, SequenceTrainDataLoader)
    assert len(valid._dataset) > 0 and len(test._dataset) > 0


def test_sequence_mode_for_a_prefix_only_model_is_refused(data_root):
    with pytest.raises(ValueError, match="`train_mode`"):
        SessionDataset(config_for(data_root, "tiny_sess", model="Caser", train_mode="sequence"))


@pytest.mark.parametrize("model, mode", [("GRU4Rec", None), ("HierTCN", "sequence"),
                                         ("HierTCN", "prefix")])
def test_user_holdout_trains_on_other_users_and_ranks_every_later_event(data_root, model, mode):
    overrides = {"train_mode": mode} if mode else {}
    config = config_for(data_root, "tiny_time", model=model, user_holdout_shares=[0.5, 0.25, 0.25],
                        eval_args={"split": {"user_holdout": "valid_and_test"}, "order": "TO",
                                   "mode": "full"}, **overrides)
    data = SessionDataset(config)
    train, valid, test = data.build()
    users = data.inter_feat["user_id"]
    valid_users, test_users = set(users[valid.targets].tolist()), set(users[test.targets].tolist())
    if mode == "sequence":
        trained = set(users[train.chunk_first].tolist())
    else:
        trained = set(users[train.targets].tolist())
    assert not trained & (valid_users | test_users) and not valid_users & test_users
    assert len(valid_users) == len(test_users) == int(0.25 * len(data.user_starts))
    for held, view in ((valid_users, valid), (test_users, test)):
        # every event of a held-out user but the first is a target, seen with the user's own
        # earlier events only
        expected = sum(int((users == user).sum()) - 1 for user in held)
        assert len(view) == expected
        rows = view[torch.arange(len(view))]
        assert torch.all(rows["item_length"] >= 1)
        first_rows = rows["item_length"] == 1
        assert int(first_rows.sum()) == len(held)
