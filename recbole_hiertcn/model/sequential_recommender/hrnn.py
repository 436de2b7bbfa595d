"""HRNN: hierarchical RNNs for personalised session-based recommendation (Quadrana et al.,
RecSys 2017), for RecBole.

A session-level GRU runs over the items of the current session. A user-level GRU steps once per
finished session, on the session GRU's final state: ``c_m = GRU_user(s_m, c_{m-1})``. The next
session's GRU starts from ``tanh(W_init c_m + b_init)``; in the paper's "All" variant (the
default) ``c_m`` is also appended to the session GRU's input at every step, in the "Init"
variant it only sets the start. The first item of a session is predicted from the start state
alone. ``user_input: item_mean`` feeds the user GRU the mean embedding of the session's items
instead of ``s_m`` (HierTCN's session summary: an ablation of what the user level reads). The
session GRU's state scores every item (a linear layer, ``scoring: untied``, as in the paper; or
a dot product with the item embeddings, ``tied``).

Session boundaries come, as for HierTCN, from a session-id field or from idle gaps, and the
target's own session id or time decides whether it opens a session (``target_session_known:
False`` withholds it: every target is predicted as a continuation of the running session).
"""

import torch
from torch import nn

from recbole.model.abstract_recommender import SequentialRecommender

from recbole_hiertcn.core.layers import session_layout
from recbole_hiertcn.core.seen_items import seen_item_offsets, seen_items
from recbole_hiertcn.core.settings import HRNN as MODEL
from recbole_hiertcn.core.settings import HRNNSettings
from recbole_hiertcn.data.dataset.session_dataset import SEQ_PREFIX, SEQ_TARGET_MASK
from recbole_hiertcn.model.cooccurrence import with_cooccurrence
from recbole_hiertcn.model.history_rows import history_window, in_length_groups, trim_to_longest
from recbole_hiertcn.model.item_init import init_from_cooccurrence
from recbole_hiertcn.model.session_boundary import SessionBoundary, append_target
from recbole_hiertcn.model.softmax_samples import sampled_softmax


def session_spans(opens):
    """Start and length of every session of every row: two ``[B, S]`` tensors, ``S`` the most
    sessions of a row; rows with fewer sessions get length 0 after their last."""
    session, position = session_layout(opens)
    count = int(session.max()) + 1
    batch, length = opens.shape
    lengths = torch.zeros(batch, count, dtype=torch.long, device=opens.device)
    lengths.scatter_add_(1, session, torch.ones_like(session))
    starts = torch.zeros_like(lengths)
    index = torch.arange(length, device=opens.device).expand(batch, -1)
    first = position == 0
    starts[torch.nonzero(first, as_tuple=True)[0], session[first]] = index[first]
    return starts, lengths


