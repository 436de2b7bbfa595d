"""Learned score offsets for the items a user has already interacted with.

Option ``seen_item_bias`` of HierTCN. Two scalars are added to the score of an item the query
position has seen: ``current`` when the item is earlier in the running session, ``earlier`` when
it is only in earlier sessions of the history. Training sets them from the data: on a log where
a basket never holds an item twice ``current`` falls far below 0 (novelty), on one where users
come back to items ``earlier`` rises above 0 (repeat consumption) - the simplest form of the
repeat / explore split of repeat-aware recommenders such as RepeatNet. A dot product with one
user vector cannot express "these 60 items, and no others" for every user, so the offsets
add what the embedding cannot; both start at 0 (the reference's scores).
"""

from typing import NamedTuple

import torch
from torch import nn


class SeenItems(NamedTuple):
    """``[M, n_items]`` bool masks of the query positions: ``current`` items earlier in the
    running session, ``earlier`` items seen only in earlier sessions."""

    current: torch.Tensor
    earlier: torch.Tensor

    def gather(self, items):
        """The masks at ``items`` (``[M]`` or ``[M, k]`` item ids), same shape as ``items``."""
        index = items if items.dim() == 2 else items.unsqueeze(1)
        current, earlier = self.current.gather(1, index), self.earlier.gather(1, index)
        if items.dim() == 1:
            current, earlier = current.squeeze(1), earlier.squeeze(1)
        return SeenItems(current, earlier)


def seen_items(items, opens, rows, positions, n_items, window=None):
    """What each query position has seen.

    Args:
        items: ``[B, T]`` item ids of a flat layout of sessions (0: padding, never seen).
        opens: ``[B, T]`` True where a position opens a session.
        rows, positions: ``[M]`` the query positions (row of the batch, position in it). A
            query sees the items strictly before its position, and its session is that of its
            own position (a position that opens a session sees no item of the running one).
        n_items: number of item ids.
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
    in_session = seen & (history_session == query_session)
    # counts, not a boolean scatter: an item both in and out of the running session must not
    # depend on which of its two writes lands last
    current = _any_at(history, in_session, n_items)
    earlier = _any_at(history, seen & ~in_session, n_items) & ~current
    return SeenItems(current, earlier)


def seen_in_rows(item_seq, lengths, opens, n_items):
    """SeenItems of RecBole history rows (``[B, L]`` items, ``[B]`` lengths), the query being
    each row's target slot; ``opens`` ``[B, L + 1]`` covers the slot (its session decides what
    is "current")."""
    items = torch.cat([item_seq, item_seq.new_zeros(item_seq.size(0), 1)], dim=1)
    rows = torch.arange(items.size(0), device=items.device)
    return seen_items(items, opens, rows, lengths, n_items)


def _any_at(ids, flags, n_items):
    """``[M, n_items]`` True at the ids whose flag is set in their row."""
    counts = torch.zeros(ids.size(0), n_items, device=ids.device)
    return counts.scatter_add_(1, ids, flags.to(counts.dtype)) > 0


class SeenItemBias(nn.Module):
    """The two learned offsets; ``forward(seen)`` is ``current * mask + earlier * mask``."""

    def __init__(self):
        super().__init__()
        self.current = nn.Parameter(torch.zeros(()))
        self.earlier = nn.Parameter(torch.zeros(()))

    def forward(self, seen):
        return seen.current * self.current + seen.earlier * self.earlier
