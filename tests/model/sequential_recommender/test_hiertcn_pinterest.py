"""HierTCN in the reference's Pinterest setting: pretrained pin vectors, hinge loss against
impressions of the same feed view, and the session-state decay with time."""

import pytest
import torch
from torch.nn import functional as F

from recbole.data import data_preparation
from recbole.utils import init_seed

from dataset_converters import pinterest, pinterest_sample
from recbole_hiertcn import HierTCN
from recbole_hiertcn.core.gap_decay import session_decay
from recbole_hiertcn.core.layers import SessionStateGRU, session_layout
from recbole_hiertcn.quick_start import build_config, make_dataset
from tests.conftest import reload_and_test

SMALL = {"embedding_size": 16, "hidden_size": 16, "tcn_channels": [16, 16], "epochs": 1,
         "train_batch_size": 256, "eval_batch_size": 512, "show_progress": False,
         "state": "ERROR", "use_gpu": False, "seed": 3, "topk": [5, 10],
         "metrics": ["Recall", "MRR", "NDCG"]}


@pytest.fixture(scope="module")
def pin_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("pins")
    frame, pins, vectors = pinterest_sample.generate(n_users=80, n_pins=400, dim=12, seed=4)
    logs, vector_file = pinterest_sample.write(frame, pins, vectors, str(root / "raw"))
    pinterest.convert([logs], str(root / "dataset"), item_embeddings=vector_file, echo=None)
    return root / "dataset"


def build(pin_root, **overrides):
    config = build_config("HierTCN", "pinterest",
                          config_dict={**SMALL, "data_path": str(pin_root), **overrides})
    init_seed(config["seed"], True)
    data = make_dataset(config)
    train, valid, test = data_preparation(config, data)
    init_seed(config["seed"], True)
    return config, data, HierTCN(config, train._dataset), train, test


def test_pretrained_vectors_are_loaded_frozen_and_projected(pin_root):
    config, data, model, train, _ = build(pin_root)
    table = model.core.item_encoder.table.weight
    assert config["output_mode"] == "embedding"
    assert model.core.item_encoder.projection is not None  # pretrained vectors, projected
    assert torch.allclose(table[1:], data.item_feat["item_emb"][1:].float())
    assert not table.requires_grad
    before_table, before_proj = table.clone(), model.core.item_encoder.projection.weight.clone()
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=0.01)
    model.train()
    model.calculate_loss(next(iter(train))).backward()
    optimizer.step()
    assert torch.equal(model.core.item_encoder.table.weight, before_table)
    assert not torch.equal(model.core.item_encoder.projection.weight, before_proj)


def test_unfrozen_vectors_learn(pin_root):
    _, _, model, train, _ = build(pin_root, freeze_pretrained=False)
    assert model.core.item_encoder.table.weight.requires_grad
    model.train()
    model.calculate_loss(next(iter(train))).backward()
    assert model.core.item_encoder.table.weight.grad.abs().sum() > 0


def test_negatives_are_impressions_of_the_same_feed_view(pin_root):
    _, data, _, train, _ = build(pin_root)
    batch = next(iter(train))
    mask, views = batch["seq_target_mask"], batch["seq_feedview_id"]
    negatives = batch["seq_neg_item_id"]
    index = data.impressions
    assert negatives.shape[-1] == 10
    checked = 0
    for row, col in mask.nonzero().tolist():
        view = int(views[row, col])
        start, count = int(index["starts"][view]), int(index["counts"][view])
        shown = set(index["items"][start:start + count].tolist())
        if count:
            assert set(negatives[row, col].tolist()) <= shown
            checked += 1
        assert int(batch["seq_item_id"][row, col]) not in set(negatives[row, col].tolist())
    assert checked > 0


def test_hinge_logsigmoid_loss_is_the_references(pin_root):
    _, _, model, train, _ = build(pin_root)
    batch = next(iter(train))
    with torch.no_grad():
        loss = model.calculate_loss(batch)
        mask = batch["seq_target_mask"]
        hidden = model.sequence_outputs(batch)[mask]
        p = F.normalize(model.core.output_layer(hidden), dim=-1)
        vectors = model.core.item_encoder.raw_vectors()
        positive = (p * vectors[batch["seq_item_id"][mask]]).sum(-1)
        negative = (p.unsqueeze(1) * vectors[batch["seq_neg_item_id"][mask]]).sum(-1)
        expected = torch.relu(F.logsigmoid(negative) - F.logsigmoid(positive).unsqueeze(1)
                              + 0.1).mean()
    assert torch.allclose(loss, expected, atol=1e-6)


def test_full_sort_ranks_by_the_dot_product_with_pin_vectors(pin_root):
    _, _, model, _, test = build(pin_root)
    model.eval()
    rows = next(iter(test))[0]
    with torch.no_grad():
        scores = model.full_sort_predict(rows)
        p = F.normalize(model.core.output_layer(model._row_representation(rows)), dim=-1)
        assert torch.allclose(scores, p @ model.core.item_encoder.raw_vectors().t(), atol=1e-5)
        assert torch.allclose(model.predict(rows),
                              scores.gather(1, rows["item_id"].unsqueeze(1)).squeeze(1), atol=1e-5)


