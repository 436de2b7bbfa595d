"""Sampled softmax (``softmax_samples``): exact where it must be, unbiased enough where it
samples, its proposal built from the training targets only, and refused where it cannot work."""

import pytest
import torch
from torch.nn import functional as F

from recbole_hiertcn.core.sampled_softmax import SampledSoftmax
from tests.conftest import build_model

SEQUENCE = {"train_mode": "sequence", "train_neg_sample_args": None,
            "use_session_dataset": True}
COUNTS = {"seen_item_bias": True, "seen_item_counts": True}
MODELS = [("HierTCN", {}), ("HierTCN", {"seen_item_bias": True, "scoring": "tied"}),
          ("HierTCN", COUNTS),
          ("HRNN", {"user_hidden_size": 12}), ("HRNN", {"user_hidden_size": 12,
                                                       "seen_item_bias": True}),
          ("HRNN", dict(COUNTS, user_hidden_size=12)),
          ("GRU4Rec", {"MAX_ITEM_LIST_LENGTH": 5}), ("NextItNet", {"MAX_ITEM_LIST_LENGTH": 5}),
          ("SASRec", {"MAX_ITEM_LIST_LENGTH": 5})]


def test_every_item_drawn_once_from_a_uniform_proposal_is_the_full_softmax():
    torch.manual_seed(0)
    n_items, rows = 30, 12
    logits = torch.randn(rows, n_items)
    targets = torch.randint(1, n_items, (rows,))
    sampled = SampledSoftmax(torch.ones(n_items), n_items - 1)  # id 0 (padding) never drawn
    negatives = torch.arange(1, n_items)
    loss = sampled(logits.gather(1, targets.unsqueeze(1)).squeeze(1), logits[:, 1:],
                   targets, negatives)
    assert torch.allclose(loss, F.cross_entropy(logits[:, 1:], targets - 1), atol=1e-6)


def test_the_logq_correction_makes_popularity_sampling_close_to_the_full_softmax():
    torch.manual_seed(0)
    n_items, rows = 50, 64
    counts = torch.arange(n_items, dtype=torch.float) ** 2  # very skewed: 49^2 to 1
    # popular items score high, as a trained model's do: what a popularity draw over-counts
    logits = torch.randn(rows, n_items) + torch.log1p(counts) / 2
    targets = torch.randint(1, n_items, (rows,))
    full = F.cross_entropy(logits[:, 1:], targets - 1)
    sampled = SampledSoftmax(counts, 20000)
    estimates = []
    for _ in range(5):
        negatives = sampled.draw()
        assert negatives.min() >= 1  # padding is never a negative
        estimates.append(sampled(logits.gather(1, targets.unsqueeze(1)).squeeze(1),
                                 logits[:, negatives], targets, negatives))
    corrected = torch.stack(estimates).mean()
    assert abs(corrected - full) / full < 0.02
    # without the correction (a uniform q assumed) popular items are over-counted
    plain = SampledSoftmax(torch.ones(n_items), 20000)
    negatives = sampled.draw()
    uncorrected = plain(logits.gather(1, targets.unsqueeze(1)).squeeze(1),
                        logits[:, negatives], targets, negatives)
    assert abs(uncorrected - full) > 3 * abs(corrected - full)


def test_the_proposal_counts_the_training_targets_only(data_root):
    _, _, sequence_train, _ = build_model("HierTCN", data_root, "tiny_time", **SEQUENCE)
    _, _, prefix_train, test = build_model("HierTCN", data_root, "tiny_time",
                                           train_mode="prefix", use_session_dataset=True)
    in_windows = sequence_train._dataset.target_item_counts()
    in_rows = prefix_train._dataset.target_item_counts()
    assert torch.equal(in_windows, in_rows)  # every training target once, in both views
    assert int(in_rows.sum()) == len(prefix_train._dataset)
    test_counts = test._dataset.target_item_counts()
    assert int(test_counts.sum()) > 0 and not torch.equal(test_counts, in_rows)
    # the test targets are not in the training counts: the training view's targets alone
    train_items = prefix_train._dataset.inter_feat["item_id"][prefix_train._dataset.targets]
    assert torch.equal(in_rows, torch.bincount(train_items, minlength=len(in_rows)))


@pytest.mark.parametrize("name, extra", MODELS)
def test_all_items_as_negatives_reproduce_the_models_full_softmax_loss(name, extra, data_root):
    """The sampled path scores items exactly as the full softmax does (offsets, tying, the
    shared dropout): drawing every id once with no correction gives the same loss."""
    _, model, train, _ = build_model(name, data_root, "tiny_time", softmax_samples=7,
                                     **SEQUENCE, **extra)
    with torch.no_grad():
        sampled, full = sampled_and_full_losses(model, next(iter(train)))
    assert torch.allclose(sampled, full, atol=1e-5), (sampled, full)


def sampled_and_full_losses(model, batch):
    """The model's loss on ``batch`` with every id drawn once and no correction, then with the
    full softmax (the model is left without its sampled softmax)."""
    model.sampled.log_expected.zero_()
    model.sampled.draw = lambda: torch.arange(model.n_items)
    sampled = model.calculate_loss(batch)
    model.sampled = None
    return sampled, model.calculate_loss(batch)


@pytest.mark.parametrize("name, extra", MODELS)
def test_a_sampled_training_step_reaches_the_negatives_and_is_seeded(name, extra, data_root):
    def step():
        _, model, train, _ = build_model(name, data_root, "tiny_time", softmax_samples=5,
                                         **SEQUENCE, **extra)
        model.train()
        torch.manual_seed(3)
        loss = model.calculate_loss(next(iter(train)))
        loss.backward()
        return loss.detach(), model
    loss, model = step()
    assert torch.isfinite(loss)
    touched = [p for p in model.parameters() if p.grad is not None and p.grad.abs().sum() > 0]
    assert touched
    again, _ = step()
    assert torch.equal(loss, again)  # the draw follows torch's seed


@pytest.mark.parametrize("overrides, message", [
    ({"train_mode": "prefix"}, "softmax_samples` needs train_mode: sequence"),
    ({"softmax_samples": -1}, "softmax_samples` must be an integer >= 0"),
    ({"softmax_samples": 2.5}, "softmax_samples` must be an integer >= 0"),
])
def test_a_setting_sampling_cannot_honour_is_refused_by_name(overrides, message, data_root):
    settings = {**SEQUENCE, "softmax_samples": 8, **overrides}
    with pytest.raises(ValueError, match=message):
        build_model("GRU4Rec", data_root, "tiny_time", **settings)
    with pytest.raises(ValueError, match=message):
        build_model("HierTCN", data_root, "tiny_time", **settings)


def test_zero_or_none_is_the_full_softmax(data_root):
    for value in (0, None):
        _, model, _, _ = build_model("HierTCN", data_root, "tiny_time", softmax_samples=value,
                                     **SEQUENCE)
        assert model.sampled is None
