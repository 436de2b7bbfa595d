"""Evaluation rows as the session-kNN models read them: the running session, the earlier
sessions of the history, and the query session.

A row is what every model of the plugin gets: its history (items, up to the window of the
evaluation rows), the session boundaries of that history and of the target's slot (from
:class:`~recbole_hiertcn.model.session_boundary.SessionBoundary`: the target's own session id
or time when ``target_session_known``, else a continuation), the history's times (if loaded),
and the user id. Never the target item.

* The **running session** is the history's last session when the target continues it, and
  empty when the target opens a new session.
* The **earlier sessions** are the history's other sessions, numbered back from the target:
  ``e = 1`` is the most recent one.
* The **query session** ``s`` is the running session; with ``extend_length = E > 0`` (the
  *extend* extension) and a running session shorter than ``E``, it is the last
  ``min(E, history length)`` events of the history instead - the running session preceded by
  the most recent events of the earlier sessions. The query is always a suffix of the history;
  its events have steps back ``x = 1`` (the last) ... ``l`` (the first), ``l = |s|``.
"""

import dataclasses
from typing import Optional

import numpy as np
import scipy.sparse as sp


@dataclasses.dataclass
class Rows:
    """A batch of rows as numpy arrays (see the module docstring).

    ``items`` ``[B, L]`` (0 pads), ``lengths`` ``[B]``, ``opens`` ``[B, L + 1]`` (True where a
    position opens a session; slot ``lengths[b]`` is the target's), ``users`` ``[B]``,
    ``boundary`` ``[B, L]`` (the values sessions are cut by: ids or times), ``times``
    ``[B, L]`` or None.
    """

    items: np.ndarray
    lengths: np.ndarray
    opens: np.ndarray
    users: np.ndarray
    boundary: np.ndarray
    times: Optional[np.ndarray] = None

    def __len__(self):
        return len(self.lengths)

    def take(self, index):
        """The rows at ``index`` (a slice or an index array), trimmed to their longest."""
        lengths = self.lengths[index]
        width = int(lengths.max()) if len(lengths) else 0
        return Rows(self.items[index, :width], lengths, self.opens[index, :width + 1],
                    self.users[index], self.boundary[index, :width],
                    None if self.times is None else self.times[index, :width])


class RowSessions:
    """Running, earlier and query sessions of :class:`Rows` (see the module docstring)."""

    def __init__(self, rows, n_items, extend_length=0):
        self.rows, self.n_items = rows, int(n_items)
        batch, width = rows.items.shape
        lengths = rows.lengths.astype(np.int64)
        at = np.arange(width)
        valid = at[None, :] < lengths[:, None]
        session = np.cumsum(rows.opens, axis=1) - 1
        target = session[np.arange(batch), lengths]
        back = target[:, None] - session[:, :width]  # 0: running session, e >= 1: earlier
        self.valid = valid
        self.running = valid & (back == 0)
        self.earlier = valid & (back > 0)
        self.back = np.where(valid, back, 0)
        self.running_length = self.running.sum(axis=1)
        query_length = self.running_length.copy()
        if extend_length:
            query_length = np.maximum(query_length, np.minimum(int(extend_length), lengths))
        self.query_length = query_length
        self.query_start = lengths - query_length
        last = np.maximum(lengths - 1, 0)
        has = lengths > 0
        self.has_running = self.running_length > 0
        self.last_boundary = np.where(has, rows.boundary[np.arange(batch), last]
                                      if width else 0, 0)
        self.query_time = (None if rows.times is None or not width else
                           np.where(has, rows.times[np.arange(batch), last], np.nan))
        self._query = None

    # ------------------------------------------------------------------ the query session
    def query(self):
        """Distinct items of every row's query session with their steps back (the most recent
        occurrence): ``(row, item, steps)`` sorted by (row, item), and ``|s|`` per row."""
        if self._query is None:
            width = self.rows.items.shape[1]
            inside = self.valid & (np.arange(width)[None, :] >= self.query_start[:, None])
            row, col = np.nonzero(inside)  # row-major: positions ascending within a row
            item = self.rows.items[row, col].astype(np.int64)
            steps = self.rows.lengths[row].astype(np.int64) - col
            key = row * self.n_items + item
            order = np.argsort(key, kind="stable")  # equal keys keep ascending positions
            key = key[order]
            last = np.r_[key[1:] != key[:-1], True] if len(key) else np.zeros(0, bool)
            keep = order[last]
            self._query = (row[keep], item[keep], steps[keep],
                           np.bincount(row[keep], minlength=len(self.rows)).astype(np.float64))
        return self._query

    def query_matrix(self, values):
        """CSR ``[B, n_items]`` with ``values`` (aligned with :meth:`query`) at the query's
        items; explicit zeros are kept, so every query item is an entry."""
        row, item, _, _ = self.query()
        indptr = np.r_[0, np.cumsum(np.bincount(row, minlength=len(self.rows)))]
        return sp.csr_matrix((values, item, indptr), shape=(len(self.rows), self.n_items))

    def last_items(self, count):
        """``(row, item, steps)`` of the last ``count`` events of each query (repeats kept)."""
        width = self.rows.items.shape[1]
        at = np.arange(width)[None, :]
        inside = (self.valid & (at >= self.query_start[:, None])
                  & (at >= self.rows.lengths[:, None] - int(count)))
        row, col = np.nonzero(inside)
        return (row, self.rows.items[row, col].astype(np.int64),
                self.rows.lengths[row].astype(np.int64) - col)

    # ------------------------------------------------------------------ the history
    def earlier_sessions(self):
        """Distinct ``(row, e, item)`` of the earlier sessions (``e = 1`` the most recent),
        sorted by (row, item, e)."""
        row, col = np.nonzero(self.earlier)
        item = self.rows.items[row, col].astype(np.int64)
        back = self.back[row, col].astype(np.int64)
        width = int(back.max()) + 1 if len(back) else 1
        key = (row * self.n_items + item) * width + back
        key = np.unique(key)
        back = key % width
        rest = key // width
        return rest // self.n_items, back, rest % self.n_items

    def history_counts(self):
        """``(row, item, count)``: how often each item occurs in the whole history window."""
        row, col = np.nonzero(self.valid)
        key = row * self.n_items + self.rows.items[row, col].astype(np.int64)
        key, count = np.unique(key, return_counts=True)
        return key // self.n_items, key % self.n_items, count.astype(np.float64)

    def running_items(self):
        """``(row, item)`` of the items of each running session (the unextended one)."""
        row, col = np.nonzero(self.running)
        return row, self.rows.items[row, col].astype(np.int64)
