"""Session-kNN models, sequential rules and the trivial floors, without RecBole.

Every scorer is built from a :class:`~recbole_hiertcn.model.session_knn.index.SessionIndex` of
the training sessions and scores batches of :class:`~recbole_hiertcn.model.session_knn.rows.Rows`
against every item. Notation: ``s`` the query session of a row (see
:mod:`~recbole_hiertcn.model.session_knn.rows`), ``x_s(i)`` the steps back of item ``i``'s
most recent occurrence in ``s`` (1: the last event), ``|s|`` its distinct items; ``n`` a
training session, ``|n|`` its distinct items, ``p_n(i)`` the 1-based position of ``i``'s most
recent occurrence in ``n``, ``t(n)`` the time of its last event, ``t(s)`` the time of the
row's last history event; ``1_n(i)`` is 1 if ``n`` holds ``i``.

Candidates of a row are the training sessions sharing an item with ``s``, never the row's own
running session (under ``LS`` its earlier part is training data: the same user's session that
the running session continues is removed). ``N_k(s)``: the ``k`` candidates of largest
similarity (ties: the more recent session), taken from the ``sample_size`` most recent
candidates when ``sample_size > 0``.

Raw scores ``r(i)`` (the anchor ``a(n)`` is the most recent item of ``s`` that ``n`` holds):

* **SR** (sequential rules; Kamehkhosh, Jannach & Ludewig 2017; Ludewig & Jannach 2018):
  ``W[p, q] = sum over training sessions and pairs of events p ... q, q coming d <= steps
  events after p, of w(d)``; per antecedent only the ``pruning`` heaviest rules are kept (0:
  all). ``r(q) = sum_{x=1..last_items} w(x) W[s_x, q]`` with ``s_x`` the query's event ``x``
  steps back (``last_items = 1``: the published SR, the last item only).
* **SKNN** (Jannach & Ludewig 2017): ``sim(s, n) = |s & n| / sqrt(|s| |n|)`` (cosine) or
  ``|s & n| / |s | n|`` (Jaccard); ``r(i) = sum_{n in N_k} sim(s, n) 1_n(i)``.
* **VSKNN** (V-SkNN; Ludewig & Jannach 2018): query items weighted by position,
  ``sim(s, n) = sum_{i in s & n} w(x_s(i)) / sqrt(|s| |n|)`` (cosine; Jaccard divides by
  ``|s | n|``); ``r(i) = (1 + idf_weight * idf(i)) sum_{n in N_k} sim(s, n)
  w'(x_s(a(n))) 1_n(i)`` with ``w'`` the ``score_weighting``.
* **STAN** (Garg et al., SIGIR 2019): ``w1(i) = exp(-(x_s(i) - 1) / lambda_spw)``,
  ``sim(s, n) = sum_{i in s & n} w1(i) / sqrt(|s| |n|) * exp(-|t(s) - t(n)| / lambda_snh)``,
  ``r(i) = sum_{n in N_k} sim(s, n) exp(-|p_n(i) - p_n(a(n))| / lambda_inh) 1_n(i)``.
* **VSTAN** (Latifi, Mauro & Jannach 2021): STAN with V-SkNN's recency sampling
  (``sample_size``) and choice of ``similarity``, its neighbour weight by the anchor's position
  in ``s`` as an exponential, ``exp(-(x_s(a(n)) - 1) / lambda_ipw)``, and its IDF weighting,
  ``(1 + lambda_idf * idf(i))``.
* **Popularity** (SessionPop): ``r(i)`` = training events of ``i``.
* **Repeat**: ``r(i) = c(i) + pop(i) / (max pop + 1)``, ``c(i)`` the occurrences of ``i`` in the
  row's history window: the user's most frequent items, popularity breaking ties exactly.

A decay scale set to None switches that decay off. ``w`` is a position weighting of
:mod:`~recbole_hiertcn.model.session_knn.decay`. A row's recency factors are computed relative
to its nearest candidate in time (``exp(-(|t(s)-t(n)| - min_n |t(s)-t(n)|) / lambda_snh)``),
which multiplies the row's raw scores by one constant and keeps tiny weights from underflowing;
the scores returned are normalised per row anyway.

Scores returned (:meth:`SessionScorer.scores`), per row, with the extensions of
:class:`Extensions` (Latifi, Mauro & Jannach 2021, each a switch):

    f(i) = r(i) / max_j r(j)                  (0 for a row with no score)
           + boost_weight * h(i)              (boost)
           + remind_weight * m(i)             (remind)
           + 1e-9 * pop(i) / max_j pop(j)     (ties, and rows without scores, by popularity)

and ``-inf`` for the running session's items with ``exclude_running_items`` (and for the
padding id 0). *extend* changes the query session itself (``extend_length``).
"""

