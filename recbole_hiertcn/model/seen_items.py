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
    # one scatter of each history item's kind (1: earlier session, 2: running session); the
    # maximum makes an item that is in both count as the running session's, whatever the order
    kinds = torch.zeros(history.size(0), n_items, device=items.device).scatter_reduce_(
        1, history, seen.float() + in_session.float(), "amax")
    return SeenItems(kinds == 2, kinds == 1)


def history_window(config, dataset):
    """How far back seen items count: an evaluation row's history (``max_history`` in sequence
    mode, where training positions look back as far; ``MAX_ITEM_LIST_LENGTH`` otherwise)."""
    if config["train_mode"] == "sequence":
        return getattr(dataset, "max_history", None)
    return config["MAX_ITEM_LIST_LENGTH"]


class SeenItemBias(nn.Module):
    """The two learned offsets; ``forward(seen)`` is ``current * mask + earlier * mask``."""

    def __init__(self):
        super().__init__()
        self.current = nn.Parameter(torch.zeros(()))
        self.earlier = nn.Parameter(torch.zeros(()))

    def forward(self, seen):
        return seen.current * self.current + seen.earlier * self.earlier