# ----------------------------------------------------------------------------- time decay
def test_decayed_gru_scales_the_state_before_each_session():
    torch.manual_seed(0)
    gru = SessionStateGRU(4, 3, num_layers=2)
    inputs = torch.randn(2, 4, 4)
    decay = torch.tensor([[1.0, 0.5, 0.25, 0.9], [1.0, 1.0, 1.0, 1.0]])
    states = gru(inputs, torch.tensor([3, 3]), decay)
    plain = gru(inputs, torch.tensor([3, 3]))
    assert torch.allclose(states[1], plain[1], atol=1e-6)  # no decay: the packed path
    h = [torch.zeros(1, 3), torch.zeros(1, 3)]
    for i in range(4):
        h = [decay[0, i] * v for v in h]
        assert torch.allclose(states[0, i], torch.cat(h, -1)[0], atol=1e-6)
        x = inputs[0, i:i + 1] + gru.input_bias
        for j, layer in enumerate(gru.layers):
            _, out = layer(x.unsqueeze(1), h[j].unsqueeze(0))
            h[j] = x = out[0]


def test_session_decay_uses_the_gap_between_sessions():
    times = torch.tensor([[0.0, 10.0, 3610.0, 3620.0, 10820.0]])
    opens = torch.tensor([[True, False, True, False, True]])
    session, _ = session_layout(opens)
    decay = session_decay(times, opens, session, 3, bandwidth=3600.0)
    expected = torch.tensor([[1.0, torch.exp(torch.tensor(-1.0)), torch.exp(torch.tensor(-2.0))]])
    assert torch.allclose(decay, expected, atol=1e-6)


def test_decay_with_a_huge_bandwidth_equals_no_decay_and_stays_causal(pin_root):
    _, _, plain, _, test = build(pin_root, output_mode="scores", pretrained_item_field=None)
    _, _, decayed, _, _ = build(pin_root, output_mode="scores", pretrained_item_field=None,
                                gap_decay=1e15)
    _, _, fast, _, _ = build(pin_root, output_mode="scores", pretrained_item_field=None,
                             gap_decay=20000.0)
    decayed.load_state_dict(plain.state_dict())
    fast.load_state_dict(plain.state_dict())
    for model in (plain, decayed, fast):
        model.eval()
    rows = next(iter(test))[0]
    with torch.no_grad():
        assert torch.allclose(plain.full_sort_predict(rows), decayed.full_sort_predict(rows),
                              atol=1e-5)
        assert not torch.allclose(plain.full_sort_predict(rows), fast.full_sort_predict(rows),
                                  atol=1e-5)
        items = torch.tensor([[3, 4, 5, 6, 7, 8]])
        times = torch.tensor([[0.0, 60.0, 9000.0, 9060.0, 20000.0, 20060.0]])
        base = fast.encode(items, fast.session_opens(times), times=times)
        later = times.clone()
        later[0, 4:] += 50_000.0
        moved = fast.encode(items, fast.session_opens(later), times=later)
        assert torch.allclose(base[0, :4], moved[0, :4], atol=1e-6)
        assert not torch.allclose(base[0, 4:], moved[0, 4:], atol=1e-6)


# ----------------------------------------------------------------------------- settings
@pytest.mark.parametrize("overrides, key", [
    ({"pretrained_item_field": None}, "`output_mode`"),
    ({"train_mode": "prefix"}, "`output_mode`"),
    ({"gap_decay": -5}, "`gap_decay`"),
    ({"output_mode": "vector"}, "`output_mode`"),
    ({"pretrained_item_field": "item_vec"}, "`pretrained_item_field`"),
])
def test_invalid_pinterest_settings_name_the_key(pin_root, overrides, key):
    with pytest.raises(ValueError, match=key):
        build(pin_root, **overrides)


def test_end_to_end_with_pretrained_vectors_and_impression_negatives(pin_root, tmp_path,
                                                                     monkeypatch):
    from recbole_hiertcn.quick_start import run

    monkeypatch.chdir(tmp_path)
    result = run(model="HierTCN", dataset="pinterest",
                 config_dict={**SMALL, "data_path": str(pin_root)})
    assert result["config"]["impression_negatives"] and result["config"]["output_mode"] == "embedding"
    # Reloaded, the checkpoint (projection trained, pin vectors rebuilt from the .item file)
    # scores exactly as the trained model did, and gives the reported test metrics.
    _, model, test_data, again = reload_and_test(result["model_file"])
    assert dict(again) == dict(result["test_result"])
    rows = next(iter(test_data))[0]
    result["model"].eval()
    with torch.no_grad():
        assert torch.equal(model.full_sort_predict(rows), result["model"].full_sort_predict(rows))
    baseline = run(model="GRU4Rec", dataset="pinterest",
                   config_dict={**SMALL, "data_path": str(pin_root)})
    assert baseline["model"].n_items == result["model"].n_items  # the same pins
    *_, again = reload_and_test(baseline["model_file"])
    assert dict(again) == dict(baseline["test_result"])
