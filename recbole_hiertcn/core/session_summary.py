"""What HierTCN's high level reads of each finished session: the mean of its items.

Each summary comes in two forms that give the same vectors: over a batch's flat layout of
sessions (training, offline evaluation) and for one finished session from what a served user
state keeps (:mod:`recbole_hiertcn.serving`: the running sum and count of the session's item
table vectors and its last ``receptive_field`` items). Neither holds parameters: a summary
reads modules of :class:`~recbole_hiertcn.core.network.HierTCNCore`.
"""

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
