"""RecBole side of option ``seen_item_cooccurrence``: the item similarities that
:class:`~recbole_hiertcn.core.cooccurrence.CooccurrenceOffsets` turns into logits, built from
the training sessions of the dataset a model is given (the training part the session-kNN models
index, cut into sessions with the model's own session boundary)."""

import numpy as np
import scipy.sparse as sp

from recbole_hiertcn.core.cooccurrence import CooccurrenceOffsets
from recbole_hiertcn.model.knn_recommender import training_log
from recbole_hiertcn.model.session_knn.index import SessionIndex
from recbole_hiertcn.model.session_knn.neighbours import top_per_row


def cosine_neighbours(sessions, neighbours):
    """``[n_items, n_items]`` float32 CSR: each item's ``neighbours`` most similar items.

    ``sessions``: the ``[n_sessions, n_items]`` matrix of training sessions (nonzero where a
    session holds an item). Similarity ``|s(i) & s(j)| / sqrt(|s(i)| |s(j)|)``, ``s(i)`` the
    sessions holding ``i``; no diagonal; among equal similarities the lower item id is kept."""
    binary = sp.csr_matrix(sessions, dtype=np.float64, copy=True)
    binary.data[:] = 1.0
    together = (binary.T @ binary).tocsr()
    together.setdiag(0.0)
    together.eliminate_zeros()
    together.sort_indices()
    held = np.asarray(binary.sum(axis=0)).ravel()
    inverse_roots = 1.0 / np.sqrt(np.maximum(held, 1.0))
    rows = np.repeat(np.arange(together.shape[0]), np.diff(together.indptr))
    values = together.data * inverse_roots[rows] * inverse_roots[together.indices]
    keep = top_per_row(rows, values, -together.indices.astype(np.int64), neighbours,
                       together.shape[0])
    return sp.csr_matrix((values[keep].astype(np.float32),
                          (rows[keep], together.indices[keep])), shape=together.shape)


def with_cooccurrence(offsets, settings, boundary, config, dataset, n_items):
    """``offsets`` (the seen-item offsets module, or None) with the co-occurrence logits when
    ``settings.seen_item_cooccurrence`` is set; otherwise ``offsets`` itself."""
    if offsets is None or not settings.seen_item_cooccurrence:
        return offsets
    index = SessionIndex(training_log(dataset, boundary, config), n_items)
    return CooccurrenceOffsets(offsets, cosine_neighbours(index.X,
                                                          settings.cooccurrence_neighbours),
                               index.fingerprint())
