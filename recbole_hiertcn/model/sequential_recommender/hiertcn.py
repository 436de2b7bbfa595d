"""HierTCN: Hierarchical Temporal Convolutional Networks (You et al., WWW 2019) for RecBole.

A user's history is a list of sessions. The high level, a GRU, steps once per finished session
on the mean embedding of its items; its state before session ``i`` summarises sessions
``1..i-1`` (long-term interest). The low level, a causal TCN, runs over the current session:
its input at every position is ``W_in [E[previous item] ; high-level state]``, starting from a
zero start token, so the first item of a session is predicted from the high-level state alone.
Its output is the user embedding that scores the next item (short-term interest).

Session boundaries come from a session-id field when the dataset has one, otherwise from time
gaps of at least ``session_gap`` seconds; the target row's own time (or session id) decides
whether the target opens a new session.
"""

import numbers

import torch
from torch import nn
from torch.nn import functional as F

from recbole.model.abstract_recommender import SequentialRecommender
from recbole.model.loss import BPRLoss
from recbole.utils import FeatureType

from recbole_hiertcn.data.dataset.session_dataset import SEQ_PREFIX, SEQ_TARGET_MASK
from recbole_hiertcn.model.layers import (
    SessionStateGRU,
    SessionTCN,
    session_layout,
    session_means,
)

SCORINGS = ("untied", "tied")
LOSSES = ("CE", "BPR")


def _config_error(key, message):
    return ValueError(f"HierTCN: config key `{key}` {message}")


def _positive_int(config, key):
    value = config[key]
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise _config_error(key, f"must be a positive integer, got {value!r}")
    return int(value)


def _positive_int_list(config, key):
    value = config[key]
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        value = [value]
    if (
        not isinstance(value, (list, tuple))
        or not value
        or any(isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 1 for v in value)
    ):
        raise _config_error(key, f"must be a non-empty list of positive integers, got {value!r}")
    return [int(v) for v in value]


def _choice(config, key, choices):
    value = config[key]
    if value not in choices:
        raise _config_error(key, f"must be one of {', '.join(choices)}, got {value!r}")
    return value


