"""HierTCN's network on plain tensors: no RecBole, no dataset, no ``Interaction``.

The RecBole model (:class:`~recbole_hiertcn.model.sequential_recommender.hiertcn.HierTCN`)
wraps it for training and offline evaluation; the serving side
(:mod:`recbole_hiertcn.serving`) drives the same modules one event at a time.

A user's history is a list of sessions. The high level, a GRU, steps once per finished session
on a summary of it (the mean embedding of its items; see :mod:`~recbole_hiertcn.core.
session_summary`); its state before session ``i`` summarises sessions ``1..i-1`` (long-term
interest). The low level, a causal TCN, runs over the current session:
its input at every position is ``W_in [E[previous item] ; high-level state]``, starting from a
zero start token, so the first item of a session is predicted from the high-level state alone.
Its output is the user embedding that scores the next item (short-term interest).
"""

import torch
from torch import nn
from torch.nn import functional as F

from recbole_hiertcn.core.gap_decay import session_decay
from recbole_hiertcn.core.item_encoder import ItemEncoder
from recbole_hiertcn.core.layers import SessionGRU, SessionStateGRU, SessionTCN, session_layout
from recbole_hiertcn.core.output_heads import head_class
from recbole_hiertcn.core.seen_items import seen_item_offsets
from recbole_hiertcn.core.session_summary import MeanSummary


def dropout_or_identity(probability):
    """No module with random draws when the probability is 0, so runs without the option draw
    (and train) exactly as before it existed; neither holds parameters, so checkpoints load
    across settings."""
    return nn.Dropout(probability) if probability > 0 else nn.Identity()