import dataclasses

import numpy as np
import scipy.sparse as sp

from recbole_hiertcn.model.session_knn.decay import exp_decay, position_weight
from recbole_hiertcn.model.session_knn.neighbours import (
    find_candidates,
    resolve_anchors,
    row_max,
    row_min,
    scatter_rows,
    top_per_row,
)
from recbole_hiertcn.model.session_knn.rows import RowSessions

SIMILARITIES = ("cosine", "jaccard")
REMIND_STRATEGIES = ("recency", "session_similarity")
TIE_BREAK = 1e-9
SECONDS_PER_DAY = 86400.0


@dataclasses.dataclass(frozen=True)
class Extensions:
    """The session-aware extensions (Latifi, Mauro & Jannach 2021), each a switch.

    * ``extend`` / ``extend_length`` E: when the running session has fewer than E events,
      the query session is the last ``min(E, history)`` events of the history (the earlier
      sessions' most recent events stand in before the running ones, or alone when the
      target opens a session).
    * ``boost`` / ``boost_weight``: ``h(i) = log(1 + c(i)) / log(1 + max_j c(j))``, ``c(i)``
      the number of the row's earlier sessions (in its history window) holding ``i``: the
      items of the user's earlier sessions are weighted up, the more sessions the more.
    * ``remind`` / ``remind_strategy`` / ``remind_sessions`` R / ``remind_weight``: re-ranking
      with the user's R most recent earlier sessions ``E_1 .. E_R``: ``recency``: ``m(i) =
      1 / e`` for the most recent ``E_e`` holding ``i``; ``session_similarity``: ``m(i) =
      sum_{e <= R, i in E_e} cos(s, E_e)`` divided by its row maximum, ``cos(s, E) =
      |s & E| / sqrt(|s| |E|)``.
    * ``exclude_running_items``: items of the running session are never recommended (a
      basket holds an item once).

    The weights are against scores normalised to 1 for a row's best item, so a good weight
    depends on how a model spreads its scores: on Online Retail (validation) SR wants a boost
    of about 0.1-0.15, STAN and VSTAN, whose decays concentrate the mass, about 0.01.
    """

    extend: bool = False
    extend_length: int = 5
    boost: bool = False
    boost_weight: float = 1.0
    remind: bool = False
    remind_strategy: str = "recency"
    remind_sessions: int = 3
    remind_weight: float = 1.0
    exclude_running_items: bool = False

    def __post_init__(self):
        if self.remind_strategy not in REMIND_STRATEGIES:
            raise ValueError(f"remind_strategy must be one of {REMIND_STRATEGIES}")


