"""Option ``item_init: ppmi``: item embeddings started from the factorised positive PMI of the
training sessions - the matrix exact, the factors exact and deterministic, the start built from
training data only, nothing else of the model changed."""

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from recbole_hiertcn.model.item_init import ppmi, ppmi_vectors
from tests.conftest import build_model
from recbole_hiertcn.data.protocols import eval_args

PPMI = {"item_init": "ppmi"}
HRNN_SMALL = {"user_hidden_size": 12}


def random_sessions(seed, n_sessions=80, n_items=20):
    rng = np.random.default_rng(seed)
    sessions = (rng.random((n_sessions, n_items)) < 0.2).astype(np.float64)
    sessions[:, 5] = 0  # an item no session holds
    return sessions


def test_ppmi_is_the_positive_pmi_of_the_session_counts():
    sessions = random_sessions(0)
    together = sessions.T @ sessions
    np.fill_diagonal(together, 0.0)
    totals = together.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        pmi = np.log(together * together.sum() / np.outer(totals, totals))
    expected = np.where(np.isfinite(pmi) & (pmi > 0), pmi, 0.0)
    got = ppmi(sp.csr_matrix(sessions)).toarray()
    assert np.allclose(got, expected) and got.any()
    assert not got[5].any() and not got[:, 5].any()


@pytest.mark.parametrize("size", [3, 40])  # the sparse solver, and the dense SVD past the rank
def test_the_vectors_are_the_leading_singular_factors(size):
    sessions = sp.csr_matrix(random_sessions(1, n_items=30 if size == 40 else 60))
    matrix = ppmi(sessions).toarray()
    vectors = ppmi_vectors(sessions, size)
    # the item no session holds: exactly zero (its embedding keeps its random start)
    assert not vectors[5].any()
    left, singular, _ = np.linalg.svd(matrix)
    kept = min(size, matrix.shape[0] - 1)
    # U diag(s) U^T of the kept components: free of each column's sign
    expected = (left[:, :kept] * singular[:kept]) @ left[:, :kept].T
    assert vectors.shape == (matrix.shape[0], size)
    assert np.allclose(vectors @ vectors.T, expected, atol=1e-6)
    assert np.array_equal(vectors, ppmi_vectors(sessions, size))


@pytest.mark.parametrize("name, extra", [("HierTCN", {}), ("HRNN", HRNN_SMALL)])
def test_the_start_is_the_training_sessions_factors_and_nothing_else_changes(data_root, name,
                                                                               extra):
    from recbole_hiertcn.model.session_knn.index import SessionIndex
    from tests.model.test_cooccurrence import knn_train_log_of_every_event

    _, model, _, _ = build_model(name, data_root, "tiny_sess", eval_args=eval_args("LS"),
                                 **PPMI, **extra)
    _, plain, _, _ = build_model(name, data_root, "tiny_sess", eval_args=eval_args("LS"),
                                 **extra)
    _, knn, _, _ = build_model("SKNN", data_root, "tiny_sess", eval_args=eval_args("LS"))

    def table(network):
        return (network.core.item_encoder.table.weight if name == "HierTCN"
                else network.item_embedding.weight).detach().numpy()

    start, random_start = table(model), table(plain)
    vectors = ppmi_vectors(knn.index.X, start.shape[1])
    known = ppmi(knn.index.X).getnnz(axis=1) > 0
    known[0] = False
    assert known.any()  # (row 0, padding, keeps its start too)
    scale = random_start[1:].std() / vectors[known].std()
    # the factors up to their signs: their Gram matrix
    gram = (vectors[known] @ vectors[known].T) * scale ** 2
    assert np.allclose(start[known] @ start[known].T, gram, atol=1e-6 * np.abs(gram).max())
    assert np.array_equal(start[~known], random_start[~known])
    assert np.isclose(start[1:].std(), random_start[1:].std(), rtol=0.5)
    item_table = ("core.item_encoder.table.weight" if name == "HierTCN"
                  else "item_embedding.weight")
    for (key, value), (other_key, other) in zip(model.state_dict().items(),
                                                plain.state_dict().items()):
        assert key == other_key
        if key != item_table:  # every weight but the item table is the same
            assert torch.equal(value, other), key
    # from every event of the log, held-out ones included, the start would differ
    every = ppmi_vectors(SessionIndex(knn_train_log_of_every_event(data_root), model.n_items).X,
                         start.shape[1])
    other = every @ every.T
    assert not np.allclose(other, vectors @ vectors.T, atol=1e-2 * np.abs(other).max())


@pytest.mark.parametrize("name", ["HierTCN", "HRNN"])
def test_an_unknown_start_names_the_key(data_root, name):
    with pytest.raises(ValueError, match="`item_init`"):
        build_model(name, data_root, "tiny_time", item_init="word2vec")
