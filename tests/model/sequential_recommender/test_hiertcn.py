"""HierTCN's properties: causality, session semantics, padding, batching, scoring, config checks,
and learning what popularity cannot."""

import collections
import os

import numpy as np
import pytest
import torch

from recbole.data.interaction import Interaction

from recbole_hiertcn import HierTCN
from tests.conftest import build_model, small_config

GAP = 1800.0


def build(data_root, dataset="tiny_sess", **overrides):
    return build_model("HierTCN", data_root, dataset, **overrides)


@pytest.fixture(scope="module")
def time_model(data_root):
    """A model whose sessions come from time gaps, with random (untrained) weights."""
    return build(data_root, "tiny_time")


def sessions_to_layout(sessions, start=1_000_000.0):
    """Items of each session -> (items [1, T], times [1, T]); gaps 60 s inside, 1 day between."""
    items, times, now = [], [], start
    for session in sessions:
        for item in session:
            items.append(item)
            times.append(now)
            now += 60.0
        now += 86_400.0
    return torch.tensor([items]), torch.tensor([times])


def encode_all(model, items, times):
    with torch.no_grad():
        return model.encode(items, model.boundary.opens(times))


def row_prediction(model, items, times, length, target_time):
    """Scores for the target after the first ``length`` items, through the RecBole-row path."""
    with torch.no_grad():
        hidden = model.forward(items[:, :length], torch.tensor([length]), times[:, :length],
                               torch.tensor([target_time]))
        return model.score_all(hidden)


# ----------------------------------------------------------------------------- causality
def assert_causal(model):
    """No output depends on its target or any later interaction (items or times)."""
    items, times = sessions_to_layout([[3, 4, 5], [6, 7], [8, 9, 10, 11]])
    base = encode_all(model, items, times)
    generator = torch.Generator().manual_seed(0)
    for t in range(items.size(1)):
        changed_items, changed_times = items.clone(), times.clone()
        changed_items[0, t:] = torch.randint(1, 50, (items.size(1) - t,), generator=generator)
        # a later interaction may also move in time (open or merge sessions after t)
        changed_times[0, t + 1:] += torch.rand(items.size(1) - t - 1, generator=generator) * 1e5
        out = encode_all(model, changed_items, changed_times)
        assert torch.allclose(out[0, :t + 1], base[0, :t + 1], atol=1e-6), f"leak at t={t}"
        assert not torch.allclose(out[0, t + 1:], base[0, t + 1:]) or t == items.size(1) - 1


def assert_row_path_matches_the_full_layout(model):
    """RecBole's one-row-per-target path scores what the flat layout scores at every target."""
    items, times = sessions_to_layout([[3, 4, 5], [6, 7], [8, 9, 10, 11]])
    full = model.score_all(encode_all(model, items, times))
    for length in range(1, items.size(1)):
        row = row_prediction(model, items, times, length, float(times[0, length]))
        assert torch.allclose(row[0], full[0, length], atol=1e-5), length


def test_outputs_never_depend_on_the_target_or_later_interactions(time_model):
    assert_causal(time_model[1])


def test_row_path_matches_the_full_layout_at_every_target(time_model):
    assert_row_path_matches_the_full_layout(time_model[1])


# ----------------------------------------------------------------------------- sessions
def test_session_start_ignores_the_order_inside_earlier_sessions(time_model):
    _, model, _, _ = time_model
    items, times = sessions_to_layout([[3, 4, 5], [6, 7, 12], [8]])
    reordered, _ = sessions_to_layout([[5, 3, 4], [12, 6, 7], [8]])
    start_of_third = 6
    a = encode_all(model, items, times)[0, start_of_third]
    b = encode_all(model, reordered, times)[0, start_of_third]
    assert torch.allclose(a, b, atol=1e-6)
    # ...but it does depend on which items the earlier sessions held
    other, _ = sessions_to_layout([[3, 4, 9], [6, 7, 12], [8]])
    c = encode_all(model, other, times)[0, start_of_third]
    assert not torch.allclose(a, c, atol=1e-6)


