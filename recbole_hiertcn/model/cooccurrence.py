"""Item co-occurrence as extra logits (option ``seen_item_cooccurrence`` of HierTCN and HRNN).

On real basket logs a tuned item-to-item nearest-neighbour rule is as strong as the neural
models: what was bought together in training sessions is a signal a user vector of 128 numbers
learns only in part. This option adds it to the score of item ``j`` for a query that has seen
the history ``h``:

    running_weight * sum_{t in running session} S[h_t, j] / steps_back(t)
    + earlier_weight * sum_{t in earlier sessions} S[h_t, j] / sessions_back(t)

``S`` is the cosine similarity of items over the training sessions (:func:`cosine_neighbours`),
built from the training part of the dataset a model is given (the part the session-kNN models
index, cut into sessions with the model's own session boundary). ``steps_back`` is 1 for the
last item of the running session, 2 for the one before...; ``sessions_back`` is 1 for the
session before the running one. The two weights are learned and start at 0 (the scores without
the option); the features themselves are fixed, computed on the host with scipy's sparse
products, so no dense items x items matrix is ever built (28k items on Complete Journey). It
lives beside the models, not in the RecBole-free core, for scipy.

A training query's running session is itself one of the training sessions ``S`` counts: the
pair (an item of the running session, the target) always co-occurs once more in training than
it can at test time, where the test session is in no count. With
``cooccurrence_leave_session_out`` the running feature of a training query reads ``S`` without
its own session (:func:`_own_session_correction`): the counts and the two item totals of every
pair it touches lose that session, as leave-one-out. The neighbours kept per item stay those of
the whole training set.
"""

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from recbole_hiertcn.core.config_values import config_error
from recbole_hiertcn.core.seen_items import EARLIER, RUNNING, OffsetGate, gate_scales, scaled
from recbole_hiertcn.data.protocols import ranges
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


def _history_weights(history):
    """``[M, T]`` float64 weights of the two features: 1 / steps back at running-session
    positions, 1 / sessions back at earlier ones (0 elsewhere)."""
    kinds = history.kinds.cpu().numpy()
    running = kinds == RUNNING
    # steps back of a running position: running positions from it to the history's end
    steps_back = np.cumsum(running[:, ::-1], axis=1)[:, ::-1]
    ages = history.ages.cpu().numpy()
    running_weights = np.where(running, 1.0 / np.maximum(steps_back, 1), 0.0)
    earlier_weights = np.where(kinds == EARLIER, 1.0 / np.maximum(ages, 1), 0.0)
    return running_weights, earlier_weights


def _queries(history, weights, n_items):
    """``[M, n_items]`` CSR: each query's weight on every history item (repeats summed)."""
    items = history.items.cpu().numpy()
    rows = np.broadcast_to(np.arange(items.shape[0])[:, None], items.shape)
    keep = weights != 0
    return sp.csr_matrix((weights[keep], (rows[keep], items[keep])),
                         shape=(items.shape[0], n_items))


def _own_session_correction(history, weights, pairs, held, n_items):
    """The running feature without the query's own session, as ``(scaled weights,
    correction)``: the feature is ``queries(scaled weights) @ S + correction``.

    ``history``: training queries, whose own session is the positions of age 0 (the running
    items before the query, its target and the session's later items in the row); ``weights``
    ``[M, T]`` the running feature's weights; ``pairs``: ``(keys, values)`` of ``S``'s
    entries (:func:`_pair_keys`); ``held[i]`` the training sessions holding item ``i``.
    Without the own session the cosine of a running item ``h`` (in it, ``n_h`` sessions) and
    an item ``j`` is ``S[h, j] * sqrt(n_h / (n_h - 1))`` when ``j`` is not in it (the scaled
    weights) and ``(C[h, j] - 1) / sqrt((n_h - 1) (n_j - 1))`` when it is, ``C = S *
    sqrt(n_h n_j)`` the pair's count (the correction: that value minus the scaled one, at
    ``(query, j)``). The own session's items outside the row (a chunk that cuts it) count as
    not in it."""
    items = history.items.cpu().numpy()
    own = (history.ages.cpu().numpy() == 0) & (items > 0)
    n_h = held[items]
    # an item held by its own session only has no neighbours without it
    scale = np.sqrt(np.divide(n_h, n_h - 1, out=np.zeros_like(n_h), where=n_h > 1))
    scaled = weights * scale
    # every (running position t, own distinct item j) pair of a query
    n_queries = items.shape[0]
    own_rows, own_cols = np.nonzero(own)
    own_keys = np.unique(own_rows * n_items + items[own_rows, own_cols])  # (query, item)
    own_query, own_item = own_keys // n_items, own_keys % n_items
    own_start = np.searchsorted(own_query, np.arange(n_queries))
    own_count = np.bincount(own_query, minlength=n_queries)
    run_rows, run_cols = np.nonzero(weights)
    pair = ranges(own_start[run_rows], own_count[run_rows])  # own entry of each pair
    run = np.repeat(np.arange(len(run_rows)), own_count[run_rows])  # running entry of it
    h, j = items[run_rows[run], run_cols[run]], own_item[pair]
    value = _lookup(*pairs, n_items, h, j)
    kept = (value > 0) & (h != j)
    run, h, j, value = run[kept], h[kept], j[kept], value[kept]
    n_j = held[j].astype(np.float64)
    n_hh = held[h].astype(np.float64)
    together = np.rint(value * np.sqrt(n_hh * n_j))  # the pair's session count
    with np.errstate(divide="ignore", invalid="ignore"):
        without = np.where((n_hh > 1) & (n_j > 1),
                           (together - 1) / np.sqrt((n_hh - 1) * (n_j - 1)), 0.0)
    correction = weights[run_rows[run], run_cols[run]] * without - \
        scaled[run_rows[run], run_cols[run]] * value
    return scaled, sp.csr_matrix((correction, (run_rows[run], j)), shape=(n_queries, n_items))


