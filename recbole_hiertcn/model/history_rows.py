"""RecBole history rows without the cost of their padding.

A row holds ``MAX_ITEM_LIST_LENGTH`` (or ``max_history``) columns, left-aligned and zero-padded
after the row's length. Evaluation on a log where most users have a few dozen events and a few
have hundreds would otherwise push every row through the full width.
"""

import torch

# Evaluation rows per group of similar history length.
EVAL_GROUP_ROWS = 512


def trim_to_longest(lengths, *rows):
    """The ``[B, T]`` ``rows`` cut after the longest history of the batch (at least one column);
    ``None`` entries stay ``None``. Exact: the columns cut hold padding only."""
    width = max(int(lengths.max()), 1) if lengths.numel() else None
    return tuple(None if row is None or width is None else row[:, :width] for row in rows)


def in_length_groups(representation, interaction, lengths, rows=None):
    """``representation(interaction)`` (``[B, C]``) computed on groups of ``rows`` rows
    (default ``EVAL_GROUP_ROWS``) of similar length, so that each group is trimmed to its own
    longest history; rows keep their order. For evaluation: the result equals one call on the
    whole batch."""
    rows = EVAL_GROUP_ROWS if rows is None else rows
    if len(lengths) <= rows:
        return representation(interaction)
    hidden = None
    for group in torch.argsort(lengths).split(rows):
        part = representation(interaction[group])
        if hidden is None:
            hidden = part.new_empty((len(lengths),) + part.shape[1:])
        hidden[group] = part
    return hidden


def history_window(config, dataset):
    """How far back seen items count: an evaluation row's history (``max_history`` in sequence
    mode, where training positions look back as far; ``MAX_ITEM_LIST_LENGTH`` otherwise)."""
    if config["train_mode"] == "sequence":
        return getattr(dataset, "max_history", None)
    return config["MAX_ITEM_LIST_LENGTH"]
