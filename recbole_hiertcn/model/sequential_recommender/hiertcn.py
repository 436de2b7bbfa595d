"""HierTCN: Hierarchical Temporal Convolutional Networks (You et al., WWW 2019) for RecBole.

A user's history is a list of sessions. The high level, a GRU, steps once per finished session
on the mean embedding of its items; its state before session ``i`` summarises sessions
``1..i-1`` (long-term interest). The low level, a causal TCN, runs over the current session:
its input at every position is ``W_in [E[previous item] ; high-level state]``, starting from a
zero start token, so the first item of a session is predicted from the high-level state alone.
Its output is the user embedding that scores the next item (short-term interest).

Session boundaries come from a session-id field when the dataset has one, otherwise from time
gaps of at least ``session_gap`` seconds; the target row's own time (or session id) decides
whether the target opens a new session (``target_session_known: False`` withholds it: every
target is predicted as a continuation of the running session).
"""

import numbers

import torch
from torch import nn
from torch.nn import functional as F

from recbole.model.abstract_recommender import SequentialRecommender
from recbole.model.loss import BPRLoss

from recbole_hiertcn.data.dataset.session_dataset import SEQ_PREFIX, SEQ_TARGET_MASK
from recbole_hiertcn.model.config_values import (
    choice,
    config_error,
    positive_int,
    positive_int_list,
    probability,
)
from recbole_hiertcn.model.history_rows import in_length_groups, trim_to_longest
from recbole_hiertcn.model.item_encoder import ItemEncoder
from recbole_hiertcn.model.layers import (
    SessionGRU,
    SessionStateGRU,
    SessionTCN,
    session_decay,
    session_layout,
    session_means,
)
from recbole_hiertcn.model.session_boundary import SessionBoundary, append_target

SCORINGS = ("untied", "tied")
OUTPUT_MODES = ("scores", "embedding")
HIGH_LEVELS = ("gru", "none")  # none: the "TCN over the current session only" ablation
LOW_LEVELS = ("tcn", "gru")  # gru: the reference's "HierGRU" ablation
LOSSES = ("CE", "BPR")
MODEL = "HierTCN"


def _config_error(key, message):
    return config_error(MODEL, key, message)