class HierTCN(SequentialRecommender):
    r"""HierTCN as a RecBole sequential recommender.

    Trains on RecBole's one-row-per-target batches (``train_mode: prefix``) or on batches of
    whole user sequences with the loss at every position (``train_mode: sequence``, the
    default, from :class:`~recbole_hiertcn.data.dataset.SessionDataset`).

    Config keys (defaults in ``properties/model/HierTCN.yaml``): ``embedding_size``,
    ``hidden_size``, ``num_layers``, ``tcn_channels``, ``kernel_size``, ``dilations``,
    ``convs_per_block``, ``dropout_prob``, ``session_gap``, ``session_field``, ``time_field``,
    ``scoring`` and ``loss_type``.
    """

    supports_sequence_training = True

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        self._read_config(config)
        self._choose_boundary_field(config, dataset)

        self.item_embedding = nn.Embedding(self.n_items, self.embedding_size, padding_idx=0)
        self.high_level = SessionStateGRU(
            self.embedding_size, self.hidden_size, self.num_layers, self.dropout_prob
        )
        # W_in [E[x] ; s_i], without bias (as in the reference); split in two so the state part
        # is projected once per session row instead of once per position.
        self.item_projection = nn.Linear(self.embedding_size, self.tcn_channels[0], bias=False)
        self.state_projection = nn.Linear(
            self.high_level.state_size, self.tcn_channels[0], bias=False
        )
        self.tcn = SessionTCN(
            self.tcn_channels[0], self.tcn_channels, self.kernel_size, self.dilations,
            self.convs_per_block, self.dropout_prob,
        )
        out_features = self.n_items if self.scoring == "untied" else self.embedding_size
        self.output_layer = nn.Linear(self.tcn_channels[-1], out_features)
        self.loss_fct = nn.CrossEntropyLoss() if self.loss_type == "CE" else BPRLoss()
        self.apply(self._init_weights)

    # ------------------------------------------------------------------ configuration
    def _read_config(self, config):
        self.embedding_size = _positive_int(config, "embedding_size")
        self.hidden_size = _positive_int(config, "hidden_size")
        self.num_layers = _positive_int(config, "num_layers")
        self.tcn_channels = _positive_int_list(config, "tcn_channels")
        self.kernel_size = _positive_int(config, "kernel_size")
        self.dilations = _positive_int_list(config, "dilations")
        if len(self.dilations) != len(self.tcn_channels):
            raise _config_error(
                "dilations",
                f"needs one entry per TCN block ({len(self.tcn_channels)} in `tcn_channels`), "
                f"got {self.dilations}",
            )
        self.convs_per_block = _positive_int(config, "convs_per_block")
        dropout = config["dropout_prob"]
        if not isinstance(dropout, numbers.Real) or not 0.0 <= dropout < 1.0:
            raise _config_error("dropout_prob", f"must be in [0, 1), got {dropout!r}")
        self.dropout_prob = float(dropout)
        gap = config["session_gap"]
        if isinstance(gap, bool) or not isinstance(gap, numbers.Real) or gap < 0:
            raise _config_error("session_gap", f"must be a number of seconds >= 0, got {gap!r}")
        self.session_gap = float(gap)
        self.scoring = _choice(config, "scoring", SCORINGS)
        self.loss_type = _choice(config, "loss_type", LOSSES)
        sampling = config["train_neg_sample_args"] or {}
        if self.loss_type == "BPR" and sampling.get("distribution") in (None, "none"):
            raise _config_error(
                "train_neg_sample_args",
                "must sample negatives for loss_type BPR, e.g. "
                "{distribution: uniform, sample_num: 1}",
            )

    def _choose_boundary_field(self, config, dataset):
        """Session ids if the dataset has the session field, else timestamps."""
        session_field = config["session_field"]
        time_field = config["time_field"] or config["TIME_FIELD"]
        fields = dataset.field2type
        suffix = config["LIST_SUFFIX"]
        if session_field and session_field in fields and session_field + suffix in fields:
            self.boundary_field, self.boundary_by_time = session_field, False
        elif time_field and time_field in fields and time_field + suffix in fields:
            if fields[time_field] != FeatureType.FLOAT:
                raise _config_error("time_field", f"[{time_field}] must be a float field")
            normalized = config["normalize_field"] or []
            if config["normalize_all"] or time_field in normalized:
                key = "normalize_all" if config["normalize_all"] else "normalize_field"
                raise _config_error(
                    key,
                    f"normalizes [{time_field}], but `session_gap` is in seconds; "
                    f"leave the time field unnormalized",
                )
            self.boundary_field, self.boundary_by_time = time_field, True
        else:
            raise _config_error(
                "session_field",
                f"[{session_field}] is not in the dataset, and neither is the time field "
                f"[{time_field}] (`time_field` / `TIME_FIELD`); HierTCN needs one of them to "
                f"find session boundaries",
            )
        self.boundary_list_field = self.boundary_field + suffix

    @staticmethod
    def _init_weights(module):
        if isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, std=0.02)
            if module.padding_idx is not None:
                with torch.no_grad():
                    module.weight[module.padding_idx].zero_()

    # ------------------------------------------------------------------ encoder
    def session_opens(self, values):
        """``[B, T]`` boundary values (times or session ids) -> True where a new session opens."""
        opens = torch.ones_like(values, dtype=torch.bool)
        if self.boundary_by_time:
            opens[:, 1:] = (values[:, 1:] - values[:, :-1]) >= self.session_gap
        else:
            opens[:, 1:] = values[:, 1:] != values[:, :-1]
        return opens

    def encode(self, items, opens, query=None, window=None):
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

        Returns:
            ``[B, T, C]`` outputs at every position, ``[B, W, C]`` at ``window`` or ``[B, C]``
            at ``query``. The output at ``t`` depends only on items before ``t`` and on
            ``opens`` up to ``t``.
        """
        session, position = session_layout(opens)
        # Sessions whose state is read: up to the query's session, or every session of the row.
        last_session = (session.max(dim=1).values if query is None
                        else session.gather(1, query.unsqueeze(1)).squeeze(1))
        num_sessions = int(last_session.max()) + 1
        means = session_means(self.item_embedding, items, opens, session, num_sessions)
        states = self.state_projection(self.high_level(means, last_session))  # [B, S, C0]
        if query is not None:
            width = min(self.tcn.receptive_field, items.size(1))
            window = query.unsqueeze(1) + torch.arange(width, device=items.device) - (width - 1)
        inputs, position = self._tcn_inputs(items, session, position, states, window)
        if query is not None:
            return self.tcn.forward_last(inputs, position)
        return self.tcn(inputs, position)

    def _tcn_inputs(self, items, session, position, states, window):
        """``W_in [E(previous item) ; state]`` at the window's positions (all when None)."""
        previous = F.pad(items[:, :-1], (1, 0))  # the zero start token where position == 0
        if window is not None:
            outside = (window < 0) | (window >= items.size(1))
            index = window.clamp(0, items.size(1) - 1)
            previous, session = previous.gather(1, index), session.gather(1, index)
            position = position.gather(1, index).masked_fill(outside, -1)
        previous = self.item_embedding(previous) * (position > 0).unsqueeze(-1).to(states.dtype)
        state = states.gather(1, session.clamp(max=states.size(1) - 1).unsqueeze(-1).expand(
            -1, -1, states.size(-1)))
        return self.item_projection(previous) + state, position

    def forward(self, item_seq, item_seq_len, boundary_seq, target_boundary):
        """Representation for the next item after each RecBole sequence row: ``[B, C]``.

        ``boundary_seq`` holds the times (or session ids) of ``item_seq`` and
        ``target_boundary`` the target's own, which decides whether it opens a session.
        """
        batch = item_seq.size(0)
        pad = item_seq.new_zeros(batch, 1)
        items = torch.cat([item_seq, pad], dim=1)  # the target slot stays 0: never an input
        values = torch.cat([boundary_seq, boundary_seq.new_zeros(batch, 1)], dim=1)
        values = values.scatter(1, item_seq_len.unsqueeze(1),
                                target_boundary.to(values.dtype).unsqueeze(1))
        opens = self.session_opens(values)
        return self.encode(items, opens, query=item_seq_len)

    def _row_representation(self, interaction):
        return self.forward(
            interaction[self.ITEM_SEQ],
            interaction[self.ITEM_SEQ_LEN],
            interaction[self.boundary_list_field],
            interaction[self.boundary_field],
        )

    # ------------------------------------------------------------------ scoring
    def score_all(self, hidden):
        """Scores of every item: ``[..., n_items]``."""
        out = self.output_layer(hidden)
        return out if self.scoring == "untied" else out @ self.item_embedding.weight.t()

    def score_items(self, hidden, items):
        """Scores of the given items, one per row of ``hidden``."""
        if self.scoring == "untied":
            weight = self.output_layer.weight[items]
            return (hidden * weight).sum(-1) + self.output_layer.bias[items]
        return (self.output_layer(hidden) * self.item_embedding(items)).sum(-1)

    def calculate_loss(self, interaction):
        if SEQ_TARGET_MASK in interaction:
            return self._sequence_loss(interaction)
        hidden = self._row_representation(interaction)
        pos_items = interaction[self.POS_ITEM_ID]
        if self.loss_type == "CE":
            return self.loss_fct(self.score_all(hidden), pos_items)
        neg_items = interaction[self.NEG_ITEM_ID]
        return self.loss_fct(self.score_items(hidden, pos_items),
                             self.score_items(hidden, neg_items))

    def sequence_outputs(self, interaction):
        """User embeddings at every position of a sequence batch: ``[B, T, C]``."""
        items = interaction[SEQ_PREFIX + self.ITEM_ID]
        opens = self.session_opens(interaction[SEQ_PREFIX + self.boundary_field])
        return self.encode(items, opens)

    def _sequence_loss(self, interaction):
        """Mean loss over every training target of a sequence batch.

        Targets of a row are contiguous; positions before them are context. The TCN runs only
        from ``receptive_field - 1`` positions before the first target; the context before that
        only feeds the session GRU.
        """
        mask = interaction[SEQ_TARGET_MASK]
        items = interaction[SEQ_PREFIX + self.ITEM_ID]
        opens = self.session_opens(interaction[SEQ_PREFIX + self.boundary_field])
        first, count = mask.to(torch.int8).argmax(dim=1), mask.sum(dim=1)
        reach = self.tcn.receptive_field - 1
        steps = torch.arange(int(count.max()) + reach, device=items.device)
        window = first.unsqueeze(1) - reach + steps
        hidden = self.encode(items, opens, window=window)
        chosen = (steps >= reach).unsqueeze(0) & (steps - reach < count.unsqueeze(1))
        hidden = hidden[chosen]
        targets = items.gather(1, window.clamp(0, items.size(1) - 1))[chosen]
        if self.loss_type == "CE":
            return self.loss_fct(self.score_all(hidden), targets)
        negatives = interaction[SEQ_PREFIX + self.NEG_ITEM_ID]  # [B, T, k]
        negatives = negatives.gather(1, window.clamp(0, items.size(1) - 1).unsqueeze(-1).expand(
            -1, -1, negatives.size(-1)))[chosen]
        pos = self.score_items(hidden, targets).unsqueeze(1).expand_as(negatives)
        neg = self.score_items(hidden.unsqueeze(1).expand(-1, negatives.size(1), -1), negatives)
        return self.loss_fct(pos, neg)

    def predict(self, interaction):
        hidden = self._row_representation(interaction)
        return self.score_items(hidden, interaction[self.ITEM_ID])

    def full_sort_predict(self, interaction):
        return self.score_all(self._row_representation(interaction))
