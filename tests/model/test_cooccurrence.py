"""Option ``seen_item_cooccurrence``: item co-occurrence of the training sessions as extra
logits of HierTCN and HRNN - the similarities exact and from training data only, the offsets
as documented on every scoring path, trained, reloaded, and refused where they cannot work."""

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from recbole_hiertcn.core.seen_items import EARLIER, RUNNING
from recbole_hiertcn.model.cooccurrence import cosine_neighbours
from tests.conftest import build_model
from recbole_hiertcn.data.protocols import eval_args

COOC = {"seen_item_bias": True, "seen_item_cooccurrence": True}
SEQUENCE = {"train_mode": "sequence", "train_neg_sample_args": None,
            "use_session_dataset": True}
HRNN_SMALL = {"user_hidden_size": 12}


def offsets_of(model):
    return model.core.seen_item_bias if hasattr(model, "core") else model.seen_item_bias


def set_weights(model, running=0.8, earlier=0.3, base=0.0):
    offsets = offsets_of(model)
    with torch.no_grad():
        offsets.running_weight.fill_(running)
        offsets.earlier_weight.fill_(earlier)
        offsets.base.current.fill_(base)
        offsets.base.earlier.fill_(base)
    return offsets


def dense_similarity(model):
    return offsets_of(model).neighbours_by_column.toarray()


def test_cosine_neighbours_keep_each_items_most_similar_items():
    rng = np.random.default_rng(0)
    sessions = (rng.random((60, 15)) < 0.25).astype(np.float64)
    sessions[:, 3] = 0  # an item no session holds: no neighbours, no similarity
    held = sessions.sum(axis=0)
    together = sessions.T @ sessions
    with np.errstate(divide="ignore", invalid="ignore"):
        cosine = np.nan_to_num(together / np.sqrt(np.outer(held, held)))
    np.fill_diagonal(cosine, 0.0)
    for k in (1, 4, 20):
        expected = np.zeros_like(cosine)
        for item in range(15):
            # the k largest, ties to the lower id; zeros are no neighbours
            order = sorted(np.flatnonzero(cosine[item]), key=lambda j: (-cosine[item, j], j))
            expected[item, order[:k]] = cosine[item, order[:k]]
        got = cosine_neighbours(sp.csr_matrix(sessions), k).toarray()
        assert np.allclose(got, expected, atol=1e-6), k
    assert not got[3].any() and not got[:, 3].any()


@pytest.mark.parametrize("name, extra", [("HierTCN", {}), ("HRNN", HRNN_SMALL)])
def test_the_similarities_are_those_of_the_training_sessions_the_knn_models_index(
        data_root, name, extra):
    _, model, _, _ = build_model(name, data_root, "tiny_sess", eval_args=eval_args("LS"),
                                 **COOC, **extra)
    _, knn, _, _ = build_model("SKNN", data_root, "tiny_sess", eval_args=eval_args("LS"))
    expected = cosine_neighbours(knn.index.X, 100).toarray()
    assert expected.any()
    assert np.array_equal(dense_similarity(model), expected)
    # built from every event of the log, held-out ones included, it would differ
    from recbole_hiertcn.model.session_knn.index import SessionIndex

    feat = knn_train_log_of_every_event(data_root)
    every_session = SessionIndex(feat, model.n_items).X
    assert not np.array_equal(cosine_neighbours(every_session, 100).toarray(), expected)


def knn_train_log_of_every_event(data_root):
    """A TrainingLog of every event of ``tiny_sess`` (validation and test targets too)."""
    from recbole_hiertcn.model.session_knn.index import TrainingLog

    _, _, train, _ = build_model("SKNN", data_root, "tiny_sess", eval_args=eval_args("LS"))
    feat = train._dataset.inter_feat
    order = np.lexsort((feat["timestamp"].numpy(), feat["user_id"].numpy()))
    return TrainingLog(users=feat["user_id"].numpy()[order], items=feat["item_id"].numpy()[order],
                       boundary=feat["session_id"].numpy()[order], times=None, by_time=False)


def expected_offsets(history, similarity, running=0.8, earlier=0.3):
    """The module docstring's formula read row by row, in plain loops."""
    items, kinds, ages = (t.numpy() for t in history)
    out = np.zeros((len(items), similarity.shape[0]))
    for row in range(len(items)):
        running_positions = [t for t in range(items.shape[1]) if kinds[row, t] == RUNNING]
        for steps_back, t in enumerate(reversed(running_positions), start=1):
            out[row] += running * similarity[items[row, t]] / steps_back
        for t in range(items.shape[1]):
            if kinds[row, t] == EARLIER:
                out[row] += earlier * similarity[items[row, t]] / ages[row, t]
    return torch.from_numpy(out).float()