def test_prediction_inside_a_session_depends_on_its_earlier_items(time_model):
    _, model, _, _ = time_model
    items, times = sessions_to_layout([[3, 4, 5], [6, 7, 12, 13]])
    changed, _ = sessions_to_layout([[3, 4, 5], [6, 9, 12, 13]])
    base, out = encode_all(model, items, times), encode_all(model, changed, times)
    assert torch.allclose(base[0, :5], out[0, :5], atol=1e-6)  # up to and incl. the change
    assert not torch.allclose(base[0, 5:], out[0, 5:], atol=1e-6)


def test_first_item_of_a_session_is_predicted_from_the_session_state_alone(time_model):
    _, model, _, _ = time_model
    items, times = sessions_to_layout([[3, 4, 5], [6, 7]])
    zero = torch.zeros(1, model.settings.tcn_channels[0])
    state = model.core.state_projection(model.core.high_level(
        model.core.item_encoder(items[:, :3]).mean(1, keepdim=True).repeat(1, 2, 1),
        torch.tensor([1])))[:, 1]
    expected = model.core.low_level(zero.unsqueeze(1) + state.unsqueeze(1),
                                    torch.zeros(1, 1).long())
    assert torch.allclose(encode_all(model, items, times)[0, 3], expected[0, 0], atol=1e-5)


def test_gap_rule_is_greater_or_equal(time_model):
    _, model, _, _ = time_model
    times = torch.tensor([[0.0, GAP - 1, 2 * GAP - 1, 2 * GAP + 100]])
    assert model.session_opens(times).tolist() == [[True, False, True, False]]


def test_target_time_decides_whether_it_opens_a_session(time_model):
    _, model, _, _ = time_model
    items, times = sessions_to_layout([[3, 4], [6, 7, 8]])
    last = float(times[0, 4])
    inside = row_prediction(model, items, times, 5, last + 60)
    new_session = row_prediction(model, items, times, 5, last + GAP)
    assert not torch.allclose(inside, new_session)
    # a target that opens a session is predicted like any session start
    with_target, with_times = sessions_to_layout([[3, 4], [6, 7, 8], [1]])
    start = model.score_all(encode_all(model, with_target, with_times))[0, 5]
    assert torch.allclose(new_session[0], start, atol=1e-5)


# ----------------------------------------------------------------------------- padding, batching
def assert_padding_is_never_read(model, test):
    """Scores stay the same when the history lists get 7 more columns of real-looking items
    and times after each row's length."""
    batch = next(iter(test))[0]
    with torch.no_grad():
        base = model.full_sort_predict(batch)
        padded = Interaction({k: v.clone() for k, v in batch.interaction.items()})
        for field in ("item_id_list", "timestamp_list"):
            seq = batch[field]
            filler = torch.randint(1, 50, (seq.size(0), 7)).to(seq.dtype)
            padded.interaction[field] = torch.cat([seq, filler], dim=1)
        wider = model.full_sort_predict(padded)
    assert torch.allclose(base, wider, atol=1e-5)


def assert_a_batch_equals_each_user_alone(model, test):
    batch = next(iter(test))[0]
    with torch.no_grad():
        together = model.full_sort_predict(batch)
        for row in range(min(6, len(batch))):
            alone = model.full_sort_predict(batch[torch.tensor([row])])
            assert torch.allclose(alone[0], together[row], atol=1e-5)


def test_predictions_do_not_depend_on_padding(time_model):
    _, model, _, test = time_model
    assert_padding_is_never_read(model, test)


def test_a_batch_equals_each_user_alone(time_model):
    _, model, _, test = time_model
    assert_a_batch_equals_each_user_alone(model, test)


def test_session_ids_and_time_gaps_agree_when_they_describe_the_same_sessions(data_root):
    _, by_session, _, test_s = build(data_root, "tiny_sess")
    _, by_time, _, _ = build(data_root, "tiny_sess", session_field=None)
    assert by_session.boundary.field == "session_id" and by_time.boundary.field == "timestamp"
    by_time.load_state_dict(by_session.state_dict())
    batch = next(iter(test_s))[0]
    with torch.no_grad():
        assert torch.allclose(by_session.full_sort_predict(batch),
                              by_time.full_sort_predict(batch), atol=1e-5)


# ----------------------------------------------------------------------------- scoring, training
def set_seen_offsets(model, current=-1.5, earlier=0.75, counts=False):
    bias = model.core.seen_item_bias
    with torch.no_grad():
        bias.current.fill_(current)
        bias.earlier.fill_(earlier)
        if counts:  # seen_item_counts: every part of the offset away from its start
            bias.count_weight.fill_(0.5)
            bias.repeat.copy_(torch.linspace(-1, 1, bias.repeat.numel()))