class HRNN(SequentialRecommender):
    r"""HRNN as a RecBole sequential recommender.

    Trains on RecBole's one-row-per-target batches (``train_mode: prefix``) or on whole user
    sequences with the loss at every position (``train_mode: sequence``, the default, through
    :class:`~recbole_hiertcn.data.dataset.SessionDataset`).

    Config keys (defaults in :class:`~recbole_hiertcn.core.settings.HRNNSettings`, repeated
    in ``properties/model/HRNN.yaml``): ``embedding_size``,
    ``hidden_size`` (session GRU), ``user_hidden_size`` (user GRU), ``hrnn_variant``,
    ``user_input``, ``dropout_prob``, ``scoring``, ``seen_item_bias``, ``seen_item_counts``,
    ``seen_item_cooccurrence``, ``seen_item_gate``, ``item_init``, ``cooccurrence_neighbours``,
    ``cooccurrence_leave_session_out``, ``session_gap``, ``session_field``, ``time_field``,
    ``target_session_known``.
    """

    supports_sequence_training = True

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        # a key missing from the config (one saved before the key existed) takes its default
        self.settings = settings = HRNNSettings.from_mapping(config)
        self.embedding_size = settings.embedding_size
        self.hidden_size = settings.hidden_size
        self.user_hidden_size = settings.user_hidden_size
        self.variant = settings.hrnn_variant
        self.user_input = settings.user_input
        self.scoring = settings.scoring
        self.dropout_prob = settings.dropout_prob
        self.boundary = SessionBoundary(MODEL, config, dataset)

        self.item_embedding = nn.Embedding(self.n_items, self.embedding_size, padding_idx=0)
        init_from_cooccurrence(MODEL, settings, self.item_embedding.weight, self.boundary, config,
                               dataset)
        user_input = self.user_hidden_size if self.variant == "all" else 0
        self.session_gru = nn.GRU(self.embedding_size + user_input, self.hidden_size,
                                  batch_first=True)
        summary_size = (self.hidden_size if self.user_input == "session_state"
                        else self.embedding_size)
        self.user_gru = nn.GRUCell(summary_size, self.user_hidden_size)
        self.init_layer = nn.Linear(self.user_hidden_size, self.hidden_size)
        self.dropout = nn.Dropout(self.dropout_prob)
        out_features = self.n_items if self.scoring == "untied" else self.embedding_size
        self.output_layer = nn.Linear(self.hidden_size, out_features)
        self.loss_fct = nn.CrossEntropyLoss()
        # HierTCN's option (recbole_hiertcn.core.seen_items), not the paper's: an ablation
        self.seen_item_bias = with_cooccurrence(
            MODEL, seen_item_offsets(settings, self.n_items, self.hidden_size), settings,
            self.boundary, config, dataset, self.n_items)
        self.history_window = history_window(config, dataset)
        self.sampled = sampled_softmax(MODEL, config, dataset)

    # ------------------------------------------------------------------ encoder
    def encode(self, items, opens):
        """Session-GRU states that predict every position: ``[B, T, hidden_size]``.

        The state at ``t`` has read the items of ``t``'s session before ``t`` (none at a
        session's first position) and, through the user GRU, every earlier session whole. It
        never reads ``items[t]`` or later. Id 0 (padding) reads as a zero vector.
        """
        batch, length = items.shape
        starts, lengths = session_spans(opens)
        embedded = self.dropout(self.item_embedding(items))
        user = embedded.new_zeros(batch, self.user_hidden_size)
        out = embedded.new_zeros(batch * length, self.hidden_size)
        for s in range(starts.size(1)):  # one packed GRU call per session index
            rows = torch.nonzero(lengths[:, s] > 0, as_tuple=True)[0]  # rows with a session s
            span = lengths[rows, s]
            steps = int(span.max())
            offsets = torch.arange(steps, device=items.device)
            index = (starts[rows, s:s + 1] + offsets).clamp(max=length - 1)  # [R, steps]
            inside = offsets.unsqueeze(0) < span.unsqueeze(1)
            # padding (id 0) only ever ends a session (a withheld target's slot, a row's end)
            read = (inside & (items[rows].gather(1, index) != 0)).sum(dim=1)
            inputs = embedded[rows.unsqueeze(1), index] * inside.unsqueeze(-1).to(embedded.dtype)
            if self.variant == "all":
                inputs = torch.cat([inputs, user[rows].unsqueeze(1).expand(-1, steps, -1)],
                                   dim=-1)
            start_state = torch.tanh(self.init_layer(self.dropout(user[rows])))
            # packed: the GRU steps each row only over its own session (the longest session
            # of an index would otherwise set every row's steps); outputs past it are 0
            packed = nn.utils.rnn.pack_padded_sequence(inputs, span.cpu(), batch_first=True,
                                                       enforce_sorted=False)
            states, _ = self.session_gru(packed, start_state.unsqueeze(0).contiguous())
            states, _ = nn.utils.rnn.pad_packed_sequence(states, batch_first=True,
                                                         total_length=steps)
            # position p of the session is predicted from the state before its item p: the
            # start state for p = 0, the state after item p - 1 otherwise
            before = torch.cat([start_state.unsqueeze(1), states[:, :-1]], dim=1)
            flat = (rows.unsqueeze(1) * length + index)[inside]
            out[flat] = before[inside]
            ended = read > 0  # sessions with an item (not only a withheld target's slot)
            summary = self._session_summary(states[ended], inputs[ended], read[ended])
            user = user.index_put((rows[ended],), self.user_gru(summary, user[rows[ended]]))
        return out.view(batch, length, self.hidden_size)

    def _session_summary(self, states, inputs, read):
        """What the user GRU reads of a finished session whose first ``read`` (>= 1) positions
        are its real items: the session GRU's state after the last of them, or their mean
        embedding (the first ``embedding_size`` columns of ``inputs``, dropped out already)."""
        if self.user_input == "session_state":
            return self.dropout(states[torch.arange(len(read), device=read.device), read - 1])
        real = torch.arange(inputs.size(1), device=read.device) < read.unsqueeze(1)
        embedded = inputs[..., :self.embedding_size] * real.unsqueeze(-1).to(inputs.dtype)
        return embedded.sum(dim=1) / read.unsqueeze(1).to(inputs.dtype)

    def forward(self, item_seq, item_seq_len, boundary_seq, target_boundary):
        """State that predicts the item after each RecBole history row: ``[B, hidden_size]``."""
        item_seq, boundary_seq = trim_to_longest(item_seq_len, item_seq, boundary_seq)
        items = append_target(item_seq, item_seq_len, None)  # the target slot is never read
        opens = self.boundary.opens(append_target(boundary_seq, item_seq_len, target_boundary))
        hidden = self.encode(items, opens)
        return hidden[torch.arange(len(item_seq_len), device=hidden.device), item_seq_len]

    def _row_representation(self, interaction):
        if self.training:
            return self._rows_representation(interaction)
        return in_length_groups(self._rows_representation, interaction,
                                interaction[self.ITEM_SEQ_LEN])

    def _rows_representation(self, interaction):
        lengths = interaction[self.ITEM_SEQ_LEN]
        boundary_seq, target_boundary = self.boundary.row_values(interaction, lengths)
        return self.forward(interaction[self.ITEM_SEQ], lengths, boundary_seq, target_boundary)

    # ------------------------------------------------------------------ scoring
    def score_all(self, hidden):
        out = self.output_layer(self.dropout(hidden))
        return out if self.scoring == "untied" else out @ self.item_embedding.weight.t()

    def _with_offsets(self, scores, seen, hidden):
        """``scores`` plus the seen-item offsets (``seen`` is None without the option) of the
        queries ``hidden`` (the gate's input, before dropout)."""
        return scores if seen is None else scores + self.seen_item_bias.all(seen, hidden)

    def _row_seen(self, interaction):
        if self.seen_item_bias is None:
            return None
        return self.boundary.row_seen(interaction[self.ITEM_SEQ],
                                      interaction[self.ITEM_SEQ_LEN], interaction)

    def calculate_loss(self, interaction):
        if SEQ_TARGET_MASK in interaction:
            seq = self.boundary.sequence_targets(
                interaction[SEQ_PREFIX + self.ITEM_ID],
                self.boundary.opens(interaction[SEQ_PREFIX + self.boundary.field]), None,
                interaction[SEQ_TARGET_MASK])
            hidden = self.encode(seq.items, seq.opens)
            seen = None
            if self.seen_item_bias is not None:
                rows, positions = seq.mask.nonzero(as_tuple=True)  # row-major, as [mask]
                seen = seen_items(seq.items, seq.opens, rows, positions, self.history_window)
            targets = seq.targets[seq.mask]
            if self.sampled is not None:
                return self._sampled_loss(hidden[seq.mask], targets, seen)
            queries = hidden[seq.mask]
            return self.loss_fct(self._with_offsets(self.score_all(queries), seen, queries),
                                 targets)
        queries = self._row_representation(interaction)
        return self.loss_fct(self._with_offsets(self.score_all(queries),
                                                self._row_seen(interaction), queries),
                             interaction[self.POS_ITEM_ID])

    def _sampled_loss(self, hidden, targets, seen):
        """:class:`SampledSoftmax` of ``targets`` against one batch of shared negatives (the
        same dropout mask for both: one pass of ``self.dropout``)."""
        shared = self.sampled.draw()
        queries, hidden = hidden, self.dropout(hidden)
        if self.scoring == "untied":
            weight, bias = self.output_layer.weight, self.output_layer.bias
            positive = (hidden * weight[targets]).sum(-1) + bias[targets]
            negative = hidden @ weight[shared].t() + bias[shared]
        else:
            query = self.output_layer(hidden)
            positive = (query * self.item_embedding(targets)).sum(-1)
            negative = query @ self.item_embedding(shared).t()
        if seen is not None:
            positive = positive + self.seen_item_bias.at(seen, targets, queries)
            negative = negative + self.seen_item_bias.columns(seen, shared, queries)
        return self.sampled(positive, negative, targets, shared)

    def predict(self, interaction):
        scores = self.full_sort_predict(interaction)
        return scores.gather(1, interaction[self.ITEM_ID].unsqueeze(1)).squeeze(1)

    def full_sort_predict(self, interaction):
        queries = self._row_representation(interaction)
        return self._with_offsets(self.score_all(queries), self._row_seen(interaction), queries)
