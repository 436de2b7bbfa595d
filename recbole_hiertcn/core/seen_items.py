"""Learned score offsets for the items a user has already interacted with.

Option ``seen_item_bias`` of HierTCN. Two scalars are added to the score of an item the query
position has seen: ``current`` when the item is earlier in the running session, ``earlier`` when
it is only in earlier sessions of the history. Training sets them from the data: on a log where
a basket never holds an item twice ``current`` falls far below 0 (novelty), on one where users
come back to items ``earlier`` rises above 0 (repeat consumption) - the simplest form of the
repeat / explore split of repeat-aware recommenders such as RepeatNet. A dot product with one
user vector cannot express "these 60 items, and no others" for every user, so the offsets
add what the embedding cannot; both start at 0 (the reference's scores).

Option ``seen_item_counts`` (:class:`SeenItemCounts`) adds, for an item of earlier sessions,
how often and how recently the user had it and a learned per-item repeat propensity: a flag
cannot tell a weekly staple from a one-off purchase, which is what ranks a grocery household's
next basket.

Option ``seen_item_gate`` (:class:`OffsetGate`) makes each offset depend on the query: every
learned term is scaled by ``2 * sigmoid(w . hidden + b)``, ``hidden`` the user vector the item
scores come from - the mode switch of repeat-aware recommenders (RepeatNet), which trust a
user's past more for a household restocking than for one browsing something new. The gate
starts at 1 (``w``, ``b`` 0): the offsets of the model without it.
"""

from typing import NamedTuple

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F


class SeenItems(NamedTuple):
    """Bool masks, one per kind of seen item: ``current`` earlier in the running session,
    ``earlier`` seen only in earlier sessions (``[M, n_items]`` for every item, or the shape of
    the items asked for)."""

    current: torch.Tensor
    earlier: torch.Tensor


EARLIER, RUNNING = 1, 2  # a history position's kind (0: not seen by the query)


def column_slots(items, n_items):
    """``[n_items]`` long: the slot of each asked id in ``items`` ``[S]`` (a repeated id: one
    slot for all its copies), slot ``S`` for every id not asked. Scattering a history into
    ``S + 1`` slots and reading ``[:, slots[items]]`` costs ``O(M * S)``, not
    ``O(M * n_items)``."""
    slots = torch.full((n_items,), items.numel(), dtype=torch.long, device=items.device)
    slots[items] = torch.arange(items.numel(), device=items.device)
    return slots


class SeenHistory(NamedTuple):
    """What each query position has seen, kept as its history: ``items`` ``[M, T]``, the
    int8 ``kinds`` ``[M, T]`` of those positions (0 not seen, ``EARLIER``, ``RUNNING``) and
    their ``ages`` ``[M, T]``: how many sessions before the query's session each lies (0 in
    the running one).
    Masks over the whole catalogue are built only where every item is scored (:meth:`masks`);
    scoring a few items per query compares them with the history instead (:meth:`at`), which
    costs ``O(M * k * T)`` rather than ``O(M * n_items)`` - a BPR batch on a million-item
    catalogue must not build dense masks."""

    items: torch.Tensor
    kinds: torch.Tensor
    ages: torch.Tensor

    def _kinds_of_every_item(self, n_items):
        # one scatter of each history position's kind; the maximum makes an item that is in
        # both the running and an earlier session count as the running session's
        return torch.zeros(self.items.size(0), n_items, dtype=self.kinds.dtype,
                           device=self.items.device).scatter_reduce_(1, self.items, self.kinds,
                                                                     "amax")

    def masks(self, n_items):
        """``[M, n_items]`` :class:`SeenItems` of every item id."""
        kinds = self._kinds_of_every_item(n_items)
        return SeenItems(kinds == RUNNING, kinds == EARLIER)

    def columns(self, items, n_items):
        """``[M, S]`` :class:`SeenItems` of ``items`` ``[S]``, ids shared by every query (a
        sampled softmax's negatives): one int8 scatter into a slot per asked id, not over the
        whole catalogue."""
        slot = column_slots(items, n_items)
        kinds = torch.zeros(self.items.size(0), items.numel() + 1, dtype=self.kinds.dtype,
                            device=self.items.device).scatter_reduce_(
                                1, slot[self.items], self.kinds, "amax")[:, slot[items]]
        return SeenItems(kinds == RUNNING, kinds == EARLIER)

    def at(self, items):
        """:class:`SeenItems` of ``items`` (``[M]`` or ``[M, k]`` ids), same shape as them."""
        asked = items if items.dim() == 2 else items.unsqueeze(1)  # [M, k]
        matches = asked.unsqueeze(2) == self.items.unsqueeze(1)  # [M, k, T]
        kinds = (matches * self.kinds.unsqueeze(1)).amax(dim=2)
        if items.dim() == 1:
            kinds = kinds.squeeze(1)
        return SeenItems(kinds == RUNNING, kinds == EARLIER)


