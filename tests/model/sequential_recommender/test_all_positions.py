"""RecBole's GRU4Rec, NextItNet and SASRec with all-position training (``train_mode: sequence``):
RecBole's own class in prefix mode, causal outputs, the per-position loss equal to the prefix
row's loss for the same target (deep into long histories too), the window view, NextItNet's
padding reading shown and fixed, tiny runs in both modes that reload."""

import pytest
import torch

import recbole.utils
from recbole.model.sequential_recommender.gru4rec import GRU4Rec as RecBoleGRU4Rec
from recbole.model.sequential_recommender.nextitnet import NextItNet as RecBoleNextItNet
from recbole.model.sequential_recommender.sasrec import SASRec as RecBoleSASRec
from recbole.data.interaction import Interaction
from recbole.utils import init_seed

from recbole_hiertcn.data.dataset.session_dataset import SEQ_PREFIX
from recbole_hiertcn.model.sequential_recommender.gru4rec import GRU4Rec
from recbole_hiertcn.model.sequential_recommender.nextitnet import NextItNet
from recbole_hiertcn.model.sequential_recommender.sasrec import SASRec
from tests.conftest import assert_reload_reproduces, build_model, small_config

RECBOLE = {"GRU4Rec": RecBoleGRU4Rec, "NextItNet": RecBoleNextItNet, "SASRec": RecBoleSASRec}
OURS = {"GRU4Rec": GRU4Rec, "NextItNet": NextItNet, "SASRec": SASRec}
MODELS = tuple(RECBOLE)
# short windows on the tiny data (6 - 30 items a user): many targets lie deep in a history
L, STRIDE = 5, 2
BPR_SAMPLING = {"distribution": "uniform", "sample_num": 2, "alpha": 1.0, "dynamic": False,
                "candidate_num": 0}


def build(name, data_root, **overrides):
    settings = {"MAX_ITEM_LIST_LENGTH": L, "sequence_stride": STRIDE, "train_mode": "sequence",
                "train_neg_sample_args": None, "use_session_dataset": True, **overrides}
    return build_model(name, data_root, "tiny_time", **settings)


def whole_view(train):
    """The window view and one batch of all its windows."""
    view = train._dataset
    return view, view[torch.arange(len(view))]


# ----------------------------------------------------------------------------- registration
@pytest.mark.parametrize("name", MODELS)
def test_registered_under_recboles_name_with_recboles_parameters(name, data_root):
    assert recbole.utils.get_model(name) is OURS[name]
    assert issubclass(OURS[name], RECBOLE[name])
    config, model, train, _ = build(name, data_root, train_mode="prefix")
    init_seed(config["seed"], True)
    theirs = RECBOLE[name](config, train._dataset)
    mine, reference = model.state_dict(), theirs.state_dict()
    assert list(mine) == list(reference)
    assert all(torch.equal(mine[key], reference[key]) for key in mine)  # same initialisation


@pytest.mark.parametrize("name", MODELS)
def test_prefix_mode_is_recboles_class(name, data_root):
    """Prefix rows go through RecBole's own methods (NextItNet: with RecBole's reading)."""
    extra = {"nextitnet_reading": "last_slot"} if name == "NextItNet" else {}
    config, model, train, test = build(name, data_root, train_mode="prefix", **extra)
    theirs = RECBOLE[name](config, train._dataset)
    theirs.load_state_dict(model.state_dict())
    theirs.eval()
    rows = train._dataset[torch.arange(64)]
    assert torch.equal(model.calculate_loss(rows), theirs.calculate_loss(rows))
    rows = test._dataset[torch.arange(len(test._dataset))]
    assert torch.equal(model.full_sort_predict(rows), theirs.full_sort_predict(rows))


# ----------------------------------------------------------------------------- causality
@pytest.mark.parametrize("name", MODELS)
def test_changing_a_later_item_never_changes_an_earlier_output(name, data_root):
    _, model, _, _ = build(name, data_root)
    torch.manual_seed(0)
    items = torch.randint(1, model.n_items, (3, L))
    with torch.no_grad():
        before = model.position_outputs(items)
        for t in range(L):
            changed = items.clone()
            changed[:, t] = (changed[:, t] % (model.n_items - 1)) + 1  # another real item
            after = model.position_outputs(changed)
            assert torch.equal(after[:, :t], before[:, :t]), t
            assert not torch.allclose(after[:, t], before[:, t]), t  # the item is read