class SessionScorer:
    """Scores rows against every item: raw scores from :meth:`raw_scores`, then the
    normalisation, extensions and tie-break of the module docstring."""

    uses_query = True  # False for the floors: extend does not apply

    def __init__(self, index, extensions=Extensions(), chunk_rows=128):
        self.index, self.extensions, self.chunk_rows = index, extensions, int(chunk_rows)
        self.n_items = index.n_items
        top = index.popularity.max() if index.n_items else 0.0
        self.tie_break = (TIE_BREAK * index.popularity / top if top > 0
                          else np.zeros(index.n_items))

    def scores(self, rows):
        """``[B, n_items]`` float64 scores ``f`` of :class:`Rows`."""
        out = np.empty((len(rows), self.n_items), dtype=np.float64)
        for start in range(0, len(rows), self.chunk_rows):
            part = rows.take(slice(start, start + self.chunk_rows))
            sessions = self.sessions_of(part)
            view = out[start:start + len(part)]
            view[...] = self.raw_scores(sessions)
            self.finish(view, sessions)
        return out

    def sessions_of(self, rows):
        ext = self.extensions
        extend = ext.extend_length if ext.extend and self.uses_query else 0
        return RowSessions(rows, self.n_items, extend)

    def raw_scores(self, sessions):
        """``[b, n_items]`` raw scores ``r`` (float64)."""
        raise NotImplementedError

    # ------------------------------------------------------------------ extensions
    def finish(self, scores, sessions):
        """Turn raw scores into ``f`` in place (module docstring)."""
        top = scores.max(axis=1, keepdims=True) if scores.shape[1] else scores[:, :0]
        np.divide(scores, top, out=scores, where=top > 0)
        scores[(top <= 0)[:, 0]] = 0.0
        ext = self.extensions
        if ext.boost:
            scores += ext.boost_weight * self.boost(sessions)
        if ext.remind:
            scores += ext.remind_weight * self.remind(sessions)
        scores += self.tie_break
        if ext.exclude_running_items:
            row, item = sessions.running_items()
            scores[row, item] = -np.inf
        scores[:, 0] = -np.inf
        return scores

    def boost(self, sessions):
        """``h`` of :class:`Extensions` as ``[b, n_items]``."""
        row, _, item = sessions.earlier_sessions()
        key = row * self.n_items + item
        key, count = np.unique(key, return_counts=True)
        r = key // self.n_items
        value = np.log1p(count.astype(np.float64))
        value = value / row_max(r, value, len(sessions.rows), 1.0)[r]
        return scatter_rows(r, key % self.n_items, value, len(sessions.rows), self.n_items)

    def remind(self, sessions):
        """``m`` of :class:`Extensions` as ``[b, n_items]``."""
        ext, n_rows = self.extensions, len(sessions.rows)
        row, back, item = sessions.earlier_sessions()  # sorted by (row, item, back)
        near = back <= ext.remind_sessions
        row, back, item = row[near], back[near], item[near]
        if ext.remind_strategy == "recency":
            first = np.ones(len(row), dtype=bool)
            first[1:] = (row[1:] != row[:-1]) | (item[1:] != item[:-1])
            return scatter_rows(row[first], item[first], 1.0 / back[first], n_rows,
                                self.n_items)
        q_row, q_item, _, q_size = sessions.query()
        q_keys = q_row * self.n_items + q_item
        keys = row * self.n_items + item
        at = np.minimum(np.searchsorted(q_keys, keys), max(len(q_keys) - 1, 0))
        in_query = (q_keys[at] == keys) if len(q_keys) else np.zeros(len(keys), bool)
        width = ext.remind_sessions + 1
        session_key = row * width + back
        size = np.bincount(session_key, minlength=n_rows * width)
        common = np.bincount(session_key, weights=in_query, minlength=n_rows * width)
        denominator = np.sqrt(q_size[row] * size[session_key])
        cosine = np.divide(common[session_key], denominator, out=np.zeros(len(row)),
                           where=denominator > 0)
        value = scatter_rows(row, item, cosine, n_rows, self.n_items)
        top = value.max(axis=1, keepdims=True)
        return np.divide(value, top, out=np.zeros_like(value), where=top > 0)


# ---------------------------------------------------------------------------- floors
class Popularity(SessionScorer):
    """``r(i)``: training events of item ``i``, the same for every row."""

    uses_query = False

    def raw_scores(self, sessions):
        return np.broadcast_to(self.index.popularity, (len(sessions.rows), self.n_items)).copy()


class Repeat(SessionScorer):
    """``r(i) = c(i) + pop(i) / (max pop + 1)``: the row's most frequent history items
    first, popularity breaking ties (and ranking the items the history lacks)."""

    uses_query = False

    def raw_scores(self, sessions):
        pop = self.index.popularity
        base = pop / (pop.max() + 1.0) if len(pop) else pop
        row, item, count = sessions.history_counts()
        raw = np.broadcast_to(base, (len(sessions.rows), self.n_items)).copy()
        raw[row, item] += count
        return raw