def seen_items(items, opens, rows, positions, window=None):
    """What each query position has seen, as a :class:`SeenHistory`.

    Args:
        items: ``[B, T]`` item ids of a flat layout of sessions (0: padding, never seen).
        opens: ``[B, T]`` True where a position opens a session.
        rows, positions: ``[M]`` the query positions (row of the batch, position in it). A
            query sees the items strictly before its position, and its session is that of its
            own position (a position that opens a session sees no item of the running one).
        window: optional number of positions a query looks back (its history's length limit).
    """
    session = torch.cumsum(opens.long(), dim=1)
    history, history_session = items[rows], session[rows]  # [M, T]
    query_session = session[rows, positions].unsqueeze(1)
    offset = torch.arange(items.size(1), device=items.device).unsqueeze(0)
    before = offset < positions.unsqueeze(1)
    if window is not None:
        before &= offset >= positions.unsqueeze(1) - window
    seen = before & (history > 0)
    running = seen & (history_session == query_session)
    kinds = torch.where(running, RUNNING, torch.where(seen, EARLIER, 0)).to(torch.int8)
    return SeenHistory(history, kinds, query_session - history_session)


def seen_in_window(window, running):
    """One served user's seen items, the numpy form of :func:`seen_items` for a query that
    sees all of ``window`` (its last item ids, oldest first; 0: none), of which the last
    ``running`` are the running session's. Returns ``(current, earlier)``: the distinct ids of
    each kind, an id in both counting as ``current``."""
    in_session = np.zeros(window.size, bool)
    in_session[window.size - min(running, window.size):] = True
    current = np.unique(window[in_session & (window > 0)])
    earlier = np.setdiff1d(window[~in_session & (window > 0)], current)
    return current, earlier


class OffsetGate(nn.Module):
    """Per-query scales of ``groups`` offset terms: ``2 * sigmoid(hidden @ W + b)``, in
    (0, 2), exactly 1 at the start (``W``, ``b`` 0)."""

    def __init__(self, hidden_size, groups):
        super().__init__()
        # built without drawing a random start (zeros follow): the gate leaves the random
        # stream, and so dropout and sampled negatives, as they are without it
        self.linear = nn.utils.skip_init(nn.Linear, hidden_size, groups)
        nn.init.zeros_(self.linear.weight)
        nn.init.zeros_(self.linear.bias)

    def forward(self, hidden):
        """``[..., groups]`` scales of ``hidden`` ``[..., hidden_size]``."""
        return 2.0 * torch.sigmoid(self.linear(hidden))


def gate_scales(gate, hidden, owner):
    """``gate(hidden)``, or None without a gate; ``owner`` names the module in the error of a
    gated module called without the query vectors."""
    if gate is None:
        return None
    if hidden is None:
        raise ValueError(f"{owner}: seen_item_gate scales the offsets by the query's vector; "
                         "pass hidden")
    return gate(hidden)


def scaled(term, scales, group):
    """``term`` times the scale of ``group`` of each query (``scales`` ``[M, G]``, or shaped as
    the asked ids plus ``G``; None: unscaled), broadcast over the term's trailing columns."""
    if scales is None:
        return term
    scale = scales[..., group]
    while scale.dim() < term.dim():
        scale = scale.unsqueeze(-1)
    return term * scale


