"""Item embeddings initialised from co-occurrence (option ``item_init: ppmi`` of HierTCN and
HRNN).

Learned from random vectors, an item embedding knows nothing of which items are bought together
until many epochs of gradients have told it; a factorised positive PMI matrix of the training
sessions (Levy & Goldberg, NIPS 2014: the matrix word2vec implicitly factorises) gives the same
structure at step 0. For items ``i != j``, ``C[i, j]`` counts the training sessions holding
both, ``r_i`` its row sum and ``T`` the total;

    PPMI[i, j] = max(0, log(C[i, j] * T / (r_i * r_j)))

and the start vectors are ``U * sqrt(s)`` of its truncated SVD (``size`` components), scaled
to the standard deviation of the embedding's own random start. An item that co-occurs with
nothing in training keeps its random vector. The sessions are the training part the
co-occurrence logits and the session-kNN models read; only the start changes, so a checkpoint
reloads as any other (its weights replace the start).
"""

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as sparse_linalg
import torch

from recbole_hiertcn.core.config_values import config_error
from recbole_hiertcn.model.knn_recommender import training_log
from recbole_hiertcn.model.session_knn.index import SessionIndex


def ppmi(sessions):
    """``[n_items, n_items]`` CSR positive PMI of items over the rows of ``sessions`` (nonzero
    where a session holds an item), no diagonal."""
    binary = sp.csr_matrix(sessions, dtype=np.float64, copy=True)
    binary.sum_duplicates()
    binary.eliminate_zeros()
    binary.data[:] = 1.0
    together = (binary.T @ binary).tocsr()
    together.setdiag(0.0)
    together.eliminate_zeros()
    totals = np.asarray(together.sum(axis=1)).ravel()
    rows = np.repeat(np.arange(together.shape[0]), np.diff(together.indptr))
    values = np.log(together.data * totals.sum() / (totals[rows] * totals[together.indices]))
    keep = values > 0
    return sp.csr_matrix((values[keep], (rows[keep], together.indices[keep])),
                         shape=together.shape)


def ppmi_vectors(sessions, size):
    """``[n_items, size]`` float64 ``U * sqrt(s)`` of the top ``size`` singular triplets of
    :func:`ppmi` (zero columns past the matrix's rank; zero rows for items without a positive
    entry); deterministic."""
    matrix = ppmi(sessions)
    n_items = matrix.shape[0]
    vectors = np.zeros((n_items, size))
    if matrix.nnz == 0:
        return vectors
    components = min(size, n_items - 1)
    if components < 1:
        return vectors
    if n_items <= 2 * size:  # small: a dense SVD is exact and cheap
        left, singular, _ = np.linalg.svd(matrix.toarray())
        left, singular = left[:, :components], singular[:components]
    else:
        start = np.full(n_items, 1.0 / np.sqrt(n_items))  # a fixed start: the same vectors
        left, singular, _ = sparse_linalg.svds(matrix, k=components, v0=start)
    vectors[:, :components] = left * np.sqrt(singular)
    # an item without co-occurrences has an empty row: exactly 0, not the solver's round-off
    vectors[matrix.getnnz(axis=1) == 0] = 0.0
    return vectors


def init_from_cooccurrence(model_name, settings, table, boundary, config, dataset):
    """Replace the rows of the embedding weight ``table`` (``[n_items, size]``, row 0
    padding) by :func:`ppmi_vectors` of the training sessions when ``settings.item_init`` is
    ``ppmi``, scaled to the table's own standard deviation; rows of items without
    co-occurrences keep their values."""
    if settings.item_init != "ppmi":
        return
    if getattr(settings, "pretrained_item_field", None):
        raise config_error(model_name, "item_init", "'ppmi' starts learned item embeddings: "
                           "it cannot be combined with `pretrained_item_field`")
    n_items, size = table.shape
    index = SessionIndex(training_log(dataset, boundary, config), n_items)
    vectors = ppmi_vectors(index.X, size)
    known = np.abs(vectors).sum(axis=1) > 0
    known[0] = False  # padding stays as it is
    if not known.any():
        return
    with torch.no_grad():
        scale = float(table.detach()[1:].std(correction=0)) / float(vectors[known].std())
        rows = torch.from_numpy(np.flatnonzero(known)).to(table.device)
        table[rows] = torch.from_numpy(vectors[known] * scale).to(table.dtype)