@pytest.mark.parametrize("name, extra", [("HierTCN", {}), ("HRNN", HRNN_SMALL)])
def test_full_sort_scores_add_the_documented_offsets(data_root, name, extra):
    _, model, _, test = build_model(name, data_root, "tiny_time", **COOC, **extra)
    set_weights(model)
    batch = next(iter(test))[0]
    with torch.no_grad():
        offsets = model.full_sort_predict(batch) - model.score_all(
            model._row_representation(batch))
        history = model._row_seen(batch)
    expected = expected_offsets(history, dense_similarity(model))
    kinds = history.kinds
    assert (kinds == RUNNING).any() and (kinds == EARLIER).any() and expected.abs().sum() > 0
    assert torch.allclose(offsets, expected, atol=1e-5)


def test_predict_equals_full_sort_scores_of_the_same_items(data_root):
    _, model, _, test = build_model("HierTCN", data_root, "tiny_time", **COOC)
    set_weights(model, base=0.5)
    batch = next(iter(test))[0]
    with torch.no_grad():
        full = model.full_sort_predict(batch)
        single = model.predict(batch)
    assert torch.allclose(single, full.gather(1, batch["item_id"].unsqueeze(1)).squeeze(1),
                          atol=1e-5)


@pytest.mark.parametrize("name, extra", [
    ("HierTCN", {}), ("HRNN", HRNN_SMALL),
    ("HierTCN", {"cooccurrence_leave_session_out": True}),
    ("HRNN", dict(HRNN_SMALL, cooccurrence_leave_session_out=True))])
def test_sampled_training_scores_the_offsets_as_the_full_softmax_does(data_root, name, extra):
    """Every id drawn once, no correction: the sampled loss (the offsets of shared columns,
    a repeated id included) equals the full softmax loss (the offsets of every item)."""
    _, model, train, _ = build_model(name, data_root, "tiny_time", softmax_samples=7,
                                     **SEQUENCE, **COOC, **extra)
    set_weights(model, base=0.5)
    batch = next(iter(train))
    with torch.no_grad():
        model.sampled.log_expected.zero_()
        model.sampled.draw = lambda: torch.arange(model.n_items)
        sampled = model.calculate_loss(batch)
        set_weights(model, 0.0, 0.0, base=0.5)
        without = model.calculate_loss(batch)
        set_weights(model, base=0.5)
        model.sampled = None
        full = model.calculate_loss(batch)
    assert torch.allclose(sampled, full, atol=1e-5), (sampled, full)
    assert not torch.allclose(sampled, without, atol=1e-3)


@pytest.mark.parametrize("name, extra", [
    ("HierTCN", SEQUENCE), ("HRNN", dict(SEQUENCE, **HRNN_SMALL)),
    ("HierTCN", {"train_mode": "prefix"})])
def test_both_weights_learn_from_their_zero_start(data_root, name, extra):
    _, model, train, _ = build_model(name, data_root, "tiny_time", **COOC, **extra)
    model.train()
    model.calculate_loss(next(iter(train))).backward()
    offsets = offsets_of(model)
    assert offsets.running_weight.grad != 0 and offsets.earlier_weight.grad != 0


def test_a_reloaded_model_scores_alike_and_other_sessions_are_refused(data_root):
    _, model, _, test = build_model("HierTCN", data_root, "tiny_sess",
                                    eval_args=eval_args("LS"), **COOC)
    set_weights(model)
    _, again, _, _ = build_model("HierTCN", data_root, "tiny_sess", eval_args=eval_args("LS"),
                                 **COOC)
    again.load_state_dict(model.state_dict())
    batch = next(iter(test))[0]
    with torch.no_grad():
        assert torch.equal(model.full_sort_predict(batch), again.full_sort_predict(batch))
    _, other, _, _ = build_model("HierTCN", data_root, "tiny_sess",
                                 eval_args=eval_args("last_session"), **COOC)
    with pytest.raises(ValueError, match="co-occurrences of other training sessions"):
        other.load_state_dict(model.state_dict())


@pytest.mark.parametrize("name", ["HierTCN", "HRNN"])
@pytest.mark.parametrize("key, value", [("seen_item_cooccurrence", True),  # without the bias
                                        ("cooccurrence_neighbours", 0)])
def test_invalid_settings_name_the_key(data_root, name, key, value):
    settings = {key: value} if key == "seen_item_cooccurrence" else dict(COOC, **{key: value})
    with pytest.raises(ValueError, match=f"`{key}`"):
        build_model(name, data_root, "tiny_time", **settings)


