"""The training sessions, indexed sparsely: what every session-kNN model is built from.

:class:`TrainingLog` is the training part of an interaction log as flat arrays, sorted by
(user, time). :class:`SessionIndex` cuts it into sessions with the plugin's one session rule,
:class:`~recbole_hiertcn.core.session_rule.SessionRule` (a new user, a new session id, or an
idle gap ``>= gap`` seconds) and keeps:

* ``X``: the session x item matrix (CSR, 1 where the session holds the item, columns sorted),
  with ``positions`` aligned to ``X.indices``: the 1-based position of the item's most recent
  occurrence in the session (positions count events, repeats included);
* ``XT``: its transpose (item x session), the posting lists that find candidate neighbours;
* sessions numbered by recency: session ``j`` ends no later than session ``j + 1`` (ties keep
  the log's order), so "the m most recent sessions" are the m largest numbers;
* ``lengths`` (distinct items of each session), ``end_times`` (time of its last event, or
  None without times), ``users``;
* ``popularity`` (training events per item) and ``idf`` (``log(S / S_i)``, ``S`` sessions,
  ``S_i`` sessions holding item ``i``; 0 for items no session holds).

Nothing but the log it is given enters the index: an item seen only outside it has no
posting list, no popularity and no rule.
"""

import dataclasses
import hashlib
from typing import Optional

import numpy as np
import scipy.sparse as sp

from recbole_hiertcn.core.session_rule import DEFAULT_SESSION_GAP, SessionRule


@dataclasses.dataclass
class TrainingLog:
    """Training interactions as flat arrays sorted by (user, time).

    ``boundary`` holds the values that cut sessions: session ids (``by_time`` False) or times
    (``by_time`` True, a session opens at an idle gap ``>= gap``). ``times`` (or None) are the
    event times in seconds.
    """

    users: np.ndarray
    items: np.ndarray
    boundary: np.ndarray
    times: Optional[np.ndarray]
    by_time: bool
    gap: float = DEFAULT_SESSION_GAP

    @property
    def rule(self):
        return SessionRule(self.by_time, self.gap)

    def session_opens(self):
        """True where an event opens a session: a user's first event, a new session id, or a
        gap of at least ``gap`` seconds."""
        opens = self.rule.opens(self.boundary)
        if len(opens) > 1:
            opens[1:] |= self.users[1:] != self.users[:-1]
        return opens