@pytest.mark.parametrize("scoring, seen_item_bias, counts", [
    ("untied", False, False), ("tied", False, False), ("untied", True, False),
    ("untied", True, True)])
def test_predict_equals_full_sort_scores_of_the_same_items(data_root, scoring, seen_item_bias,
                                                           counts):
    _, model, _, test = build(data_root, "tiny_time", scoring=scoring,
                              seen_item_bias=seen_item_bias, seen_item_counts=counts)
    if seen_item_bias:
        set_seen_offsets(model, counts=counts)
    batch = next(iter(test))[0]
    with torch.no_grad():
        full = model.full_sort_predict(batch)
        batch.interaction["item_id"] = batch["item_id"]
        single = model.predict(batch)
    assert torch.allclose(single, full.gather(1, batch["item_id"].unsqueeze(1)).squeeze(1),
                          atol=1e-5)


@pytest.mark.parametrize("scoring, train_mode, seen_item_bias, counts", [
    ("untied", "sequence", False, False), ("tied", "sequence", False, False),
    ("untied", "prefix", False, False), ("untied", "sequence", True, False),
    ("tied", "prefix", True, False), ("untied", "sequence", True, True)])
def test_every_parameter_receives_gradient(data_root, scoring, train_mode, seen_item_bias,
                                           counts):
    _, model, train, _ = build(data_root, "tiny_time", scoring=scoring, train_mode=train_mode,
                               seen_item_bias=seen_item_bias, seen_item_counts=counts)
    if counts:  # the decay reaches the loss only through a non-zero count weight
        set_seen_offsets(model, counts=True)
    model.train()
    batch = next(iter(train))
    model.calculate_loss(batch).backward()
    missing = [name for name, p in model.named_parameters()
               if p.grad is None or not torch.any(p.grad != 0)]
    assert missing == []


def test_same_seed_same_model_and_loss(data_root):
    _, first, train, _ = build(data_root, "tiny_time")
    _, second, _, _ = build(data_root, "tiny_time")
    for (name, a), (_, b) in zip(first.named_parameters(), second.named_parameters()):
        assert torch.equal(a, b), name
    batch = next(iter(train))
    assert torch.equal(first.calculate_loss(batch), second.calculate_loss(batch))


@pytest.mark.parametrize("train_mode", ["prefix", "sequence"])
def test_bpr_loss_uses_the_sampled_negatives(data_root, train_mode):
    sampling = {"distribution": "uniform", "sample_num": 2}
    _, model, train, _ = build(data_root, "tiny_time", loss_type="BPR",
                               train_neg_sample_args=sampling, train_mode=train_mode)
    batch = next(iter(train))
    loss = model.calculate_loss(batch)
    if train_mode == "prefix":
        hidden = model._row_representation(batch)
        pos = model.score_items(hidden, batch["item_id"])
        neg = model.score_items(hidden, batch["neg_item_id"])
    else:
        mask = batch["seq_target_mask"]
        hidden = model.sequence_outputs(batch)[mask]
        negatives = batch["seq_neg_item_id"][mask]
        assert negatives.shape[1] == 2 and torch.all(negatives > 0)
        assert not torch.any(negatives == batch["seq_item_id"][mask].unsqueeze(1))
        pos = model.score_items(hidden, batch["seq_item_id"][mask]).unsqueeze(1).expand(-1, 2)
        neg = model.score_items(hidden.unsqueeze(1).expand(-1, 2, -1), negatives)
    assert torch.allclose(loss, -torch.log(1e-10 + torch.sigmoid(pos - neg)).mean(), atol=1e-6)


# ----------------------------------------------------------------------------- config checks
@pytest.mark.parametrize("key, value", [
    ("kernel_size", 0),
    ("embedding_size", -3),
    ("num_layers", 0),
    ("tcn_channels", []),
    ("dilations", [1]),
    ("convs_per_block", 0),
    ("dropout_prob", 1.5),
    ("embedding_dropout", -0.1),
    ("output_dropout", 1.0),
    ("session_gap", -1),
    ("scoring", "cosine"),
    ("loss_type", "MSE"),
    ("session_summary", "last"),
    ("tcn_norm", "batch"),
    ("seen_item_bias", "yes"),
    ("seen_item_counts", True),  # without seen_item_bias
])
def test_invalid_settings_name_the_key(data_root, key, value):
    with pytest.raises(ValueError, match=f"`{key}`"):
        build(data_root, "tiny_time", **{key: value})