# ---------------------------------------------------------------------------- rules
class SequentialRules(SessionScorer):
    """SR: see the module docstring (``steps``, ``weighting``, ``pruning``, ``last_items``)."""

    def __init__(self, index, steps=10, weighting="div", pruning=0, last_items=1, **kwargs):
        super().__init__(index, **kwargs)
        self.steps, self.weighting = int(steps), weighting
        self.pruning, self.last_items = int(pruning), int(last_items)
        position_weight(weighting, 1)  # checks the name
        self.rules = self._rules()

    def _rules(self):
        items, session = self.index.event_items, self.index.event_sessions
        antecedents, consequents, weights = [], [], []
        for d in range(1, min(self.steps, max(len(items) - 1, 0)) + 1):
            same = session[d:] == session[:-d]
            antecedents.append(items[:-d][same])
            consequents.append(items[d:][same])
            weights.append(np.full(int(same.sum()), position_weight(self.weighting, d)))
        n = self.n_items
        if not antecedents:
            return sp.csr_matrix((n, n))
        rules = sp.csr_matrix((np.concatenate(weights), (np.concatenate(antecedents),
                                                         np.concatenate(consequents))),
                              shape=(n, n))
        rules.sum_duplicates()
        rules.eliminate_zeros()
        if self.pruning:
            row = np.repeat(np.arange(n), np.diff(rules.indptr))
            keep = top_per_row(row, rules.data, -rules.indices.astype(np.int64), self.pruning, n)
            rules = sp.csr_matrix((rules.data[keep], rules.indices[keep],
                                   np.r_[0, np.cumsum(np.bincount(row[keep], minlength=n))]),
                                  shape=(n, n))
        return rules

    def raw_scores(self, sessions):
        row, item, steps = sessions.last_items(self.last_items)
        n_rows = len(sessions.rows)
        last = sp.csr_matrix((position_weight(self.weighting, steps), (row, item)),
                             shape=(n_rows, self.n_items))
        return (last @ self.rules).toarray()


# ---------------------------------------------------------------------------- neighbours
class NeighbourScorer(SessionScorer):
    """The session-kNN family: candidates, sampling, similarity, ``N_k``, scores."""

    def __init__(self, index, k=100, sample_size=0, similarity="cosine", **kwargs):
        super().__init__(index, **kwargs)
        if similarity not in SIMILARITIES:
            raise ValueError(f"similarity must be one of {SIMILARITIES}")
        self.k, self.sample_size, self.similarity = int(k), int(sample_size), similarity

    # what a model changes
    def query_weights(self, steps):
        """``w_s`` of the query items (``steps`` back)."""
        return np.ones(len(steps))

    needs_anchor = False

    def neighbour_weight(self, found, sessions):
        """Extra factor of each neighbour's contribution (after the k are chosen)."""
        return 1.0

    def item_factor(self):
        return None

    def recency(self):
        """``lambda`` (seconds) of the neighbour recency factor, or None."""
        return None

    # the pipeline
    def neighbours(self, sessions):
        """``N_k`` of every row as :class:`~.neighbours.Candidates` with ``value`` = the
        similarity."""
        _, _, steps, size = sessions.query()
        own = self.index.own_session(sessions.rows.users, sessions.last_boundary,
                                     sessions.has_running)
        found = find_candidates(self.index, sessions, self.query_weights(steps),
                                anchor=self.needs_anchor, count=self.similarity == "jaccard",
                                sample_size=self.sample_size, own=own)
        n_rows = len(sessions.rows)
        per_row = np.bincount(found.row, minlength=n_rows)
        if self.similarity == "cosine":
            value = found.overlap * self.index.inverse_norms[found.session]
            value *= np.repeat(1.0 / np.sqrt(np.maximum(size, 1.0)), per_row)
        else:
            value = found.overlap / (np.repeat(size, per_row) + self.index.lengths[found.session]
                                     - found.count)
        scale = self.recency()
        if scale is not None and len(found.row):
            gap = np.abs(np.repeat(sessions.query_time, per_row)
                         - self.index.end_times[found.session])
            nearest = row_min(found.row, gap, n_rows)
            value *= exp_decay(gap - np.repeat(nearest, per_row), scale)
        found.value = value
        chosen = found.keep(top_per_row(found.row, value, found.session, self.k, n_rows))
        return resolve_anchors(self.index, sessions, chosen) if self.needs_anchor else chosen

    def raw_scores(self, sessions):
        found = self.neighbours(sessions)
        weight = found.value * self.neighbour_weight(found, sessions)
        raw = self.spread(found, weight, sessions)
        factor = self.item_factor()
        return raw if factor is None else raw * factor

    def spread(self, found, weight, sessions):
        """``sum_n weight(n) 1_n(i)``: each neighbour's items, with its weight."""
        n_rows = len(sessions.rows)
        chosen = sp.csr_matrix((weight, found.session, np.r_[0, np.cumsum(np.bincount(
            found.row, minlength=n_rows))]), shape=(n_rows, self.index.n_sessions))
        return (chosen @ self.index.X).toarray()