class SeenItemBias(nn.Module):
    """The two learned offsets; ``forward(seen)`` (:class:`SeenItems` masks) is
    ``current * seen.current + earlier * seen.earlier``. :meth:`all`, :meth:`columns` and
    :meth:`at` give the offsets of a :class:`SeenHistory` over the catalogue, over ids shared
    by every query, or at ids per query. With ``gate_size`` (the width of the query vectors)
    each term is scaled per query (:class:`OffsetGate`) and those three take ``hidden``."""

    GROUPS = 2  # gated terms: current, earlier

    def __init__(self, n_items, gate_size=None):
        super().__init__()
        self.n_items = n_items
        self.current = nn.Parameter(torch.zeros(()))
        self.earlier = nn.Parameter(torch.zeros(()))
        self.gate = None if gate_size is None else OffsetGate(gate_size, self.GROUPS)

    def forward(self, seen, scales=None):
        return (scaled(seen.current * self.current, scales, 0)
                + scaled(seen.earlier * self.earlier, scales, 1))

    def _scales(self, hidden):
        return gate_scales(self.gate, hidden, type(self).__name__)

    def all(self, history, hidden=None):
        """``[M, n_items]`` offsets of every item id."""
        return self(history.masks(self.n_items), self._scales(hidden))

    def columns(self, history, items, hidden=None):
        """``[M, S]`` offsets of the ids ``items`` ``[S]``."""
        return self(history.columns(items, self.n_items), self._scales(hidden))

    def at(self, history, items, hidden=None):
        """Offsets of ``items`` (``[M]`` or ``[M, k]`` ids), same shape as them; ``hidden``
        ``[M, C]``, or ``[M, k, C]`` with ``[M, k]`` ids."""
        return self(history.at(items), self._scales(hidden))


class SeenItemCounts(SeenItemBias):
    """:class:`SeenItemBias` plus, for an item of earlier sessions only (not in the running
    one), ``count_weight * log(1 + c) + repeat[item]``: ``c`` sums ``decay ** (age - 1)`` over
    the item's occurrences in earlier sessions (``age`` sessions back, so the last session's
    count 1 each), ``decay`` in (0, 1) learned; ``repeat`` one learned scalar per item (how
    likely it is bought again). Every new parameter starts where the offsets are those of
    :class:`SeenItemBias` (weight 0, repeat 0; decay 0.9). Gated, the count and repeat terms
    share one scale."""

    GROUPS = 3  # gated terms: current, earlier, count and repeat

    def __init__(self, n_items, gate_size=None):
        super().__init__(n_items, gate_size)
        self.count_weight = nn.Parameter(torch.zeros(()))
        self.decay_logit = nn.Parameter(torch.tensor(2.1972))  # sigmoid: 0.9
        self.repeat = nn.Parameter(torch.zeros(n_items))

    def _occurrence_weights(self, history):
        """``[M, T]``: ``decay ** (age - 1)`` at earlier sessions' positions, 0 elsewhere."""
        steps_back = (history.ages - 1).clamp(min=0).to(self.decay_logit.dtype)
        weights = torch.exp(steps_back * F.logsigmoid(self.decay_logit))
        return torch.where(history.kinds == EARLIER, weights, torch.zeros_like(weights))

    def _extra(self, earlier, counts, repeat, scales):
        return scaled(earlier * (self.count_weight * torch.log1p(counts) + repeat), scales, 2)

    def _counts_of_every_item(self, history):
        weights = self._occurrence_weights(history)
        return torch.zeros(weights.size(0), self.n_items, dtype=weights.dtype,
                           device=weights.device).scatter_add(1, history.items, weights)

    def all(self, history, hidden=None):
        seen, scales = history.masks(self.n_items), self._scales(hidden)
        return self(seen, scales) + self._extra(
            seen.earlier, self._counts_of_every_item(history), self.repeat, scales)

    def columns(self, history, items, hidden=None):
        seen, scales = history.columns(items, self.n_items), self._scales(hidden)
        # a training step's hot path: one slot per asked id (column_slots)
        slot = column_slots(items, self.n_items)
        weights = self._occurrence_weights(history)
        slots = torch.zeros(weights.size(0), items.numel() + 1, dtype=weights.dtype,
                            device=weights.device).scatter_add(1, slot[history.items], weights)
        counts = slots[:, slot[items]]
        return self(seen, scales) + self._extra(seen.earlier, counts, self.repeat[items], scales)

    def at(self, history, items, hidden=None):
        seen, scales = history.at(items), self._scales(hidden)
        asked = items if items.dim() == 2 else items.unsqueeze(1)  # [M, k]
        matches = asked.unsqueeze(2) == history.items.unsqueeze(1)  # [M, k, T]
        counts = (matches * self._occurrence_weights(history).unsqueeze(1)).sum(dim=2)
        if items.dim() == 1:
            counts = counts.squeeze(1)
        return self(seen, scales) + self._extra(seen.earlier, counts, self.repeat[items], scales)


def seen_item_offsets(settings, n_items, query_size):
    """The offsets module the settings ask for (None without ``seen_item_bias``);
    ``query_size``: the width of the vectors item scores come from (the gate's input)."""
    if not settings.seen_item_bias:
        return None
    gate_size = query_size if settings.seen_item_gate else None
    kind = SeenItemCounts if settings.seen_item_counts else SeenItemBias
    return kind(n_items, gate_size)