class HierTCNCore(nn.Module):
    """The modules of HierTCN and how they combine.

    Args:
        settings: :class:`~recbole_hiertcn.core.settings.HierTCNSettings`.
        n_items: number of item ids, id 0 being padding.
        pretrained: ``[n_items, dim]`` fixed item vectors when ``settings.pretrained_item_field``
            is set (values are replaced by a loaded state dict; zeros of the right shape do to
            rebuild an exported model).
    """

    def __init__(self, settings, n_items, pretrained=None):
        super().__init__()
        if settings.pretrained_item_field and pretrained is None:
            raise ValueError("HierTCN: `pretrained_item_field` is set but no vectors were given")
        self.settings = settings
        self.n_items = n_items
        channels = settings.tcn_channels
        self.item_encoder = ItemEncoder(
            n_items, settings.embedding_size,
            pretrained if settings.pretrained_item_field else None, settings.freeze_pretrained)
        self.high_level = None
        self.summary = MeanSummary
        if settings.high_level == "gru":
            self.high_level = SessionStateGRU(self.summary.width(settings), settings.hidden_size,
                                              settings.num_layers, settings.dropout_prob)
            # W_in [E[x] ; s_i], without bias (as in the reference); split in two so the state
            # part is projected once per session row instead of once per position.
            self.state_projection = nn.Linear(self.high_level.state_size, channels[0],
                                              bias=False)
        self.item_projection = nn.Linear(settings.embedding_size, channels[0], bias=False)
        self.embedding_dropout = dropout_or_identity(settings.embedding_dropout)
        self.output_dropout = dropout_or_identity(settings.output_dropout)
        if settings.low_level == "tcn":
            self.low_level = SessionTCN(channels[0], channels, settings.kernel_size,
                                        settings.dilations, settings.convs_per_block,
                                        settings.dropout_prob, settings.tcn_norm)
        else:  # the reference's "HierGRU" ablation
            self.low_level = SessionGRU(channels[0], channels[-1], settings.dropout_prob)
        head = head_class(settings)
        self.output_layer = nn.Linear(channels[-1], head.width(
            n_items, settings.embedding_size, self.item_encoder.raw_vectors().size(1)))
        self.head = head(self.output_layer, self.item_encoder)
        self.seen_item_bias = seen_item_offsets(settings, n_items, channels[-1])

    @property
    def state_size(self):
        """Width of the high-level state (0 without a high level)."""
        return 0 if self.high_level is None else self.high_level.state_size

    # ------------------------------------------------------------------ batched
    def encode(self, items, opens, query=None, window=None, times=None):
        """User embeddings of a flat layout of sessions.

        Args:
            items: ``[B, T]`` item ids; the id at ``t`` is the target predicted at ``t`` and the
                input of ``t + 1``. Id 0 (padding) is never read as an input.
            opens: ``[B, T]`` True where position ``t`` opens a new session.
            query: optional ``[B]`` positions; only the output there is computed (each
                convolution only where that output depends on it).
            window: optional ``[B, W]`` contiguous positions per row (may start below 0); the
                TCN runs only there, and the outputs are right wherever a window position has
                ``receptive_field - 1`` window positions before it (or its session starts).
            times: ``[B, T]`` times of the positions; needed with ``gap_decay``.

        Returns:
            ``[B, T, C]`` outputs at every position, ``[B, W, C]`` at ``window`` or ``[B, C]``
            at ``query``. The output at ``t`` depends only on items before ``t`` and on
            ``opens`` up to ``t``.
        """
        session, position = session_layout(opens)
        states = self._session_states(items, opens, session, position, query,
                                      times)  # [B, S, C0]
        reach = self.low_level.receptive_field
        if reach is None:  # a GRU low level runs over whole sessions
            window = None
        elif query is not None:
            width = min(reach, items.size(1))
            window = query.unsqueeze(1) + torch.arange(width, device=items.device) - (width - 1)
        inputs, position = self._tcn_inputs(items, session, position, states, window)
        if query is None:
            return self.output_dropout(self.low_level(inputs, position))
        if reach is not None:
            return self.output_dropout(self.low_level.forward_last(inputs, position))
        hidden = self.low_level(inputs, position)
        return self.output_dropout(
            hidden.gather(1, query.view(-1, 1, 1).expand(-1, 1, hidden.size(-1))).squeeze(1))

    def _session_states(self, items, opens, session, position, query, times):
        """Projected high-level state before every session, ``[B, S, C0]`` (zeros without a
        high level)."""
        # Sessions whose state is read: up to the query's session, or every session of the row.
        last_session = (session.max(dim=1).values if query is None
                        else session.gather(1, query.unsqueeze(1)).squeeze(1))
        num_sessions = int(last_session.max()) + 1
        if self.high_level is None:
            return items.new_zeros(items.size(0), num_sessions, self.settings.tcn_channels[0],
                                   dtype=torch.float)
        summaries = self.summary.of_sessions(self, items, opens, session, position, num_sessions)
        decay = None
        if self.settings.gap_decay is not None:
            decay = session_decay(times, opens, session, num_sessions, self.settings.gap_decay)
        return self.state_projection(self.high_level(summaries, last_session, decay))

    def _tcn_inputs(self, items, session, position, states, window):
        """``W_in [E(previous item) ; state]`` at the window's positions (all when None)."""
        previous = F.pad(items[:, :-1], (1, 0))  # the zero start token where position == 0
        if window is not None:
            outside = (window < 0) | (window >= items.size(1))
            index = window.clamp(0, items.size(1) - 1)
            previous, session = previous.gather(1, index), session.gather(1, index)
            position = position.gather(1, index).masked_fill(outside, -1)
        state = states.gather(1, session.clamp(max=states.size(1) - 1).unsqueeze(-1).expand(
            -1, -1, states.size(-1)))
        return self.item_inputs(previous, position > 0) + state, position

    def item_inputs(self, ids, keep):
        """``W_in E[ids]`` where ``keep`` ``[B, T]`` is True, 0 elsewhere: the item part of the
        TCN's input (embedding dropout included)."""
        kept = keep.unsqueeze(-1).to(self.item_projection.weight.dtype)
        return self.item_projection(self.embedding_dropout(self.item_encoder(ids) * kept))

    # ------------------------------------------------------------------ one step at a time
    def session_state_after(self, state, raw_sum, count, recent):
        """High-level state after a finished session: ``state`` ``[B, state_size]``, the
        session's ``raw_sum`` ``[B, table dim]`` of item table vectors, ``count`` ``[B]`` and
        its last ``receptive_field`` items ``recent`` ``[B, R]`` (0 before its start)."""
        return self.high_level.step(state, self.summary.of_finished(self, raw_sum, count, recent))

    def step_output(self, previous_items, position, state):
        """Low-level output at the last of ``W`` consecutive positions of one session each.

        Args:
            previous_items: ``[B, W]`` the item before each position (ignored where
                ``position <= 0``).
            position: ``[B, W]`` position inside the session (``< 0``: before the session).
            state: ``[B, state_size]`` the session's high-level state (``[B, 0]`` without one).

        For a TCN, ``W = receptive_field`` positions give the exact output; a GRU low level
        needs the whole session.
        """
        inputs = self.item_inputs(previous_items, position > 0)
        if self.high_level is not None:
            inputs = inputs + self.state_projection(state).unsqueeze(1)
        if self.low_level.receptive_field is None:
            return self.output_dropout(self.low_level(inputs, position)[:, -1])
        return self.output_dropout(self.low_level.forward_last(inputs, position))

    # ------------------------------------------------------------------ scoring
    def retrieval_query(self, hidden):
        """``[..., d]`` query whose inner product with :meth:`retrieval_items` (plus their
        bias) is every item's score."""
        return self.head.retrieval_query(hidden)

    def retrieval_items(self):
        """``([n_items, d] item vectors, [n_items] bias or None)`` for :meth:`retrieval_query`."""
        return self.head.retrieval_items()

    def score_all(self, hidden):
        """Scores of every item: ``[..., n_items]``."""
        return self.head.score_all(hidden)

    def score_items(self, hidden, items):
        """Scores of the given items, one per row of ``hidden``."""
        return self.head.score_items(hidden, items)

    def score_columns(self, hidden, items):
        """``[M, S]``: the scores of the ids ``items`` ``[S]`` for every row of ``hidden``."""
        return self.head.score_columns(hidden, items)

