"""Neighbour sessions of a batch of query sessions, found through sparse products.

For a chunk of rows, ``Q @ XT`` (query x item times item x session, both CSR) yields every
*candidate*: a training session that shares at least one item with the query, with

* the weighted overlap ``sum_{i in s & n} w_s(i)`` (the query's item weights ``w_s``),
* the number of shared items ``|s & n|`` (for Jaccard), and
* the *anchor*: the steps back ``x_a`` of the most recent query item that ``n`` holds. It is
  read from the same product: the query item ``x`` steps back carries the code ``4^-(x-1)``,
  the sum of the codes of the shared items lies in ``[4^-(x_a-1), 4/3 * 4^-(x_a-1))``, and its
  binary exponent gives ``x_a`` exactly (beyond :data:`ANCHOR_WINDOW` steps back, where the
  codes would underflow, the anchor is found item by item instead).

Candidates are then sampled (the ``m`` most recent, i.e. the largest session numbers of
:class:`~recbole_hiertcn.model.session_knn.index.SessionIndex`), the row's own running session
is removed, and the ``k`` most similar are kept (ties: the more recent session). Sampling uses
posting lists cut to their ``m + 1`` most recent sessions: every one of the row's ``m`` most
recent candidates is among the ``m + 1`` most recent sessions of each item it shares with the
query, so its overlap is still exact.
"""

import dataclasses
from typing import Optional

import numpy as np
import scipy.sparse as sp

ANCHOR_WINDOW = 500  # query items up to this many steps back get distinct anchor codes


def anchor_codes(steps):
    """``4^-(x-1)`` for steps back ``x`` (the same code for everything at or beyond the
    window)."""
    return np.ldexp(1.0, -2 * (np.minimum(np.asarray(steps, np.int64), ANCHOR_WINDOW) - 1))


def decode_anchor(code_sums):
    """Steps back of the most recent shared item from a sum of :func:`anchor_codes`."""
    _, exponent = np.frexp(code_sums)
    return 1 - (exponent.astype(np.int64) - 1) // 2


@dataclasses.dataclass
class Candidates:
    """Flat arrays, one entry per (row, candidate session), sorted by row: ``row``,
    ``session``, ``overlap`` (weighted), ``count`` (shared items, or None), ``codes`` (the
    sums of anchor codes, or None), ``anchor`` (steps back of the most recent shared query
    item, once :func:`resolve_anchors` ran) and ``value`` (the similarity, once computed)."""

    row: np.ndarray
    session: np.ndarray
    overlap: np.ndarray
    count: Optional[np.ndarray] = None
    codes: Optional[np.ndarray] = None
    anchor: Optional[np.ndarray] = None
    value: Optional[np.ndarray] = None

    def keep(self, mask):
        fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        return Candidates(**{name: None if array is None else array[mask]
                             for name, array in fields.items()})


def _truncated_postings(index, limit):
    """Item x session posting lists cut to their ``limit`` most recent sessions (cached)."""
    cache = index.__dict__.setdefault("_truncated", {})
    if limit not in cache:
        XT = index.XT
        counts = np.diff(XT.indptr)
        owner = np.repeat(np.arange(XT.shape[0]), counts)
        from_end = XT.indptr[owner + 1] - 1 - np.arange(XT.nnz)
        keep = from_end < limit
        indptr = np.r_[0, np.cumsum(np.minimum(counts, limit))]
        cache[limit] = sp.csr_matrix((XT.data[keep], XT.indices[keep], indptr), shape=XT.shape)
    return cache[limit]


def find_candidates(index, sessions, weights, anchor=False, count=False, sample_size=0,
                    own=None):
    """Candidates of every row of ``sessions`` (a
    :class:`~recbole_hiertcn.model.session_knn.rows.RowSessions`), the row's own running
    session (``own[row]``, -1 for none) removed, the ``sample_size`` most recent kept (0: all).

    ``weights`` are the query items' weights, aligned with ``sessions.query()``.
    """
    row_q, _, steps, _ = sessions.query()
    weights = np.asarray(weights, dtype=np.float64)
    postings = index.XT if not sample_size else _truncated_postings(index, sample_size + 1)
    ones = np.ones(len(row_q))
    if np.all(weights == 1.0) and not anchor:
        product = sessions.query_matrix(ones) @ postings
        overlap, shared, codes = product.data, product.data, None
    else:
        second = anchor_codes(steps) if anchor else ones
        product = sessions.query_matrix(weights + 1j * second) @ postings
        overlap = product.data.real
        codes = product.data.imag if anchor else None
        shared = None if anchor else product.data.imag
        if count and anchor:
            binary = sessions.query_matrix(ones) @ postings
            if not (np.array_equal(binary.indptr, product.indptr)
                    and np.array_equal(binary.indices, product.indices)):
                raise RuntimeError("sparse products of one pattern disagree")  # never expected
            shared = binary.data
    n_rows = len(sessions.rows)
    row = np.repeat(np.arange(n_rows), np.diff(product.indptr))
    session = product.indices
    keep = None
    if own is not None and np.any(own >= 0):
        keep = session != own[row]
    if sample_size:
        kept = np.arange(len(row)) if keep is None else np.flatnonzero(keep)
        chosen = top_per_row(row[kept], session[kept].astype(np.float64), session[kept],
                             sample_size, n_rows)
        if keep is not None or not np.all(chosen):
            keep = np.zeros(len(row), dtype=bool)
            keep[kept[chosen]] = True
    if keep is not None:
        row, session, overlap = row[keep], session[keep], overlap[keep]
        shared = None if shared is None else shared[keep]
        codes = None if codes is None else codes[keep]
    return Candidates(row, session.astype(np.int64), np.ascontiguousarray(overlap),
                      None if not count else np.asarray(shared, dtype=np.float64),
                      None if codes is None else np.ascontiguousarray(codes))


