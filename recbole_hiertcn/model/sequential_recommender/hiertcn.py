"""HierTCN: Hierarchical Temporal Convolutional Networks (You et al., WWW 2019) for RecBole.

The network is :class:`~recbole_hiertcn.core.network.HierTCNCore` (plain tensors, also
driven event by event by :mod:`recbole_hiertcn.serving`); this class adapts it to RecBole:
settings from the ``Config``, ``Interaction`` fields, losses and ``full_sort_predict``.

Session boundaries come from a session-id field when the dataset has one, otherwise from time
gaps of at least ``session_gap`` seconds; the target row's own time (or session id) decides
whether the target opens a new session (``target_session_known: False`` withholds it: every
target is predicted as a continuation of the running session).
"""

import json

import torch
from torch import nn
from torch.nn import functional as F

from recbole.model.abstract_recommender import SequentialRecommender
from recbole.model.loss import BPRLoss

from recbole_hiertcn.core.config_values import config_error
from recbole_hiertcn.core.network import HierTCNCore
from recbole_hiertcn.core.seen_items import seen_items
from recbole_hiertcn.core.settings import MODEL, HierTCNSettings
from recbole_hiertcn.data.dataset.session_dataset import SEQ_PREFIX, SEQ_TARGET_MASK
from recbole_hiertcn.model.cooccurrence import with_cooccurrence
from recbole_hiertcn.model.history_rows import history_window, in_length_groups, trim_to_longest
from recbole_hiertcn.model.item_init import init_from_cooccurrence
from recbole_hiertcn.model.session_boundary import SessionBoundary, append_target
from recbole_hiertcn.model.softmax_samples import sampled_softmax


def _config_error(key, message):
    return config_error(MODEL, key, message)


