"""Session starts and the withheld-target layout: a target that opens a session predicted as the
next step of the running session, the same in sequence training as in RecBole's rows."""

import pytest
import torch

from recbole_hiertcn.model.session_boundary import SequenceTargets
from tests.conftest import build_model
from tests.model.sequential_recommender.test_hiertcn import GAP, sessions_to_layout


def test_withheld_layout_inserts_a_slot_before_every_later_session():
    items = torch.tensor([[3, 4, 5, 6, 7, 8, 0]])
    opens = torch.tensor([[True, False, True, False, False, True, True]])
    mask = torch.tensor([[False, True, True, True, True, True, False]])
    times = torch.arange(7.0).unsqueeze(0)
    seq = SequenceTargets.withheld(items, opens, times, mask)
    # old positions 0..6 -> 0, 1, 3, 4, 5, 7, 9; slots at 2, 6 and 8
    assert seq.source.tolist() == [[0, 1, 2, 2, 3, 4, 5, 5, 6, 6]]
    assert seq.items.tolist() == [[3, 4, 0, 5, 6, 7, 0, 8, 0, 0]]
    assert seq.targets.tolist() == [[3, 4, 5, 5, 6, 7, 8, 8, 0, 0]]
    assert seq.opens.tolist() == [[True, False, False, True, False, False, False, True, False,
                                   True]]
    # the slots predict the starts' targets; the starts themselves are no longer targets
    assert seq.mask.tolist() == [[False, True, True, False, True, True, True, False, False,
                                  False]]
    assert seq.times.tolist() == [[0, 1, 1, 2, 3, 4, 4, 5, 5, 6]]
    negatives = torch.arange(14).view(1, 7, 2)
    assert seq.select(negatives)[0, 2].tolist() == [4, 5]  # the negatives of old position 2


def test_known_layout_is_the_batch_itself():
    items = torch.tensor([[3, 4, 5]])
    opens = torch.tensor([[True, False, True]])
    mask = torch.tensor([[False, True, True]])
    seq = SequenceTargets.known(items, opens, None, mask)
    assert torch.equal(seq.items, items) and torch.equal(seq.targets, items)
    assert torch.equal(seq.mask, mask) and seq.source.tolist() == [[0, 1, 2]]


SETTINGS = [("HierTCN", {}), ("HierTCN", {"low_level": "gru"}),
            ("HierTCN", {"gap_decay": 3600.0}), ("HierTCN", {"seen_item_bias": True}),
            ("HRNN", {"user_hidden_size": 12}), ("HRNN", {"seen_item_bias": True})]


def build(data_root, name, train_mode="sequence", known=False, **overrides):
    _, model, train, test = build_model(name, data_root, "tiny_time", train_mode=train_mode,
                                        target_session_known=known, **overrides)
    if overrides.get("seen_item_bias"):  # offsets that matter: the running session's items
        bias = getattr(model, "core", model).seen_item_bias  # and earlier sessions' told apart
        with torch.no_grad():
            bias.current.fill_(-2.0)
            bias.earlier.fill_(1.0)
    return model, train, test


def row_scores(model, row_batch):
    """Every item's score for one RecBole row (seen-item offsets included)."""
    return model.full_sort_predict(row_batch)


@pytest.mark.parametrize("known", [False, True])
@pytest.mark.parametrize("name, overrides", SETTINGS)
def test_sequence_loss_equals_the_mean_of_recbole_row_losses(data_root, name, overrides, known):
    model, train, _ = build(data_root, name, known=known, **overrides)
    batch = next(iter(train))
    items, times, mask = batch["seq_item_id"], batch["seq_timestamp"], batch["seq_target_mask"]
    losses, starts = [], 0
    with torch.no_grad():
        for row, position in torch.nonzero(mask).tolist():
            history = torch.tensor([position])
            row_batch = {"item_id_list": items[row:row + 1, :position],
                         "item_length": history,
                         "timestamp_list": times[row:row + 1, :position],
                         "timestamp": times[row:row + 1, position]}
            target = items[row:row + 1, position]
            losses.append(torch.nn.functional.cross_entropy(row_scores(model, row_batch), target))
            starts += bool(times[row, position] - times[row, position - 1] >= GAP)
        assert starts > 0  # some targets open a session: the case this is about
        assert torch.allclose(model.calculate_loss(batch), torch.stack(losses).mean(), atol=1e-5)


@pytest.mark.parametrize("name, overrides", SETTINGS)
def test_withheld_prediction_does_not_know_whether_the_target_opens_a_session(data_root, name,
                                                                             overrides):
    model, _, _ = build(data_root, name, train_mode="prefix", **overrides)
    items, times = sessions_to_layout([[3, 4], [6, 7, 8]])
    last = float(times[0, 4])
    scores = []
    with torch.no_grad():
        for target_time in (last + 60, last + GAP, last + 10 * GAP):
            row = {"item_id_list": items, "item_length": torch.tensor([5]),
                   "timestamp_list": times, "timestamp": torch.tensor([target_time])}
            scores.append(row_scores(model, row))
    assert torch.equal(scores[0], scores[1]) and torch.equal(scores[0], scores[2])