def resolve_anchors(index, sessions, found):
    """Set ``found.anchor`` from its codes (after the neighbours are chosen: fewer entries)."""
    found.anchor = decode_anchor(found.codes)
    far = found.anchor >= ANCHOR_WINDOW
    if np.any(far):
        found.anchor[far] = exact_anchor(index, sessions, found.row[far], found.session[far])
    return found


def exact_anchor(index, sessions, rows, neighbour):
    """Steps back of the most recent query item of ``rows[j]`` that session ``neighbour[j]``
    holds, item by item (for anchors beyond :data:`ANCHOR_WINDOW`)."""
    row_q, item_q, steps_q, _ = sessions.query()
    query_keys = row_q * index.n_items + item_q  # sorted (query() sorts by row, item)
    lengths = np.diff(index.X.indptr)[neighbour]
    pair = np.repeat(np.arange(len(rows)), lengths)
    at = np.repeat(index.X.indptr[neighbour] - np.r_[0, np.cumsum(lengths)[:-1]],
                   lengths) + np.arange(lengths.sum())
    keys = rows[pair] * index.n_items + index.X.indices[at]
    hit = np.minimum(np.searchsorted(query_keys, keys), max(len(query_keys) - 1, 0))
    inside = query_keys[hit] == keys
    best = np.full(len(rows), np.iinfo(np.int64).max)
    np.minimum.at(best, pair[inside], steps_q[hit[inside]])
    return best


def top_per_row(row, value, tie, k, n_rows, buckets=1024):
    """Mask of the entries with the ``k`` largest ``value`` (>= 0) of each row (``row``
    sorted); among equal values the larger ``tie`` wins (``tie`` distinct within a row).

    Linear in the entries: each row's values are binned into ``buckets`` equal parts of
    ``[0, row maximum]``; the entries above the bin of the ``k``-th largest are kept, and only
    the entries of that bin are ordered exactly."""
    value = np.asarray(value, dtype=np.float64)
    counts = np.bincount(row, minlength=n_rows)
    big = counts > k
    if not np.any(big):
        return np.ones(len(row), dtype=bool)
    if np.all(big[counts > 0]):
        inside, r, v, sizes = None, row, value, counts
    else:
        inside = np.flatnonzero(big[row])
        r, v, sizes = row[inside], value[inside], np.where(big, counts, 0)
    present = sizes > 0
    starts = np.r_[0, np.cumsum(sizes)[:-1]]
    top = np.zeros(n_rows)
    top[present] = np.maximum.reduceat(v, starts[present])
    scale = np.divide(buckets - 1, top, out=np.zeros(n_rows), where=top > 0)
    b = v * np.repeat(scale, sizes)
    b = b.astype(np.int64)
    np.minimum(b, buckets - 1, out=b)
    b += np.repeat(np.arange(n_rows, dtype=np.int64) * buckets, sizes)
    hist = np.bincount(b, minlength=n_rows * buckets).reshape(n_rows, buckets)
    from_top = np.cumsum(hist[:, ::-1], axis=1)[:, ::-1]  # entries in bins >= j
    threshold = (from_top >= k).sum(axis=1) - 1 + np.arange(n_rows) * buckets
    cut = np.repeat(threshold, sizes)
    above = b > cut
    level = np.flatnonzero(b == cut)
    need = k - np.where(threshold % buckets < buckets - 1,
                        from_top[np.arange(n_rows), np.minimum(threshold % buckets + 1,
                                                               buckets - 1)], 0)
    need = np.where(present, need, 0)
    lr = r[level]
    level_tie = tie[level] if inside is None else tie[inside[level]]
    order = np.lexsort((-level_tie, -v[level], lr))
    level_starts = np.r_[0, np.cumsum(np.bincount(lr, minlength=n_rows))[:-1]]
    rank = np.empty(len(level), dtype=np.int64)
    rank[order] = np.arange(len(level)) - level_starts[lr[order]]
    above[level] = rank < need[lr]
    if inside is None:
        return above
    keep = np.ones(len(row), dtype=bool)
    keep[inside] = above
    return keep


def row_max(row, value, n_rows, empty=0.0):
    """Per-row maximum of ``value`` (``row`` sorted); ``empty`` for rows without entries."""
    out = np.full(n_rows, empty, dtype=np.float64)
    if len(row):
        starts = np.flatnonzero(np.r_[True, row[1:] != row[:-1]])
        out[row[starts]] = np.maximum.reduceat(value, starts)
    return out


def row_min(row, value, n_rows, empty=0.0):
    """Per-row minimum of ``value`` (``row`` sorted)."""
    return -row_max(row, -np.asarray(value, dtype=np.float64), n_rows, -empty)


def scatter_rows(row, column, value, n_rows, n_columns):
    """``sum`` of ``value`` at ``(row, column)`` as a dense float64 ``[n_rows, n_columns]``."""
    out = np.bincount(np.asarray(row, np.int64) * n_columns + np.asarray(column, np.int64),
                      weights=np.asarray(value, np.float64), minlength=n_rows * n_columns)
    return out.astype(np.float64, copy=False).reshape(n_rows, n_columns)