def test_bpr_without_negative_sampling_names_the_key(data_root):
    with pytest.raises(ValueError, match="`train_neg_sample_args`"):
        build(data_root, "tiny_time", loss_type="BPR")


def test_normalized_timestamps_are_refused(data_root):
    with pytest.raises(ValueError, match="`normalize_all`"):
        build(data_root, "tiny_time", normalize_all=True)


def test_dataset_without_session_or_time_field_is_refused(time_model):
    config, _, train, _ = time_model

    class NoBoundaryFields:
        field2type = {"user_id": None, "item_id": None, "item_id_list": None}

        def num(self, field):
            return train._dataset.num(field)

    with pytest.raises(ValueError, match="`session_field`"):
        HierTCN(config, NoBoundaryFields())


# ----------------------------------------------------------------------------- options
@pytest.mark.parametrize("low_level", ["tcn", "gru"])
def test_dropout_options_act_where_documented_in_training_only(data_root, low_level):
    """The options add no parameter (checkpoints move between the settings); embedding dropout
    drops the TCN's item inputs and the high level's session means, output dropout the user
    embedding, while training; evaluation is unchanged."""
    _, model, _, _ = build(data_root, "tiny_time", embedding_dropout=0.5, output_dropout=0.5,
                           low_level=low_level)
    _, plain, _, _ = build(data_root, "tiny_time", low_level=low_level)
    plain.load_state_dict(model.state_dict())
    items, times = sessions_to_layout([[3, 4, 5], [6, 7], [8, 9, 10, 11]])
    model.eval(), plain.eval()
    assert torch.equal(encode_all(model, items, times), encode_all(plain, items, times))
    dropped = {"embedding": [], "output": []}
    for name, calls in dropped.items():
        getattr(model.core, f"{name}_dropout").register_forward_hook(
            lambda module, inputs, output, calls=calls: calls.append(
                (inputs[0] != 0) & (output == 0)))
    model.train()
    torch.manual_seed(0)
    trained = encode_all(model, items, times)
    assert len(dropped["embedding"]) == 2  # the session means, then the TCN inputs
    assert len(dropped["output"]) == 1
    assert all(mask.any() for calls in dropped.values() for mask in calls)
    assert (trained == 0).any()  # the encoded output itself has dropped units
    assert not torch.allclose(trained, encode_all(plain, items, times))


def test_removed_session_summary_mean_is_accepted_and_changes_nothing(data_root):
    """``session_summary`` was removed (docs/config.md, "Removed options"): a config or an old
    checkpoint that still says ``mean`` builds the same model with the same outputs; any other
    value is refused, naming the key."""
    torch.manual_seed(0)
    _, plain, _, _ = build(data_root, "tiny_time")
    torch.manual_seed(0)
    _, old, _, _ = build(data_root, "tiny_time", session_summary="mean")
    assert old.settings == plain.settings
    plain.eval(), old.eval()
    items, times = sessions_to_layout([[3, 4, 5], [6, 7]])
    with torch.no_grad():
        assert torch.equal(encode_all(plain, items, times), encode_all(old, items, times))
    with pytest.raises(ValueError, match="`session_summary` was removed.*'tcn'"):
        build(data_root, "tiny_time", session_summary="tcn")


def test_tcn_layer_norm_is_causal_and_normalises_every_position(data_root):
    """``tcn_norm: layer``: a LayerNorm after each convolution, over the channels of one
    position - causal, the row path (only the last receptive field) equals the full layout,
    every norm learns, and each conv's normalised output has zero mean and unit variance at
    every position."""
    _, model, train, _ = build(data_root, "tiny_time", tcn_norm="layer", convs_per_block=2)
    model.eval()
    norms = [norm for block in model.core.low_level.blocks for norm in block.norms]
    assert len(norms) == 4 and all(isinstance(norm, torch.nn.LayerNorm) for norm in norms)
    assert_causal(model)
    assert_row_path_matches_the_full_layout(model)
    seen = []
    hook = norms[0].register_forward_hook(lambda module, inputs, output: seen.append(output))
    items, times = sessions_to_layout([[3, 4, 5], [6, 7]])
    encode_all(model, items, times)
    hook.remove()
    # (a fresh LayerNorm: scale 1, shift 0; eps keeps the variance a little under 1)
    assert torch.allclose(seen[0].mean(-1), torch.zeros(1), atol=1e-5)
    assert torch.allclose(seen[0].var(-1, unbiased=False), torch.ones(1), atol=1e-2)
    model.train()
    model.calculate_loss(next(iter(train))).backward()
    assert all(norm.weight.grad is not None and norm.weight.grad.abs().sum() > 0
               for norm in norms)