@pytest.mark.parametrize("name", MODELS)
def test_right_padding_never_changes_an_output(name, data_root):
    _, model, _, _ = build(name, data_root)
    items = torch.tensor([[3, 4, 5, 0, 0], [6, 7, 8, 9, 10]])
    with torch.no_grad():
        padded = model.position_outputs(items)
        alone = model.position_outputs(items[:1, :3])
    assert torch.allclose(padded[0, :3], alone[0], atol=1e-6)


# ----------------------------------------------------------------------------- the windows
def test_windows_cover_every_training_target_once_and_see_at_most_L_items(data_root):
    _, _, train, _ = build("GRU4Rec", data_root)
    _, _, prefix, _ = build("GRU4Rec", data_root, train_mode="prefix")
    view = train._dataset
    begin, first, end = view.chunk_begin, view.chunk_first, view.chunk_end
    targets = torch.cat([torch.arange(int(f), int(e)) for f, e in zip(first, end)])
    assert torch.equal(targets.sort().values, prefix._dataset.targets.sort().values)
    assert torch.all(end - begin <= L + 1)  # the model runs over at most L positions
    start = view.position_user_start[first]
    at_start = begin == start
    # a user's first window: targets 1 .. L, their whole history (the prefix rows exactly)
    assert torch.all((first == start + 1)[at_start])
    assert torch.all((end - first <= L)[at_start])
    # later windows: STRIDE targets, the first sees L - STRIDE + 1 items, the last L
    later = ~at_start
    assert later.sum() > 10
    assert torch.all((end - first <= STRIDE)[later])
    assert torch.all((end - 1 - begin == L)[later])
    assert torch.all((first - begin >= L - STRIDE + 1)[later])
    assert torch.equal(view.chunk_reach, first - begin - 1)


def test_evaluation_rows_are_recboles_rows_in_both_modes(data_root):
    _, _, _, sequence = build("SASRec", data_root, max_history=12)
    _, _, _, prefix = build("SASRec", data_root, train_mode="prefix", max_history=12)
    a, b = sequence._dataset, prefix._dataset
    assert a.history == b.history == L and torch.equal(a.targets, b.targets)


@pytest.mark.parametrize("stride", [0, L + 1, 1.5, True])
def test_a_bad_stride_names_the_key(data_root, stride):
    with pytest.raises(ValueError, match="`sequence_stride`"):
        build("GRU4Rec", data_root, sequence_stride=stride)


def test_the_loader_batches_windows_of_similar_width(data_root):
    _, _, train, _ = build("SASRec", data_root, train_batch_size=16)
    seen = []
    for batch in train:
        mask = batch["seq_target_mask"]
        assert mask.sum() <= 16 or len(mask) == 1
        assert mask.size(1) <= L + 1
        seen.append(int(mask.sum()))
    assert sum(seen) == int((train._dataset.chunk_end - train._dataset.chunk_first).sum())


# ----------------------------------------------------------------------------- the loss
def per_target(model, view, batch):
    """``(target position, history length, loss)`` of every training target of ``batch``,
    from one pass over each window."""
    with torch.no_grad():
        hidden, targets, mask = model.sequence_outputs(batch)
        losses = torch.stack([model.target_loss(hidden[i:i + 1], targets[i:i + 1])
                              for i in range(len(targets))])
    rows, columns = mask.nonzero(as_tuple=True)
    begin = view.chunk_begin
    position = begin[rows] + columns + 1
    return position, position - begin[rows], losses


def prefix_losses(model, view, positions, history):
    """The loss RecBole's row for each target, with ``history`` items, gives."""
    with torch.no_grad():
        return torch.stack([model.calculate_loss(view.prefix_rows(p.view(1), h))
                            for p, h in zip(positions, history.tolist())])