class SKNN(NeighbourScorer):
    """SKNN: binary query, cosine or Jaccard similarity (module docstring)."""


class VSKNN(NeighbourScorer):
    """V-SkNN: position-weighted query, anchor-weighted neighbours, IDF (module docstring)."""

    def __init__(self, index, weighting="div", score_weighting="div", idf_weight=0.0,
                 **kwargs):
        super().__init__(index, **kwargs)
        position_weight(weighting, 1)
        position_weight(score_weighting, 1)
        self.weighting, self.score_weighting = weighting, score_weighting
        self.idf_weight = float(idf_weight)
        self.needs_anchor = score_weighting != "same"

    def query_weights(self, steps):
        return position_weight(self.weighting, steps)

    def neighbour_weight(self, found, sessions):
        if not self.needs_anchor:
            return 1.0
        return position_weight(self.score_weighting, found.anchor)

    def item_factor(self):
        return None if not self.idf_weight else 1.0 + self.idf_weight * self.index.idf


class STAN(NeighbourScorer):
    """STAN: exponential position, recency and neighbour-position decays (module
    docstring)."""

    needs_anchor = True

    def __init__(self, index, lambda_spw=1.02, lambda_snh=5.0, lambda_inh=2.05, **kwargs):
        super().__init__(index, **kwargs)
        self.lambda_spw, self.lambda_inh = lambda_spw, lambda_inh
        self.lambda_snh = None if lambda_snh is None else float(lambda_snh) * SECONDS_PER_DAY
        if self.lambda_snh is not None and index.end_times is None:
            raise ValueError("lambda_snh needs the times of the training sessions")

    def query_weights(self, steps):
        return exp_decay(np.asarray(steps) - 1, self.lambda_spw)

    def recency(self):
        return self.lambda_snh

    def spread(self, found, weight, sessions):
        """``sum_n weight(n) exp(-|p_n(i) - p_n(a(n))| / lambda_inh) 1_n(i)``."""
        if self.lambda_inh is None:
            return super().spread(found, weight, sessions)
        index, n_rows = self.index, len(sessions.rows)
        anchor_item = sessions.rows.items[found.row, sessions.rows.lengths[found.row]
                                          - found.anchor].astype(np.int64)
        # one kernel row per distinct (neighbour, anchor item)
        pair_key, pair = np.unique(found.session * index.n_items + anchor_item,
                                   return_inverse=True)
        session = pair_key // index.n_items
        centre = index.positions_of(session, pair_key % index.n_items)
        width = int(index.positions.max()) + 1 if len(index.positions) else 1
        lengths = np.diff(index.X.indptr)[session]
        at = np.repeat(index.X.indptr[session] - np.r_[0, np.cumsum(lengths)[:-1]],
                       lengths) + np.arange(lengths.sum())
        table = exp_decay(np.arange(width), self.lambda_inh)
        distance = np.abs(index.positions[at] - np.repeat(centre, lengths))
        kernel = sp.csr_matrix((table[distance], index.X.indices[at],
                                np.r_[0, np.cumsum(lengths)]), shape=(len(session), index.n_items))
        chosen = sp.csr_matrix((weight, pair.ravel(), np.r_[0, np.cumsum(np.bincount(
            found.row, minlength=n_rows))]), shape=(n_rows, len(session)))
        return (chosen @ kernel).toarray()


class VSTAN(STAN):
    """VSTAN: STAN with recency sampling, a similarity choice, the anchor's position weight
    and IDF (module docstring)."""

    def __init__(self, index, lambda_ipw=1.02, lambda_idf=None, **kwargs):
        super().__init__(index, **kwargs)
        self.lambda_ipw = lambda_ipw
        self.lambda_idf = None if lambda_idf in (None, 0) else float(lambda_idf)

    def neighbour_weight(self, found, sessions):
        return exp_decay(found.anchor - 1, self.lambda_ipw)

    def item_factor(self):
        return None if self.lambda_idf is None else 1.0 + self.lambda_idf * self.index.idf