def test_tcn_norm_needs_the_tcn_low_level(data_root):
    with pytest.raises(ValueError, match="`tcn_norm`.*low_level: tcn"):
        build(data_root, "tiny_time", tcn_norm="layer", low_level="gru")


def test_without_tcn_norm_the_blocks_hold_no_norm_parameters(data_root):
    """The default adds nothing to the state dict: checkpoints from before the key load."""
    _, model, _, _ = build(data_root, "tiny_time")
    assert not any("norms" in name for name in model.state_dict())


# ----------------------------------------------------------------------------- ablations
def expected_seen(batch, target_known):
    """Per row of a RecBole batch, ``(current, earlier)`` item sets from its fields alone."""
    rows = []
    for items, sessions, length, target in zip(batch["item_id_list"].tolist(),
                                               batch["session_id_list"].tolist(),
                                               batch["item_length"].tolist(),
                                               batch["session_id"].tolist()):
        items, sessions = items[:length], sessions[:length]
        running = target if target_known else sessions[-1]
        current = {i for i, s in zip(items, sessions) if s == running}
        rows.append((current, set(items) - current))
    return rows


@pytest.mark.parametrize("target_known", [True, False])
def test_seen_item_offsets_land_on_each_rows_history(data_root, target_known):
    """Full-sort scores with the offsets minus the network's own scores: ``current`` on the
    items of the target's session (the history's last one when the target's session is
    withheld), ``earlier`` on the other history items, 0 elsewhere."""
    # every event of each user's last session: its first opens it, the others are inside it
    split = {"split": {"last_session": "valid_and_test"}, "order": "TO", "mode": "full"}
    _, model, _, test = build(data_root, "tiny_sess", seen_item_bias=True,
                              target_session_known=target_known, eval_args=split)
    set_seen_offsets(model, current=-1.5, earlier=0.75)
    batch = next(iter(test))[0]
    with torch.no_grad():
        offsets = model.full_sort_predict(batch) - model.score_all(
            model._row_representation(batch))
    opened = 0
    for row, (current, earlier) in enumerate(expected_seen(batch, target_known)):
        expected = torch.zeros(offsets.size(1))
        expected[list(current)] = -1.5
        expected[list(earlier)] = 0.75
        assert torch.allclose(offsets[row], expected, atol=1e-5), row
        opened += not current
    assert 0 < opened < len(offsets) if target_known else opened == 0


@pytest.mark.parametrize("counts", [False, True])
def test_sequence_training_offsets_every_target_by_what_it_has_seen(data_root, counts):
    """The windowed sequence loss with the offsets equals cross-entropy over every target's
    full scores plus the offsets of the items before it (up to ``max_history`` back)."""
    from recbole_hiertcn.core.seen_items import seen_items

    _, model, train, _ = build(data_root, "tiny_time", seen_item_bias=True, max_history=6,
                               seen_item_counts=counts)
    set_seen_offsets(model, counts=counts)
    batch = next(iter(train))
    seq = model._sequence_batch(batch)
    rows, positions = seq.mask.nonzero(as_tuple=True)
    with torch.no_grad():
        loss = model.calculate_loss(batch)
        hidden = model.sequence_outputs(batch)[seq.mask]
        history = seen_items(seq.items, seq.opens, rows, positions, window=6)
        seen = history.masks(model.n_items)
        assert seen.current.any() and seen.earlier.any()
        bias = model.core.seen_item_bias
        offsets = bias.all(history) if counts else -1.5 * seen.current + 0.75 * seen.earlier
        scores = model.score_all(hidden) + offsets
        expected = torch.nn.functional.cross_entropy(scores, seq.targets[seq.mask])
        without = torch.nn.functional.cross_entropy(model.score_all(hidden),
                                                    seq.targets[seq.mask])
    assert torch.allclose(loss, expected, atol=1e-5)
    assert not torch.allclose(loss, without, atol=1e-3)