class SessionIndex:
    """The sparse index of the training sessions of a :class:`TrainingLog` (module docstring)."""

    def __init__(self, log, n_items):
        self.n_items = int(n_items)
        self.by_time, self.gap = log.by_time, float(log.gap)
        self.rule = SessionRule(self.by_time, self.gap)
        users = np.asarray(log.users, dtype=np.int64)
        items = np.asarray(log.items, dtype=np.int64)
        if len(items) and (items.min() < 0 or items.max() >= self.n_items):
            raise ValueError("training log holds item ids outside [0, n_items)")
        opens = log.session_opens()
        in_log = np.cumsum(opens) - 1  # session of every event, numbered in log order
        starts = np.flatnonzero(opens)
        n_sessions = len(starts)
        ends = np.r_[starts[1:], len(items)].astype(np.int64)
        times = None if log.times is None else np.asarray(log.times, dtype=np.float64)
        end_times = None if times is None or not n_sessions else times[ends - 1]
        # number sessions by recency (end time; ties keep the log's order)
        order = (np.argsort(end_times, kind="stable") if end_times is not None
                 else np.arange(n_sessions))
        number = np.empty(n_sessions, dtype=np.int64)
        number[order] = np.arange(n_sessions)
        self.n_sessions = n_sessions
        self.users = users[starts][order] if n_sessions else np.zeros(0, np.int64)
        self.end_times = None if end_times is None else end_times[order]

        session = number[in_log] if len(items) else np.zeros(0, np.int64)
        position = (np.arange(len(items)) - starts[in_log] + 1) if len(items) else session
        # distinct (session, item), keeping the most recent position
        key = session * self.n_items + items
        by_key = np.lexsort((position, key))
        last = np.r_[key[by_key][1:] != key[by_key][:-1], True] if len(key) else by_key > 0
        keep = by_key[last]
        rows, cols = session[keep], items[keep]
        self.X = sp.csr_matrix((np.ones(len(keep)), cols, np.r_[0, np.cumsum(
            np.bincount(rows, minlength=n_sessions))]), shape=(n_sessions, self.n_items))
        self.positions = position[keep].astype(np.int64)
        self.keys = key[keep]  # row * n_items + column of X's entries, sorted
        self.XT = self.X.T.tocsr()
        self.XT.sort_indices()
        self.lengths = np.diff(self.X.indptr).astype(np.float64)
        self.inverse_norms = 1.0 / np.sqrt(np.maximum(self.lengths, 1.0))  # 1 / sqrt(|n|)
        self.popularity = np.bincount(items, minlength=self.n_items).astype(np.float64)
        holding = np.bincount(cols, minlength=self.n_items).astype(np.float64)
        with np.errstate(divide="ignore"):
            self.idf = np.where(holding > 0, np.log(max(n_sessions, 1) / np.maximum(holding, 1)),
                                0.0)
        # events in log order, by session number (the sequential rules read them)
        self.event_items, self.event_sessions = items, session
        self._own_lookup(log, users, starts, ends, order, number)

    # ------------------------------------------------------------------ own session
    def _own_lookup(self, log, users, starts, ends, order, number):
        """Keys that find the training session a row's running session continues."""
        self._number = number
        self._log_users = users[starts] if len(starts) else np.zeros(0, np.int64)
        if not len(starts):
            self._keys, self._span = np.zeros(0, np.int64), 1
            return
        values = np.asarray(log.boundary)
        if self.by_time:
            self._start_times = np.unique(values[starts].astype(np.float64))
            self._span = len(self._start_times) + 1
            rank = np.searchsorted(self._start_times, values[starts].astype(np.float64))
            self._keys = self._log_users * self._span + rank + 1  # sorted: (user, start)
            self._log_end_values = values[ends - 1].astype(np.float64)
        else:
            ids = values[starts].astype(np.int64)
            self._span = int(ids.max()) + 2
            keys = self._log_users * self._span + ids + 1
            self._key_order = np.argsort(keys, kind="stable")
            self._keys = keys[self._key_order]

    def own_session(self, users, values, running):
        """For every row: the number of the training session its running session continues
        (the same user's session holding the row's last history event), or -1.

        ``users``, ``values`` (boundary value of the last history event) and ``running``
        (whether the row has a running session) are ``[B]`` arrays.
        """
        out = np.full(len(users), -1, dtype=np.int64)
        if not len(self._keys) or not np.any(running):
            return out
        users = np.asarray(users, dtype=np.int64)
        if self.by_time:
            t = np.asarray(values, dtype=np.float64)
            rank = np.searchsorted(self._start_times, t, side="right") - 1
            found = np.searchsorted(self._keys, users * self._span + rank + 1, side="right") - 1
            at = np.maximum(found, 0)
            hit = (running & (found >= 0) & (self._log_users[at] == users)
                   & self.rule.continues_after(self._log_end_values[at], t))
            out[hit] = self._number[at[hit]]
        else:
            ids = np.asarray(values, dtype=np.int64)
            query = users * self._span + np.clip(ids, -1, self._span - 2) + 1
            found = np.searchsorted(self._keys, query, side="right") - 1
            at = np.maximum(found, 0)
            hit = running & (found >= 0) & (self._keys[at] == query) & (ids < self._span - 1)
            out[hit] = self._number[self._key_order[at[hit]]]
        return out

    # ------------------------------------------------------------------ lookups
    def positions_of(self, sessions, items):
        """Position of ``items[j]`` in session ``sessions[j]`` (0 where it does not hold it)."""
        query = np.asarray(sessions, np.int64) * self.n_items + np.asarray(items, np.int64)
        at = np.minimum(np.searchsorted(self.keys, query), max(len(self.keys) - 1, 0))
        if not len(self.keys):
            return np.zeros(len(query), np.int64)
        return np.where(self.keys[at] == query, self.positions[at], 0)

    def fingerprint(self):
        """Four int64 values that change with any change of the indexed sessions."""
        digest = hashlib.blake2b(digest_size=8)
        for array in (self.X.indptr, self.X.indices, self.positions, self.users):
            digest.update(np.ascontiguousarray(array, dtype=np.int64).tobytes())
        if self.end_times is not None:
            digest.update(np.ascontiguousarray(self.end_times).tobytes())
        value = int.from_bytes(digest.digest(), "little", signed=True)
        return np.array([self.n_sessions, self.X.nnz, self.n_items, value], dtype=np.int64)