def _dense_float32(product):
    """A sparse product (no duplicate entries) as a dense float32 array: its stored values
    cast first (the same float32s as casting the dense float64 array, at half the writes;
    scipy's ``astype`` would sort every row's indices first)."""
    cast = sp.csr_matrix((product.data.astype(np.float32), product.indices, product.indptr),
                         shape=product.shape)
    return cast.toarray()


def _pair_keys(matrix):
    """Sorted int64 keys ``row * n_columns + column`` of a CSR's stored entries (sorted
    indices), aligned with ``matrix.data``."""
    rows = np.repeat(np.arange(matrix.shape[0], dtype=np.int64), np.diff(matrix.indptr))
    return rows * matrix.shape[1] + matrix.indices


def _lookup(keys, values, n_columns, rows, cols):
    """``values`` at the keys ``rows[k] * n_columns + cols[k]``, 0 where none is stored."""
    if not len(keys):
        return np.zeros(len(rows))
    asked = rows.astype(np.int64) * n_columns + cols
    at = np.minimum(np.searchsorted(keys, asked), len(keys) - 1)
    return np.where(keys[at] == asked, values[at], 0.0)


class CooccurrenceOffsets(nn.Module):
    """Seen-item offsets (``base``: any module with ``all``, ``columns`` and ``at``) plus the
    two weighted co-occurrence features of the module docstring. ``neighbours``: ``S`` as a
    scipy sparse matrix, rebuilt from the training data with the model (not saved);
    ``fingerprint`` (int64 array) names that data: a checkpoint saved with another is refused.
    A gated ``base`` (``seen_item_gate``) gets a gate of the two features here too.
    """

    def __init__(self, base, neighbours, fingerprint, held=None):
        super().__init__()
        self.base = base
        self.n_items = base.n_items
        self.neighbours_by_column = sp.csc_matrix(neighbours, dtype=np.float32)
        # the whole of S as the product with the float64 queries reads it (every column asked,
        # a full-softmax step): converted once here, not at every step
        self.neighbours_by_row = sp.csr_matrix(neighbours, dtype=np.float64)
        # with ``held`` (sessions holding each item): training reads S without its own session
        self.held = None if held is None else np.asarray(held, dtype=np.float64)
        if self.held is not None:
            # the pair keys are searched in order: the row copy above, its indices sorted
            self.neighbours_by_row.sort_indices()
            self.pairs = (_pair_keys(self.neighbours_by_row), self.neighbours_by_row.data)
        self.running_weight = nn.Parameter(torch.zeros(()))
        self.earlier_weight = nn.Parameter(torch.zeros(()))
        base_gate = getattr(base, "gate", None)
        self.gate = None if base_gate is None else OffsetGate(base_gate.linear.in_features, 2)
        self._last = None  # (history, training, query matrices) of the last call
        self.register_buffer("sessions_fingerprint", torch.as_tensor(np.asarray(
            fingerprint, dtype=np.int64)))
        self._register_load_state_dict_pre_hook(self._check_fingerprint)

    def _check_fingerprint(self, state_dict, prefix, *_):
        saved = state_dict.get(prefix + "sessions_fingerprint")
        if saved is not None and not torch.equal(saved.cpu(), self.sessions_fingerprint.cpu()):
            raise ValueError(
                f"seen_item_cooccurrence: this checkpoint was trained with the co-occurrences of "
                f"other training sessions (fingerprint {saved.tolist()} != "
                f"{self.sessions_fingerprint.tolist()}): the data, protocol or session settings "
                f"differ")

    def _query_matrices(self, history):
        """``(running, earlier, correction or None)``: :func:`_queries` of the two weights of
        :func:`_history_weights` and :func:`_own_session_correction`'s correction. The last
        history's are kept, as a training step scores its targets and its negatives against
        the same one."""
        if self._last is not None and self._last[0] is history \
                and self._last[1] == self.training:
            return self._last[2]
        running, earlier = _history_weights(history)
        correction = None
        if self.training and self.held is not None:
            running, correction = _own_session_correction(history, running, self.pairs,
                                                          self.held, self.n_items)
            correction = correction.tocsc()
        matrices = (_queries(history, running, self.n_items),
                    _queries(history, earlier, self.n_items), correction)
        self._last = (history, self.training, matrices)
        return matrices

    def _products(self, history, columns=None):
        """The two features of the item ids ``columns`` (numpy, sorted, distinct; None: every
        id): sparse ``[M, len(columns)]`` CSR matrices, running then earlier."""
        similar = (self.neighbours_by_row if columns is None
                   else self.neighbours_by_column[:, columns])
        *queries, correction = self._query_matrices(history)
        products = [(matrix @ similar).tocsr() for matrix in queries]
        if correction is not None:
            products[0] = (products[0] + (correction if columns is None
                                          else correction[:, columns])).tocsr()
        return products

    def _weighted(self, running, earlier, device, hidden):
        def tensor(values):
            return torch.from_numpy(np.asarray(values, dtype=np.float32)).to(
                device=device, dtype=self.running_weight.dtype)
        scales = gate_scales(self.gate, hidden, type(self).__name__)
        return (scaled(self.running_weight * tensor(running), scales, 0)
                + scaled(self.earlier_weight * tensor(earlier), scales, 1))

    def all(self, history, hidden=None):
        """``[M, n_items]`` offsets of every item id."""
        running, earlier = (_dense_float32(product) for product in self._products(history))
        return self.base.all(history, hidden) + self._weighted(
            running, earlier, history.items.device, hidden)

    def columns(self, history, items, hidden=None):
        """``[M, S]`` offsets of the ids ``items`` ``[S]`` shared by every query."""
        distinct, slot = np.unique(items.cpu().numpy(), return_inverse=True)
        running, earlier = self._products(history, distinct)
        # a repeated id reads its one column
        features = self._weighted(_dense_float32(running)[:, slot],
                                  _dense_float32(earlier)[:, slot], history.items.device, hidden)
        return self.base.columns(history, items, hidden) + features

    def at(self, history, items, hidden=None):
        """Offsets of ``items`` (``[M]`` or ``[M, k]`` ids), same shape as them: read from the
        sparse products, never a dense ``[M, distinct ids]``."""
        asked = items if items.dim() == 2 else items.unsqueeze(1)  # [M, k]
        if not asked.numel():  # scipy's fancy indexing of no entries is not empty
            return self.base.at(history, items, hidden)
        distinct, slot = np.unique(asked.cpu().numpy(), return_inverse=True)
        slot = slot.reshape(asked.shape)
        rows = np.broadcast_to(np.arange(asked.shape[0])[:, None], asked.shape)
        running, earlier = (np.asarray(product[rows.ravel(), slot.ravel()]).reshape(asked.shape)
                            for product in self._products(history, distinct))
        if items.dim() == 1:
            running, earlier = running[:, 0], earlier[:, 0]
        return self.base.at(history, items, hidden) + self._weighted(running, earlier,
                                                                     items.device, hidden)


def with_cooccurrence(model, offsets, settings, boundary, config, dataset, n_items):
    """``offsets`` (the seen-item offsets module, or None) with the co-occurrence logits when
    ``settings.seen_item_cooccurrence`` is set; otherwise ``offsets`` itself. ``model``:
    the model's name, for errors."""
    if offsets is None or not settings.seen_item_cooccurrence:
        return offsets
    if settings.cooccurrence_leave_session_out and config["train_mode"] != "sequence":
        # a prefix row holds neither its target nor the rest of its session
        raise config_error(model, "cooccurrence_leave_session_out",
                           "finds a training query's own session in sequence batches: it "
                           "needs `train_mode: sequence`")
    index = SessionIndex(training_log(dataset, boundary, config), n_items)
    held = (np.bincount(index.X.indices, minlength=n_items)
            if settings.cooccurrence_leave_session_out else None)
    return CooccurrenceOffsets(offsets, cosine_neighbours(index.X,
                                                          settings.cooccurrence_neighbours),
                               index.fingerprint(), held)