def test_the_seen_item_bias_needs_item_scores(data_root):
    with pytest.raises(ValueError, match="`seen_item_bias`"):
        build(data_root, "tiny_time", seen_item_bias=True, output_mode="embedding",
              pretrained_item_field="vector")


def test_without_the_seen_item_bias_the_model_holds_no_offsets(data_root):
    _, model, _, _ = build(data_root, "tiny_time")
    assert model.core.seen_item_bias is None
    assert not any("seen_item_bias" in name for name in model.state_dict())


def write_basket_dataset(root, name, n_users=40, n_items=120, seed=0):
    """Every user buys from a personal set of 6 items: 5 sessions of 3 different items each.
    An item never comes twice in one session and most targets were bought before."""
    rng = np.random.default_rng(seed)
    sessions = {}
    for user in range(1, n_users + 1):
        personal = rng.choice(np.arange(1, n_items + 1), size=6, replace=False)
        sessions[user] = [rng.choice(personal, size=3, replace=False).tolist() for _ in range(5)]
    write_user_sessions(root, name, sessions)


def test_trained_seen_item_offsets_learn_repeat_buying_and_no_repeat_in_a_basket(
        tmp_path_factory, in_tmp_dir):
    """On baskets drawn from personal sets, training pushes ``current`` below 0 and
    ``earlier`` above 0, and the offsets rank the test item far better than the same model
    without them (the user vector alone cannot single out six items per user)."""
    from recbole_hiertcn.quick_start import prepare_run, fit_and_test

    root = tmp_path_factory.mktemp("baskets")
    write_basket_dataset(str(root), "baskets")
    recalls = {}
    for bias in (False, True):
        overrides = {"epochs": 8, "learning_rate": 0.05, "seen_item_bias": bias,
                     "checkpoint_dir": str(in_tmp_dir / f"saved-{bias}"),
                     "eval_args": {"split": {"LS": "valid_and_test"}, "order": "TO",
                                   "mode": "full"}}
        prepared = prepare_run(model="HierTCN", dataset="baskets",
                               config_dict=small_config(root, "baskets", **overrides))
        recalls[bias] = fit_and_test(prepared)["test_result"]["recall@10"]
        if bias:
            offsets = prepared.model.core.seen_item_bias
            assert offsets.current.item() < -0.5 and offsets.earlier.item() > 0.5
    assert recalls[True] >= 0.7 and recalls[True] >= recalls[False] + 0.3, recalls


def test_without_high_level_earlier_sessions_do_not_matter(data_root):
    _, model, _, _ = build(data_root, "tiny_time", high_level="none")
    model.eval()
    assert model.core.high_level is None
    items, times = sessions_to_layout([[3, 4, 5], [6, 7]])
    other, _ = sessions_to_layout([[9, 10, 11], [6, 7]])
    assert torch.allclose(encode_all(model, items, times)[0, 3:],
                          encode_all(model, other, times)[0, 3:], atol=1e-6)


@pytest.mark.parametrize("high_level", ["gru", "none"])
def test_hiergru_is_causal_and_its_row_path_matches_the_full_layout(data_root, high_level):
    _, model, train, _ = build(data_root, "tiny_time", low_level="gru", high_level=high_level)
    model.eval()
    assert model.core.low_level.receptive_field is None
    items, times = sessions_to_layout([[3, 4, 5], [6, 7], [8, 9, 10]])
    full = model.score_all(encode_all(model, items, times))
    for length in range(1, items.size(1)):
        row = row_prediction(model, items, times, length, float(times[0, length]))
        assert torch.allclose(row[0], full[0, length], atol=1e-5), length
        changed = items.clone()
        changed[0, length:] = 1
        assert torch.allclose(encode_all(model, changed, times)[0, :length + 1],
                              encode_all(model, items, times)[0, :length + 1], atol=1e-6)
    model.train()
    loss = model.calculate_loss(next(iter(train)))
    loss.backward()
    assert all(p.grad is not None for p in model.parameters())