def test_leave_session_out_reads_each_training_querys_similarities_without_its_session(
        data_root):
    """With every neighbour kept (no truncation) the corrected running feature of a training
    query equals the cosine recomputed from the training sessions without the query's own."""
    from recbole_hiertcn.core.seen_items import seen_items

    _, model, train, _ = build_model("HierTCN", data_root, "tiny_sess",
                                     eval_args=eval_args("LS"), cooccurrence_neighbours=1000,
                                     cooccurrence_leave_session_out=True, **SEQUENCE, **COOC)
    _, knn, _, _ = build_model("SKNN", data_root, "tiny_sess", eval_args=eval_args("LS"))
    sessions = knn.index.X.toarray() > 0
    offsets = set_weights(model, running=1.0, earlier=0.0)
    seq = model._sequence_batch(next(iter(train)))
    rows, positions = seq.mask.nonzero(as_tuple=True)
    history = seen_items(seq.items, seq.opens, rows, positions)
    offsets.train()
    with torch.no_grad():
        corrected = offsets.all(history)
        offsets.eval()
        plain = offsets.all(history)
    items, kinds, ages = (t.numpy() for t in history)
    checked = 0
    for query in range(len(items)):
        own = set(items[query][(ages[query] == 0) & (items[query] > 0)])
        running = [t for t in range(items.shape[1]) if kinds[query, t] == RUNNING]
        matches = [r for r in range(len(sessions)) if set(np.flatnonzero(sessions[r])) == own]
        if not running or not matches:
            continue  # the row cut the session, or the query opens it: nothing to compare
        without = np.delete(sessions, matches[0], axis=0).astype(np.float64)
        held = without.sum(axis=0)
        with np.errstate(divide="ignore", invalid="ignore"):
            cosine = np.nan_to_num(without.T @ without / np.sqrt(np.outer(held, held)))
        np.fill_diagonal(cosine, 0.0)
        expected = sum(cosine[items[query, t]] / steps_back
                       for steps_back, t in enumerate(reversed(running), start=1))
        assert np.allclose(corrected[query].numpy(), expected, atol=1e-5), query
        checked += 1
    assert checked >= 5
    assert not torch.allclose(corrected, plain, atol=1e-4)  # evaluation reads the whole S


def test_leave_session_out_needs_the_cooccurrence_logits(data_root):
    with pytest.raises(ValueError, match="`cooccurrence_leave_session_out`"):
        build_model("HierTCN", data_root, "tiny_time", seen_item_bias=True,
                    cooccurrence_leave_session_out=True)


def test_every_scoring_form_agrees_under_the_correction_and_an_empty_batch_scores_nothing(
        data_root):
    from recbole_hiertcn.core.seen_items import seen_items

    _, model, train, _ = build_model("HierTCN", data_root, "tiny_time",
                                     cooccurrence_leave_session_out=True, **SEQUENCE, **COOC)
    offsets = set_weights(model, base=0.5)
    seq = model._sequence_batch(next(iter(train)))
    rows, positions = seq.mask.nonzero(as_tuple=True)
    history = seen_items(seq.items, seq.opens, rows, positions)
    offsets.train()
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        dense = offsets.all(history)
        repeated = torch.tensor([5, 1, 5, 0, 9])  # a sampled softmax may draw an id twice
        assert torch.allclose(offsets.columns(history, repeated), dense[:, repeated], atol=1e-5)
        asked = torch.randint(0, model.n_items, (len(rows), 3), generator=generator)
        assert torch.allclose(offsets.at(history, asked), dense.gather(1, asked), atol=1e-5)
        targets = seq.targets[seq.mask]
        assert torch.allclose(offsets.at(history, targets),
                              dense.gather(1, targets.unsqueeze(1)).squeeze(1), atol=1e-5)
        none = history._replace(**{name: getattr(history, name)[:0]
                                   for name in history._fields})
        assert offsets.at(none, targets[:0]).shape == (0,)
        assert offsets.at(none, asked[:0]).shape == (0, 3)
        assert offsets.columns(none, repeated).shape == (0, 5)


def test_leave_session_out_needs_sequence_batches(data_root):
    with pytest.raises(ValueError, match="`cooccurrence_leave_session_out`.*train_mode"):
        build_model("HierTCN", data_root, "tiny_time", train_mode="prefix",
                    cooccurrence_leave_session_out=True, **COOC)


@pytest.mark.parametrize("leave_session_out", [False, True])
def test_every_item_offsets_are_bitwise_those_of_the_plain_sparse_product(data_root,
                                                                          leave_session_out):
    """The full-softmax path reads S converted once and casts the sparse products before
    densifying them: the very float32s of the plain product (S by columns, densified in
    float64, then cast), so a run gives the figures it gave before that speed-up."""
    _, model, _, test = build_model("HierTCN", data_root, "tiny_time", **COOC,
                                    cooccurrence_leave_session_out=leave_session_out,
                                    **SEQUENCE)
    offsets = set_weights(model, base=0.5)
    offsets.train(leave_session_out)  # training queries read S without their own session
    batch = next(iter(test))[0]
    with torch.no_grad():
        history = model._row_seen(batch)
        fast = offsets.all(history)
        *queries, correction = offsets._query_matrices(history)
        plain = [matrix @ offsets.neighbours_by_column for matrix in queries]
        if correction is not None:
            plain[0] = plain[0] + correction
        features = [torch.from_numpy(p.toarray().astype(np.float32)) for p in plain]
        expected = offsets.base.all(history) + (offsets.running_weight * features[0]
                                                + offsets.earlier_weight * features[1])
    assert (correction is not None) == leave_session_out
    assert torch.equal(fast, expected)