@pytest.mark.parametrize("name", MODELS)
def test_each_position_loss_equals_the_prefix_rows_loss_for_that_target(name, data_root):
    _, model, train, _ = build(name, data_root)
    view, batch = whole_view(train)
    positions, history, losses = per_target(model, view, batch)
    deep = positions - view.position_user_start[positions] > L
    assert deep.sum() > 50  # targets whose prefix row drops the start of the history
    # the row with the history the window gives: L - STRIDE + 1 .. L items, all for early targets
    assert torch.allclose(losses, prefix_losses(model, view, positions, history), atol=1e-5)
    # early targets: the prefix-mode training row itself (L slots, right-padded)
    early = ~deep
    full = prefix_losses(model, view, positions[early], torch.full_like(history[early], L))
    assert torch.allclose(losses[early], full, atol=1e-5)
    # deep targets see at most L items, as their prefix-mode rows, and at least L - STRIDE + 1
    assert history.max() == L and history[deep].min() == L - STRIDE + 1


@pytest.mark.parametrize("name", MODELS)
def test_the_sequence_loss_is_the_mean_of_the_prefix_rows_losses(name, data_root):
    _, model, train, _ = build(name, data_root)
    view, batch = whole_view(train)
    positions, history, _ = per_target(model, view, batch)
    with torch.no_grad():
        loss = model.calculate_loss(batch)
    assert torch.allclose(loss, prefix_losses(model, view, positions, history).mean(), atol=1e-5)


@pytest.mark.parametrize("name", MODELS)
def test_bpr_against_the_loaders_negatives_equals_recboles_rows(name, data_root):
    _, model, train, _ = build(name, data_root, loss_type="BPR",
                               train_neg_sample_args=BPR_SAMPLING)
    view, batch = whole_view(train)
    field = SEQ_PREFIX + model.NEG_ITEM_ID
    batch.update(Interaction({field: train._negatives(batch)}))  # what the loader attaches
    negatives, mask = batch[field], batch["seq_target_mask"]
    assert negatives.shape == mask.shape + (2,) and torch.all(negatives[mask] > 0)
    rows, columns = mask[:, 1:].nonzero(as_tuple=True)
    losses = []
    with torch.no_grad():
        sequence_loss = model.calculate_loss(batch)
        for row, column in zip(rows.tolist(), columns.tolist()):
            target = int(view.chunk_begin[row]) + column + 1
            prefix = view.prefix_rows(torch.tensor([target]), column + 1)
            for k in range(2):  # RecBole repeats a row for each of its negatives
                prefix.update(Interaction({model.NEG_ITEM_ID: negatives[row, column + 1, k]
                                           .view(1)}))
                losses.append(model.calculate_loss(prefix))
    assert torch.allclose(sequence_loss, torch.stack(losses).mean(), atol=1e-5)


# ----------------------------------------------------------------------------- NextItNet
def test_recboles_nextitnet_reads_padding_and_the_plugins_reads_the_last_item(data_root):
    """RecBole 1.2.1's NextItNet scores a history by the output at the row's last slot: the
    same history scores differently with more padding after it. The plugin's reads the last
    item: the same scores whatever the padding, those of the unpadded history."""
    config, model, train, _ = build("NextItNet", data_root, train_mode="prefix")
    recbole_model = RecBoleNextItNet(config, train._dataset)
    recbole_model.load_state_dict(model.state_dict())
    recbole_model.eval()
    history = [3, 4, 5]

    def rows(width):
        seq = torch.tensor([history + [0] * (width - len(history))])
        return {"item_id_list": seq, "item_length": torch.tensor([len(history)])}

    with torch.no_grad():
        theirs = {w: recbole_model.full_sort_predict(rows(w)) for w in (3, 5, 9)}
        ours = {w: model.full_sort_predict(rows(w)) for w in (3, 5, 9)}
    # RecBole's: equal to ours without padding, different with padding (read at a pad slot)
    assert torch.allclose(theirs[3], ours[3], atol=1e-6)
    assert not torch.allclose(theirs[5], theirs[3], atol=1e-3)
    assert not torch.allclose(theirs[9], theirs[5], atol=1e-3)
    # ours: the padding is never read
    assert torch.allclose(ours[5], ours[3], atol=1e-6) and torch.allclose(ours[9], ours[3],
                                                                          atol=1e-6)