def _keys_before_core(model, state_dict, prefix, *_):
    """Load-state-dict pre-hook: a checkpoint saved before the core was split out names the
    core's submodules on the model itself; ``<prefix>item_encoder...`` becomes
    ``<prefix>core.item_encoder...``."""
    children = set(model.core._modules)
    for key in list(state_dict):
        rest = key[len(prefix):]
        if key.startswith(prefix) and rest.split(".", 1)[0] in children:
            state_dict[prefix + "core." + rest] = state_dict.pop(key)


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

    Config keys (defaults in :class:`~recbole_hiertcn.core.settings.HierTCNSettings`, repeated
    with one-line documentation in ``properties/model/HierTCN.yaml``):
    ``embedding_size``, ``hidden_size``, ``num_layers``, ``tcn_channels``, ``kernel_size``,
    ``dilations``, ``convs_per_block``, ``tcn_norm``, ``dropout_prob``, ``embedding_dropout``,
    ``output_dropout``, ``seen_item_bias``, ``seen_item_counts``, ``seen_item_cooccurrence``,
    ``seen_item_gate``, ``item_init``, ``cooccurrence_neighbours``,
    ``cooccurrence_leave_session_out``, ``session_gap``, ``session_field``, ``target_session_known``, ``time_field``,
    ``high_level``, ``low_level``, ``scoring``, ``loss_type``, ``pretrained_item_field``,
    ``freeze_pretrained``, ``output_mode``, ``hinge_margin``, ``negatives``, ``gap_decay``.
    """

    supports_sequence_training = True

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        self.list_suffix = config["LIST_SUFFIX"]
        self.settings = HierTCNSettings.from_mapping(config)
        self._check_training_keys(config)
        self.boundary = SessionBoundary(MODEL, config, dataset)
        if self.settings.gap_decay is not None and not self.boundary.has_times:
            raise _config_error("gap_decay",
                                f"needs the time field [{self.boundary.time_field}] loaded")
        self.core = HierTCNCore(self.settings, self.n_items,
                                self._pretrained_vectors(config, dataset))
        init_from_cooccurrence(MODEL, self.settings, self.core.item_encoder.table.weight,
                               self.boundary, config, dataset)
        self.core.seen_item_bias = with_cooccurrence(
            MODEL, self.core.seen_item_bias, self.settings, self.boundary, config, dataset,
            self.n_items)
        self.loss_fct = nn.CrossEntropyLoss() if self.settings.loss_type == "CE" else BPRLoss()
        self.sampled = sampled_softmax(MODEL, config, dataset)
        if self.sampled is not None and self.settings.output_mode != "scores":
            raise _config_error("softmax_samples", "needs output_mode: scores")
        self.history_window = history_window(config, dataset)  # served alike (serving.export)
        self._register_load_state_dict_pre_hook(_keys_before_core, with_module=True)
        self._tokens = (dataset.field2id_token[self.ITEM_ID], dataset.field2id_token[self.USER_ID])
        self._dataset_name = dataset.dataset_name
        self._serving_description = None

    @property
    def session_rule(self):
        """How a served model finds sessions: ``time_gap`` or ``session_id``."""
        return self.boundary.rule.name

    @property
    def served_history_window(self):
        """The items the seen-item offsets read (None: the model has none)."""
        return self.history_window if self.settings.seen_item_bias else None

    def serving_description(self):
        """What an export needs besides the weights, as plain data: ``session_rule``
        (``time_gap`` or ``session_id``), ``history_window`` (None without
        ``seen_item_bias``), ``dataset`` and the item and user tokens in id order (UTF-8 JSON
        bytes: one object, so a checkpoint with a million users still unpickles at once).
        The trainer saves it in every checkpoint, so ``recbole-hiertcn export`` needs no
        dataset."""
        if self._serving_description is None:
            items, users = ([str(token) for token in tokens] for tokens in self._tokens)
            self._serving_description = {
                "session_rule": self.session_rule,
                "history_window": self.served_history_window,
                "dataset": self._dataset_name,
                "item_tokens": json.dumps(items, ensure_ascii=False).encode("utf-8"),
                "user_tokens": json.dumps(users, ensure_ascii=False).encode("utf-8"),
            }
        return self._serving_description

    def _check_training_keys(self, config):
        """Keys of the trainer and loaders that the model's settings need."""
        if self.settings.output_mode == "embedding" and config["train_mode"] != "sequence":
            raise _config_error("output_mode", "'embedding' takes its negatives from the "
                                "sequence loader: set `train_mode: sequence`")
        sampling = config["train_neg_sample_args"] or {}
        if self.settings.loss_type == "BPR" and sampling.get("distribution") in (None, "none"):
            raise _config_error(
                "train_neg_sample_args",
                "must sample negatives for loss_type BPR, e.g. "
                "{distribution: uniform, sample_num: 1}",
            )

    def _pretrained_vectors(self, config, dataset):
        """``[n_items, dim]`` vectors of ``pretrained_item_field`` from the item features."""
        field = self.settings.pretrained_item_field
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
        """User embeddings of a flat layout of sessions (see :meth:`HierTCNCore.encode`)."""
        return self.core.encode(items, opens, query=query, window=window, times=times)

    def forward(self, item_seq, item_seq_len, boundary_seq, target_boundary, time_seq=None,
                target_time=None):
        """Representation for the next item after each RecBole sequence row: ``[B, C]``.

        ``boundary_seq`` holds the times (or session ids) of ``item_seq`` and
        ``target_boundary`` the target's own, which decides whether it opens a session. The
        times are needed only with ``gap_decay``.
        """
        item_seq, boundary_seq, time_seq = trim_to_longest(item_seq_len, item_seq, boundary_seq,
                                                           time_seq)
        # the target slot stays 0: never an input
        items = append_target(item_seq, item_seq_len, None)
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
        if self.settings.gap_decay is not None:
            time_field = self.boundary.time_field
            times = {"time_seq": interaction[time_field + self.list_suffix],
                     "target_time": interaction[time_field]}
        lengths = interaction[self.ITEM_SEQ_LEN]
        boundary_seq, target_boundary = self.boundary.row_values(interaction, lengths)
        return self.forward(interaction[self.ITEM_SEQ], lengths, boundary_seq, target_boundary,
                            **times)

    def _row_seen(self, interaction):
        """:class:`~recbole_hiertcn.core.seen_items.SeenHistory` of RecBole rows (None
        without ``seen_item_bias``): the row's history, in the target's session or before it."""
        if not self.settings.seen_item_bias:
            return None
        return self.boundary.row_seen(interaction[self.ITEM_SEQ],
                                      interaction[self.ITEM_SEQ_LEN], interaction)

    def _sequence_seen(self, seq, rows, positions):
        """SeenHistory of sequence-batch positions (None without ``seen_item_bias``)."""
        if not self.settings.seen_item_bias:
            return None
        return seen_items(seq.items, seq.opens, rows, positions, self.history_window)

    # ------------------------------------------------------------------ scoring
    def _scores_of_all(self, hidden, seen):
        """Every item's score, with the seen-item offsets when ``seen`` is given."""
        scores = self.score_all(hidden)
        return scores if seen is None else scores + self.core.seen_item_bias.all(seen, hidden)

    def _scores_of(self, hidden, items, seen):
        """Scores of ``items`` (``[M]``, or ``[M, k]`` with ``hidden`` expanded alike), with
        the seen-item offsets when ``seen`` is given."""
        scores = self.score_items(hidden, items)
        return scores if seen is None else scores + self.core.seen_item_bias.at(seen, items, hidden)

    def score_all(self, hidden):
        """Scores of every item: ``[..., n_items]``."""
        return self.core.score_all(hidden)

    def score_items(self, hidden, items):
        """Scores of the given items, one per row of ``hidden``."""
        return self.core.score_items(hidden, items)

    def hinge_logsigmoid(self, positive, negative):
        """The reference's embedding loss: mean over targets and negatives of
        ``max(0, log s(<p, y->) - log s(<p, y+>) + margin)``."""
        margin = self.settings.hinge_margin
        gap = F.logsigmoid(negative) - F.logsigmoid(positive).unsqueeze(-1) + margin
        return torch.relu(gap).mean()

    def calculate_loss(self, interaction):
        if SEQ_TARGET_MASK in interaction:
            return self._sequence_loss(interaction)
        hidden = self._row_representation(interaction)
        seen = self._row_seen(interaction)
        pos_items = interaction[self.POS_ITEM_ID]
        if self.settings.loss_type == "CE":
            return self.loss_fct(self._scores_of_all(hidden, seen), pos_items)
        neg_items = interaction[self.NEG_ITEM_ID]
        return self.loss_fct(self._scores_of(hidden, pos_items, seen),
                             self._scores_of(hidden, neg_items, seen))

    def _sequence_batch(self, interaction):
        items = interaction[SEQ_PREFIX + self.ITEM_ID]
        opens = self.session_opens(interaction[SEQ_PREFIX + self.boundary.field])
        times = (interaction[SEQ_PREFIX + self.boundary.time_field]
                 if self.settings.gap_decay is not None else None)
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
        if self.core.low_level.receptive_field is None:  # GRU low level: every position
            rows, positions = mask.nonzero(as_tuple=True)  # row-major, as [mask] selects
            return self._loss_at(self.encode(items, opens, times=times)[mask], seq.targets[mask],
                                 interaction, lambda negatives: seq.select(negatives)[mask],
                                 self._sequence_seen(seq, rows, positions))
        # targets lie between each row's first and last (contiguous unless withheld slots)
        flags = mask.to(torch.int8)
        first = flags.argmax(dim=1)
        span = torch.where(mask.any(dim=1),
                           mask.size(1) - flags.flip(1).argmax(dim=1) - first, 0)
        reach = self.core.low_level.receptive_field - 1
        steps = torch.arange(int(span.max()) + reach, device=items.device)
        window = first.unsqueeze(1) - reach + steps
        index = window.clamp(0, items.size(1) - 1)
        hidden = self.encode(items, opens, window=window, times=times)
        chosen = ((steps >= reach).unsqueeze(0) & (steps - reach < span.unsqueeze(1))
                  & mask.gather(1, index))
        rows = torch.arange(items.size(0), device=items.device).unsqueeze(1).expand_as(chosen)
        return self._loss_at(hidden[chosen], seq.targets.gather(1, index)[chosen], interaction,
                             lambda negatives: seq.select(negatives).gather(1, index.unsqueeze(
                                 -1).expand(-1, -1, negatives.size(-1)))[chosen],
                             self._sequence_seen(seq, rows[chosen], index[chosen]))

    def _loss_at(self, hidden, targets, interaction, select_negatives, seen=None):
        """Loss of the chosen positions; ``select_negatives`` picks their ``[M, k]`` negatives;
        ``seen``: their SeenHistory (with ``seen_item_bias``)."""
        if self.settings.loss_type == "CE" and self.settings.output_mode == "scores":
            if self.sampled is None:
                return self.loss_fct(self._scores_of_all(hidden, seen), targets)
            shared = self.sampled.draw()
            scores = self.core.score_columns(hidden, shared)
            if seen is not None:
                scores = scores + self.core.seen_item_bias.columns(seen, shared, hidden)
            return self.sampled(self._scores_of(hidden, targets, seen), scores, targets, shared)
        negatives = select_negatives(interaction[SEQ_PREFIX + self.NEG_ITEM_ID])  # [M, k]
        pos = self._scores_of(hidden, targets, seen)
        neg = self._scores_of(hidden.unsqueeze(1).expand(-1, negatives.size(1), -1), negatives,
                              seen)
        if self.settings.output_mode == "embedding":
            return self.hinge_logsigmoid(pos, neg)
        return self.loss_fct(pos.unsqueeze(1).expand_as(neg), neg)

    def predict(self, interaction):
        hidden = self._row_representation(interaction)
        return self._scores_of(hidden, interaction[self.ITEM_ID], self._row_seen(interaction))

    def full_sort_predict(self, interaction):
        return self._scores_of_all(self._row_representation(interaction),
                                   self._row_seen(interaction))