# ----------------------------------------------------------------------------- learning
def write_cycle_dataset(root, name, n_users=40, n_items=100, n_sessions=4, seed=0):
    """Users walk one fixed cycle through the items: each session starts at a random item and
    moves one step along the cycle per interaction (3-6 of them; sessions a day apart). The next
    item follows from the current one, while every item is about equally popular.

    Returns each user's items in time order.
    """
    rng = np.random.default_rng(seed)
    cycle = rng.permutation(np.arange(1, n_items + 1))
    sessions = {}
    for user in range(1, n_users + 1):
        for _ in range(n_sessions):
            start = int(rng.integers(n_items))
            sessions.setdefault(user, []).append(
                [int(cycle[(start + step) % n_items]) for step in range(int(rng.integers(3, 7)))])
    write_user_sessions(root, name, sessions)
    return {user: [item for session in user_sessions for item in session]
            for user, user_sessions in sessions.items()}


def write_user_sessions(root, name, sessions):
    """Write ``{user: [[item, ...] for each session]}`` as ``<root>/<name>/<name>.inter``:
    a minute between the events of a session, a day between sessions."""
    folder = os.path.join(root, name)
    os.makedirs(folder)
    lines = []
    for user, user_sessions in sessions.items():
        time = 1_500_000_000
        for session, items in enumerate(user_sessions):
            for item in items:
                lines.append(f"{user}\t{item}\t{time}\t{user}_{session}\n")
                time += 60
            time += 86_400
    with open(os.path.join(folder, f"{name}.inter"), "w", encoding="utf-8") as handle:
        handle.write("user_id:token\titem_id:token\ttimestamp:float\tsession_id:token\n")
        handle.writelines(lines)


def popularity_recall(walks, k=10):
    """Recall@k of ranking by training popularity under leave-one-out (LS): the last item of
    each user is the test target, the one before it the validation target."""
    counts = collections.Counter(item for walk in walks.values() for item in walk[:-2])
    top = {item for item, _ in sorted(counts.items(), key=lambda pair: (-pair[1], pair[0]))[:k]}
    return float(np.mean([walk[-1] in top for walk in walks.values()]))


@pytest.fixture(scope="module")
def cycle_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("cycle")
    return root, write_cycle_dataset(str(root), "cycle")


# BPR learns from one sampled negative per target, CE from all items: it gets further in 5 epochs.
@pytest.mark.parametrize("loss_type, floor", [("CE", 0.8), ("BPR", 0.4)])
def test_trained_model_follows_the_sequence_where_popularity_cannot(cycle_data, in_tmp_dir,
                                                                    loss_type, floor):
    """Every test target is the cycle step after the item before it, inside the last session,
    while popularity is flat over 100 items: a few epochs of training must rank far above a
    popularity ranking of the training interactions (and chance, 10 / 100)."""
    from recbole_hiertcn.quick_start import run

    root, walks = cycle_data
    popularity = popularity_recall(walks)
    assert popularity <= 0.1  # the data are as meant: popularity is no better than chance
    overrides = {"loss_type": loss_type, "epochs": 5, "learning_rate": 0.05,
                 "eval_batch_size": 4096, "checkpoint_dir": str(in_tmp_dir / "saved"),
                 "eval_args": {"split": {"LS": "valid_and_test"}, "order": "TO", "mode": "full"}}
    if loss_type == "BPR":
        overrides["train_neg_sample_args"] = {"distribution": "uniform", "sample_num": 1}
    result = run(model="HierTCN", dataset="cycle",
                 config_dict=small_config(root, "cycle", **overrides))
    recall = result["test_result"]["recall@10"]
    assert recall >= floor and recall >= 4 * popularity, (recall, popularity)


def test_a_checkpoint_saved_before_the_core_split_still_loads(data_root):
    """Its keys name the submodules without the ``core.`` prefix."""
    _, model, _, _ = build_model("HierTCN", data_root, "tiny_sess")
    _, fresh, _, _ = build_model("HierTCN", data_root, "tiny_sess", seed=99)
    old_style = {key.replace("core.", "", 1): value.clone()
                 for key, value in model.state_dict().items()}
    assert not any(key.startswith("core.") for key in old_style)
    assert not all(torch.equal(a, b) for a, b in zip(fresh.state_dict().values(),
                                                      model.state_dict().values()))
    fresh.load_state_dict(old_style)
    assert all(torch.equal(a, b) for a, b in zip(fresh.state_dict().values(),
                                                  model.state_dict().values()))
