"""Option ``seen_item_gate``: the seen-item offsets (and the co-occurrence logits) scaled per
query by a gate of the query's vector - no change at the start, the same scores on every
scoring path once trained, learned, reloaded, and refused without the offsets."""

import pytest
import torch

from tests.conftest import build_model
from tests.model.test_sampled_softmax import sampled_and_full_losses

GATE = {"seen_item_bias": True, "seen_item_gate": True}
SEQUENCE = {"train_mode": "sequence", "train_neg_sample_args": None,
            "use_session_dataset": True}
HRNN_SMALL = {"user_hidden_size": 12}
VARIANTS = [("HierTCN", {}), ("HRNN", HRNN_SMALL),
            ("HierTCN", {"seen_item_counts": True, "seen_item_cooccurrence": True}),
            ("HRNN", dict(HRNN_SMALL, seen_item_counts=True, seen_item_cooccurrence=True))]


def offsets_of(model):
    return model.core.seen_item_bias if hasattr(model, "core") else model.seen_item_bias


def gates_of(offsets):
    """Every gate of the offsets: the seen-item module's and the co-occurrence module's."""
    base = getattr(offsets, "base", None)
    return [offsets.gate] + ([] if base is None else [base.gate])


def set_terms_and_gates(model, gates=True):
    """Nonzero offsets; with ``gates`` random gate weights (else the gates' zero start)."""
    offsets = offsets_of(model)
    generator = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for name, parameter in offsets.named_parameters():
            if ".gate." in f".{name}" and not gates:
                parameter.zero_()
            elif name.endswith(("current", "earlier", "weight", "bias")):
                parameter.copy_(torch.randn(parameter.shape, generator=generator))
    return offsets


@pytest.mark.parametrize("name, extra", VARIANTS)
def test_a_zero_gate_scores_as_the_model_without_it(data_root, name, extra):
    _, gated, _, test = build_model(name, data_root, "tiny_time", **GATE, **extra)
    settings = dict(GATE, seen_item_gate=False)
    _, plain, _, _ = build_model(name, data_root, "tiny_time", **settings, **extra)
    set_terms_and_gates(gated, gates=False)
    plain.load_state_dict({key: value for key, value in gated.state_dict().items()
                           if ".gate." not in key})
    batch = next(iter(test))[0]
    with torch.no_grad():
        expected = plain.full_sort_predict(batch)
        assert torch.equal(gated.full_sort_predict(batch), expected)
        set_terms_and_gates(gated)
        assert not torch.allclose(gated.full_sort_predict(batch), expected, atol=1e-3)


@pytest.mark.parametrize("name, extra", VARIANTS)
def test_sampled_training_and_predict_score_the_gated_offsets_as_full_sort(data_root, name,
                                                                           extra):
    """Every id drawn once, no correction: the sampled loss (the gated offsets of shared
    columns and of the targets) equals the full softmax loss."""
    _, model, train, test = build_model(name, data_root, "tiny_time", softmax_samples=7,
                                        **SEQUENCE, **GATE, **extra)
    set_terms_and_gates(model)
    with torch.no_grad():
        sampled, full = sampled_and_full_losses(model, next(iter(train)))
        assert torch.allclose(sampled, full, atol=1e-5), (sampled, full)
        rows = next(iter(test))[0]
        if name == "HierTCN":  # HRNN's predict reads its full sort
            assert torch.allclose(model.predict(rows), model.full_sort_predict(rows).gather(
                1, rows["item_id"].unsqueeze(1)).squeeze(1), atol=1e-5)


@pytest.mark.parametrize("name, extra", VARIANTS[:2])
def test_every_gate_learns_from_its_zero_start(data_root, name, extra):
    _, model, train, _ = build_model(name, data_root, "tiny_time", seen_item_cooccurrence=True,
                                     **SEQUENCE, **GATE, **extra)
    offsets = set_terms_and_gates(model, gates=False)
    model.train()
    model.calculate_loss(next(iter(train))).backward()
    for gate in gates_of(offsets):
        assert gate.linear.weight.grad.abs().sum() > 0


def test_a_reloaded_gated_model_scores_alike(data_root):
    _, model, _, test = build_model("HierTCN", data_root, "tiny_time", **GATE)
    set_terms_and_gates(model)
    _, again, _, _ = build_model("HierTCN", data_root, "tiny_time", **GATE)
    again.load_state_dict(model.state_dict())
    batch = next(iter(test))[0]
    with torch.no_grad():
        assert torch.equal(model.full_sort_predict(batch), again.full_sort_predict(batch))


@pytest.mark.parametrize("name", ["HierTCN", "HRNN"])
def test_the_gate_needs_the_offsets(data_root, name):
    with pytest.raises(ValueError, match="`seen_item_gate`"):
        build_model(name, data_root, "tiny_time", seen_item_gate=True)