class HierTCN(SequentialRecommender):
    r"""HierTCN as a RecBole sequential recommender.

    Trains on RecBole's one-row-per-target batches (``train_mode: prefix``) or on batches of
    whole user sequences with the loss at every position (``train_mode: sequence``, the
    default, from :class:`~recbole_hiertcn.data.dataset.SessionDataset`).

    The Pinterest setting of the reference is available too: fixed pretrained item vectors
    (``pretrained_item_field``), an output regressed into that vector space and trained with the
    ``hinge_logsigmoid`` loss against impressions of the same feed view
    (``output_mode: embedding``), and a decay of the session state with the time between sessions
    (``gap_decay``).

    Config keys (defaults and one-line documentation in ``properties/model/HierTCN.yaml``):
    ``embedding_size``, ``hidden_size``, ``num_layers``, ``tcn_channels``, ``kernel_size``,
    ``dilations``, ``convs_per_block``, ``dropout_prob``, ``session_gap``, ``session_field``,
    ``time_field``, ``scoring``, ``loss_type``, ``pretrained_item_field``,
    ``freeze_pretrained``, ``output_mode``, ``hinge_margin``, ``negatives``, ``gap_decay``.
    """

    supports_sequence_training = True

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        self.list_suffix = config["LIST_SUFFIX"]
        self._read_config(config)
        self._choose_boundary_field(config, dataset)

        self.item_encoder = ItemEncoder(self.n_items, self.embedding_size,
                                        self._pretrained_vectors(config, dataset),
                                        self.freeze_pretrained)
        self.high_level = None
        if self.high_level_kind == "gru":
            self.high_level = SessionStateGRU(
                self.embedding_size, self.hidden_size, self.num_layers, self.dropout_prob
            )
            # W_in [E[x] ; s_i], without bias (as in the reference); split in two so the state
            # part is projected once per session row instead of once per position.
            self.state_projection = nn.Linear(
                self.high_level.state_size, self.tcn_channels[0], bias=False
            )
        self.item_projection = nn.Linear(self.embedding_size, self.tcn_channels[0], bias=False)
        if self.low_level_kind == "tcn":
            self.low_level = SessionTCN(
                self.tcn_channels[0], self.tcn_channels, self.kernel_size, self.dilations,
                self.convs_per_block, self.dropout_prob,
            )
        else:  # the reference's "HierGRU" ablation
            self.low_level = SessionGRU(self.tcn_channels[0], self.tcn_channels[-1],
                                        self.dropout_prob)
        if self.output_mode == "embedding":
            out_features = self.item_encoder.raw_vectors().size(1)
        else:
            out_features = self.n_items if self.scoring == "untied" else self.embedding_size
        self.output_layer = nn.Linear(self.tcn_channels[-1], out_features)
        self.loss_fct = nn.CrossEntropyLoss() if self.loss_type == "CE" else BPRLoss()

    # ------------------------------------------------------------------ configuration
    def _read_config(self, config):
        self.embedding_size = positive_int(MODEL, config, "embedding_size")
        self.hidden_size = positive_int(MODEL, config, "hidden_size")
        self.num_layers = positive_int(MODEL, config, "num_layers")
        self.tcn_channels = positive_int_list(MODEL, config, "tcn_channels")
        self.kernel_size = positive_int(MODEL, config, "kernel_size")
        self.dilations = positive_int_list(MODEL, config, "dilations")
        if len(self.dilations) != len(self.tcn_channels):
            raise _config_error(
                "dilations",
                f"needs one entry per TCN block ({len(self.tcn_channels)} in `tcn_channels`), "
                f"got {self.dilations}",
            )
        self.convs_per_block = positive_int(MODEL, config, "convs_per_block")
        self.dropout_prob = probability(MODEL, config, "dropout_prob")
        self.scoring = choice(MODEL, config, "scoring", SCORINGS)
        self.loss_type = choice(MODEL, config, "loss_type", LOSSES)
        self.pretrained_field = config["pretrained_item_field"]
        self.freeze_pretrained = config["freeze_pretrained"] is not False
        self.output_mode = choice(MODEL, config, "output_mode", OUTPUT_MODES)
        self.high_level_kind = choice(MODEL, config, "high_level", HIGH_LEVELS)
        self.low_level_kind = choice(MODEL, config, "low_level", LOW_LEVELS)
        if self.output_mode == "embedding":
            if not self.pretrained_field:
                raise _config_error("output_mode", "'embedding' regresses into the pretrained "
                                    "item space: set `pretrained_item_field`")
            if (config["train_mode"] or "prefix") != "sequence":
                raise _config_error("output_mode", "'embedding' takes its negatives from the "
                                    "sequence loader: set `train_mode: sequence`")
        margin = config["hinge_margin"]
        self.hinge_margin = 0.1 if margin is None else float(margin)
        decay = config["gap_decay"]
        if decay is not None and (isinstance(decay, bool) or not isinstance(decay, numbers.Real)
                                  or decay <= 0):
            raise _config_error("gap_decay", f"must be a positive number of seconds or ~, got "
                                f"{decay!r}")
        self.gap_decay = None if decay is None else float(decay)
        sampling = config["train_neg_sample_args"] or {}
        if self.loss_type == "BPR" and sampling.get("distribution") in (None, "none"):
            raise _config_error(
                "train_neg_sample_args",
                "must sample negatives for loss_type BPR, e.g. "
                "{distribution: uniform, sample_num: 1}",
            )

    def _choose_boundary_field(self, config, dataset):
        """Session ids if the dataset has the session field, else timestamps."""
        self.boundary = SessionBoundary(MODEL, config, dataset)
        if self.gap_decay is not None and not self.boundary.has_times:
            raise _config_error("gap_decay",
                                f"needs the time field [{self.boundary.time_field}] loaded")

    def _pretrained_vectors(self, config, dataset):
        """``[n_items, dim]`` vectors of ``pretrained_item_field`` from the item features."""
        field = self.pretrained_field
        if not field:
            return None
        item_feat = getattr(dataset, "item_feat", None)
        if item_feat is None or field not in item_feat:
            raise _config_error("pretrained_item_field",
                                f"[{field}] is not an item feature; load it with "
                                f"load_col: {{item: [{self.ITEM_ID}, {field}]}}")
        vectors = item_feat[field].float()
        if vectors.dim() != 2 or vectors.size(0) != self.n_items:
            raise _config_error("pretrained_item_field",
                                f"[{field}] must be a float_seq of one vector per item, got "
                                f"shape {tuple(vectors.shape)}")
        return vectors

    # ------------------------------------------------------------------ encoder
    def session_opens(self, values):
        """``[B, T]`` boundary values (times or session ids) -> True where a new session opens."""
        return self.boundary.opens(values)

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
        states = self._session_states(items, opens, session, query, times)  # [B, S, C0]
        reach = self.low_level.receptive_field
        if reach is None:  # a GRU low level runs over whole sessions
            window = None
        elif query is not None:
            width = min(reach, items.size(1))
            window = query.unsqueeze(1) + torch.arange(width, device=items.device) - (width - 1)
        inputs, position = self._tcn_inputs(items, session, position, states, window)
        if query is None:
            return self.low_level(inputs, position)
        if reach is not None:
            return self.low_level.forward_last(inputs, position)
        hidden = self.low_level(inputs, position)
        return hidden.gather(1, query.view(-1, 1, 1).expand(-1, 1, hidden.size(-1))).squeeze(1)

    def _session_states(self, items, opens, session, query, times):
        """Projected high-level state before every session, ``[B, S, C0]`` (zeros without a
        high level)."""
        # Sessions whose state is read: up to the query's session, or every session of the row.
        last_session = (session.max(dim=1).values if query is None
                        else session.gather(1, query.unsqueeze(1)).squeeze(1))
        num_sessions = int(last_session.max()) + 1
        if self.high_level is None:
            return items.new_zeros(items.size(0), num_sessions, self.tcn_channels[0],
                                   dtype=torch.float)
        means = session_means(self.item_encoder, items, opens, session, num_sessions)
        decay = None
        if self.gap_decay is not None:
            decay = session_decay(times, opens, session, num_sessions, self.gap_decay)
        return self.state_projection(self.high_level(means, last_session, decay))

    def _tcn_inputs(self, items, session, position, states, window):
        """``W_in [E(previous item) ; state]`` at the window's positions (all when None)."""
        previous = F.pad(items[:, :-1], (1, 0))  # the zero start token where position == 0
        if window is not None:
            outside = (window < 0) | (window >= items.size(1))
            index = window.clamp(0, items.size(1) - 1)
            previous, session = previous.gather(1, index), session.gather(1, index)
            position = position.gather(1, index).masked_fill(outside, -1)
        previous = self.item_encoder(previous) * (position > 0).unsqueeze(-1).to(states.dtype)
        state = states.gather(1, session.clamp(max=states.size(1) - 1).unsqueeze(-1).expand(
            -1, -1, states.size(-1)))
        return self.item_projection(previous) + state, position

    def forward(self, item_seq, item_seq_len, boundary_seq, target_boundary, time_seq=None,
                target_time=None):
        """Representation for the next item after each RecBole sequence row: ``[B, C]``.

        ``boundary_seq`` holds the times (or session ids) of ``item_seq`` and
        ``target_boundary`` the target's own, which decides whether it opens a session. The
        times are needed only with ``gap_decay``.
        """
        item_seq, boundary_seq, time_seq = trim_to_longest(item_seq_len, item_seq, boundary_seq,
                                                           time_seq)
        items = append_target(item_seq, item_seq_len, None)  # the target slot stays 0: never an input
        opens = self.session_opens(append_target(boundary_seq, item_seq_len, target_boundary))
        times = None if time_seq is None else append_target(time_seq, item_seq_len, target_time)
        return self.encode(items, opens, query=item_seq_len, times=times)

    def _row_representation(self, interaction):
        """``[B, C]`` for RecBole rows. In evaluation, rows go through in groups of similar
        history length, each trimmed to its own longest history: padding then costs little
        even when a few users have hundreds of events and most a few dozen."""
        if self.training:
            return self._rows_representation(interaction)
        return in_length_groups(self._rows_representation, interaction,
                                interaction[self.ITEM_SEQ_LEN])

    def _rows_representation(self, interaction):
        times = {}
        if self.gap_decay is not None:
            time_field = self.boundary.time_field
            times = {"time_seq": interaction[time_field + self.list_suffix],
                     "target_time": interaction[time_field]}
        lengths = interaction[self.ITEM_SEQ_LEN]
        boundary_seq, target_boundary = self.boundary.row_values(interaction, lengths)
        return self.forward(interaction[self.ITEM_SEQ], lengths, boundary_seq, target_boundary,
                            **times)

    # ------------------------------------------------------------------ scoring
    def _output(self, hidden):
        out = self.output_layer(hidden)
        return F.normalize(out, dim=-1) if self.output_mode == "embedding" else out

    def score_all(self, hidden):
        """Scores of every item: ``[..., n_items]``."""
        out = self._output(hidden)
        if self.output_mode == "embedding":
            return out @ self.item_encoder.raw_vectors().t()
        return out if self.scoring == "untied" else out @ self.item_encoder.all_items().t()

    def score_items(self, hidden, items):
        """Scores of the given items, one per row of ``hidden``."""
        if self.output_mode == "embedding":
            return (self._output(hidden) * self.item_encoder.raw_vectors(items)).sum(-1)
        if self.scoring == "untied":
            weight = self.output_layer.weight[items]
            return (hidden * weight).sum(-1) + self.output_layer.bias[items]
        return (self.output_layer(hidden) * self.item_encoder(items)).sum(-1)

    def hinge_logsigmoid(self, positive, negative):
        """The reference's embedding loss: mean over targets and negatives of
        ``max(0, log s(<p, y->) - log s(<p, y+>) + margin)``."""
        gap = F.logsigmoid(negative) - F.logsigmoid(positive).unsqueeze(-1) + self.hinge_margin
        return torch.relu(gap).mean()

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

    def _sequence_batch(self, interaction):
        items = interaction[SEQ_PREFIX + self.ITEM_ID]
        opens = self.session_opens(interaction[SEQ_PREFIX + self.boundary.field])
        times = (interaction[SEQ_PREFIX + self.boundary.time_field]
                 if self.gap_decay is not None else None)
        return self.boundary.sequence_targets(items, opens, times, interaction[SEQ_TARGET_MASK])

    def sequence_outputs(self, interaction):
        """User embeddings at every position of a sequence batch: ``[B, T, C]`` (with
        ``target_session_known: False``, at the positions of :class:`SequenceTargets`)."""
        batch = self._sequence_batch(interaction)
        return self.encode(batch.items, batch.opens, times=batch.times)

    def _sequence_loss(self, interaction):
        """Mean loss over every training target of a sequence batch.

        Positions before a row's first target are context. The TCN runs only from
        ``receptive_field - 1`` positions before the first target to the last; the context
        before that only feeds the session GRU.
        """
        seq = self._sequence_batch(interaction)
        mask, items, opens, times = seq.mask, seq.items, seq.opens, seq.times
        if self.low_level.receptive_field is None:  # GRU low level: every position
            return self._loss_at(self.encode(items, opens, times=times)[mask], seq.targets[mask],
                                 interaction, lambda negatives: seq.select(negatives)[mask])
        # targets lie between each row's first and last (contiguous unless withheld slots)
        flags = mask.to(torch.int8)
        first = flags.argmax(dim=1)
        span = torch.where(mask.any(dim=1),
                           mask.size(1) - flags.flip(1).argmax(dim=1) - first, 0)
        reach = self.low_level.receptive_field - 1
        steps = torch.arange(int(span.max()) + reach, device=items.device)
        window = first.unsqueeze(1) - reach + steps
        index = window.clamp(0, items.size(1) - 1)
        hidden = self.encode(items, opens, window=window, times=times)
        chosen = ((steps >= reach).unsqueeze(0) & (steps - reach < span.unsqueeze(1))
                  & mask.gather(1, index))
        return self._loss_at(hidden[chosen], seq.targets.gather(1, index)[chosen], interaction,
                             lambda negatives: seq.select(negatives).gather(1, index.unsqueeze(
                                 -1).expand(-1, -1, negatives.size(-1)))[chosen])

    def _loss_at(self, hidden, targets, interaction, select_negatives):
        """Loss of the chosen positions; ``select_negatives`` picks their ``[M, k]`` negatives."""
        if self.loss_type == "CE" and self.output_mode == "scores":
            return self.loss_fct(self.score_all(hidden), targets)
        negatives = select_negatives(interaction[SEQ_PREFIX + self.NEG_ITEM_ID])  # [M, k]
        pos = self.score_items(hidden, targets)
        neg = self.score_items(hidden.unsqueeze(1).expand(-1, negatives.size(1), -1), negatives)
        if self.output_mode == "embedding":
            return self.hinge_logsigmoid(pos, neg)
        return self.loss_fct(pos.unsqueeze(1).expand_as(neg), neg)

    def predict(self, interaction):
        hidden = self._row_representation(interaction)
        return self.score_items(hidden, interaction[self.ITEM_ID])

    def full_sort_predict(self, interaction):
        return self.score_all(self._row_representation(interaction))
