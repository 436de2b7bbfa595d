"""What HierTCN's high level reads of each finished session (``session_summary``).

Each summary comes in two forms that give the same vectors: over a batch's flat layout of
sessions (training, offline evaluation) and for one finished session from what a served user
state keeps (:mod:`recbole_hiertcn.serving`: the running sum and count of the session's item
table vectors and its last ``receptive_field`` items). Neither holds parameters: a summary
reads modules of :class:`~recbole_hiertcn.core.network.HierTCNCore`.
"""

import torch

from recbole_hiertcn.core.layers import session_means


class MeanSummary:
    """The reference's input: the mean embedding of the session's items."""

    @staticmethod
    def width(settings):
        return settings.embedding_size

    @staticmethod
    def of_sessions(core, items, opens, session, position, num_sessions):
        """``[B, num_sessions, width]``; see :func:`~recbole_hiertcn.core.layers.session_means`."""
        return core.embedding_dropout(
            session_means(core.item_encoder, items, opens, session, num_sessions))

    @staticmethod
    def of_finished(core, raw_sum, count, recent):
        mean = raw_sum / count.clamp(min=1).unsqueeze(-1).to(raw_sum.dtype)
        return core.embedding_dropout(core.item_encoder.project(mean))


class TCNSummary:
    """A learned summary: the low-level TCN read over the session's own items, without the
    high-level state, at its last item (``W_in E[item]`` at every position instead of the
    item before it). It sees the session's last ``receptive_field`` items in order, where the
    mean sees all of them unordered; the TCN is shared with the low level, so no parameters are
    added, and every session is summarised in one parallel pass."""

    @staticmethod
    def width(settings):
        return settings.tcn_channels[-1]

    @staticmethod
    def of_sessions(core, items, opens, session, position, num_sessions):
        out = core.low_level(core.item_inputs(items, items > 0), position)  # [B, T, C]
        batch, length = items.shape
        # The output at a position reads the session's items up to and including it, so a
        # session's summary is the output at its last real item. Scatter each real position's
        # index into its session's column (column num_sessions collects the rest), keep the
        # largest: -1 where a session has no real item.
        column = torch.where((items > 0) & (session < num_sessions), session, num_sessions)
        index = torch.arange(length, device=items.device).expand(batch, -1)
        last = index.new_full((batch, num_sessions + 1), -1).scatter_reduce(
            1, column, torch.where(items > 0, index, -1), "amax")[:, :num_sessions]
        summary = out.gather(1, last.clamp(min=0).unsqueeze(-1).expand(-1, -1, out.size(-1)))
        return summary * (last >= 0).unsqueeze(-1).to(summary.dtype)

    @staticmethod
    def of_finished(core, raw_sum, count, recent):
        # recent[:, j] is the item at session position count - R + j (0 before the session)
        reach = recent.size(1)
        position = count.unsqueeze(1) - reach + torch.arange(reach, device=recent.device)
        return core.low_level.forward_last(core.item_inputs(recent, recent > 0), position)


SUMMARIES = {"mean": MeanSummary, "tcn": TCNSummary}