def test_nextitnet_last_slot_restores_recboles_reading(data_root):
    longer = {"MAX_ITEM_LIST_LENGTH": 40}  # most histories are shorter: padded rows
    config, model, train, test = build("NextItNet", data_root, train_mode="prefix",
                                       nextitnet_reading="last_slot", **longer)
    _, fixed, _, _ = build("NextItNet", data_root, train_mode="prefix", **longer)
    rows = test._dataset[torch.arange(len(test._dataset))]
    theirs = RecBoleNextItNet(config, train._dataset)
    theirs.load_state_dict(model.state_dict())
    theirs.eval()
    with torch.no_grad():
        assert torch.equal(model.full_sort_predict(rows), theirs.full_sort_predict(rows))
        assert torch.equal(model.predict(rows), theirs.predict(rows))
        assert not torch.allclose(fixed.full_sort_predict(rows), theirs.full_sort_predict(rows))
        # the fixed reading: each row's output at its last item
        hidden = fixed.position_outputs(rows["item_id_list"])
        last = hidden[torch.arange(len(rows)), rows["item_length"] - 1]
        assert torch.allclose(fixed.full_sort_predict(rows), last @ fixed.item_embedding.weight.T,
                              atol=1e-5)


@pytest.mark.parametrize("overrides, message", [
    ({"nextitnet_reading": "padding"}, "must be one of last_item, last_slot"),
    ({"nextitnet_reading": "last_slot"}, "needs train_mode: prefix"),
])
def test_nextitnet_reading_is_checked(data_root, overrides, message):
    with pytest.raises(ValueError, match=message):
        build("NextItNet", data_root, **overrides)


def test_prefix_bpr_loss_with_the_fixed_reading(data_root):
    """NextItNet's own prefix loss (last item) is RecBole's formula at that output."""
    _, model, train, _ = build("NextItNet", data_root, train_mode="prefix", loss_type="BPR",
                               train_neg_sample_args=dict(BPR_SAMPLING, sample_num=1))
    rows = next(iter(train))
    with torch.no_grad():
        out = model.row_output(rows["item_id_list"], rows["item_length"])
        pos = (out * model.item_embedding(rows["item_id"])).sum(-1)
        neg = (out * model.item_embedding(rows["neg_item_id"])).sum(-1)
        expected = (-torch.log(1e-10 + torch.sigmoid(pos - neg)).mean()
                    + model.reg_weight * model.reg_loss([model.item_embedding.weight,
                                                         model.final_layer.weight])
                    + model.reg_loss_rb())
        assert torch.allclose(model.calculate_loss(rows), expected, atol=1e-6)


# ----------------------------------------------------------------------------- runs
@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("mode", ["prefix", "sequence"])
def test_a_tiny_run_trains_tests_and_reloads(name, mode, data_root, in_tmp_dir):
    from recbole_hiertcn.quick_start import run

    settings = small_config(data_root, "tiny_time", False, MAX_ITEM_LIST_LENGTH=L,
                            train_mode=mode, train_neg_sample_args=None,
                            checkpoint_dir=str(in_tmp_dir / "saved"))
    result = run(model=name, dataset="tiny_time", config_dict=settings)
    assert type(result["model"]) is OURS[name]
    assert result["test_result"]["recall@10"] >= 0
    assert_reload_reproduces(result["test_result"], result["model_file"])


def test_the_command_line_trains_a_baseline_in_sequence_mode(data_root, in_tmp_dir, monkeypatch,
                                                               capsys):
    from recbole_hiertcn.quick_start import main

    argv = ["run_recbole_hiertcn.py", "--model=GRU4Rec", "--dataset=tiny_time",
            "--train_mode=sequence", f"--data_path={data_root}", "--epochs=1",
            "--MAX_ITEM_LIST_LENGTH=5", "--show_progress=False", "--state=ERROR",
            "--load_col={'inter': ['user_id', 'item_id', 'timestamp']}",
            f"--checkpoint_dir={in_tmp_dir / 'saved'}"]
    monkeypatch.setattr("sys.argv", argv)
    assert main(argv[1:]) == 0
    assert "GRU4Rec on tiny_time" in capsys.readouterr().out


def test_a_config_made_for_recboles_own_nextitnet_keeps_its_reading(data_root):
    """A checkpoint written before the plugin registered NextItNet pickles a config whose
    model_class is RecBole's class and which has no nextitnet_reading: rebuilt through
    get_model, the model reads as it was trained (the last slot)."""
    config, _, train, _ = build("NextItNet", data_root, train_mode="prefix")
    config.model_class = RecBoleNextItNet
    assert NextItNet(config, train._dataset).reading == "last_slot"
    config.model_class = NextItNet
    assert NextItNet(config, train._dataset).reading == "last_item"
