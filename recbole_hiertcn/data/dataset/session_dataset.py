"""A sequential dataset in O(N) memory: no per-prefix materialisation.

RecBole's ``SequentialDataset`` turns every interaction into a row holding up to
``MAX_ITEM_LIST_LENGTH`` previous values of every field, in a Python loop. This dataset sorts the
log by (user, time) once and keeps it flat; rows are cut from it on demand, by index operations:

* :class:`SessionDataset` ``.build()`` splits by ``eval_args.split`` - ``LS`` (RecBole's) or
  ``last_session`` - and returns three views of the same flat log;
* a *prefix view* (training in ``train_mode: prefix``, and every evaluation split) yields RecBole's
  rows for a list of target positions - field by field what ``SequentialDataset`` would have
  built - when the data loader asks for a batch of them;
* a *sequence view* (training in ``train_mode: sequence``) lists chunks of users' training
  targets; :class:`~recbole_hiertcn.data.dataloader.SequenceTrainDataLoader` batches them.
  Models that read at most ``MAX_ITEM_LIST_LENGTH`` history items per target, as in prefix
  mode (RecBole's GRU4Rec, NextItNet and SASRec: ``sequence_windows``), get a *window view*
  instead: see :meth:`SessionDataset._window_view`.
"""

import os

import numpy as np
import torch

from recbole.data.dataset import SequentialDataset
from recbole.data.interaction import Interaction

from recbole_hiertcn.core.session_rule import DEFAULT_SESSION_GAP, SessionRule
from recbole_hiertcn.data import protocols
from recbole_hiertcn.data.dataset.columnar import ColumnarLoadMixin
from recbole_hiertcn.data.impressions import read_impression_ids

TRAIN_MODES = ("prefix", "sequence")
# Fields of a sequence batch (train_mode: sequence).
SEQ_PREFIX = "seq_"
SEQ_TARGET_MASK = "seq_target_mask"
SEQ_LENGTH = "seq_length"


def _stride(stride, length):
    """``sequence_stride``: 1 .. ``MAX_ITEM_LIST_LENGTH`` (``length``); ~ is half of it."""
    if stride is None:
        return max(length // 2, 1)
    if isinstance(stride, bool) or not isinstance(stride, int) or not 1 <= stride <= length:
        raise ValueError(f"config key `sequence_stride` must be an integer from 1 to "
                         f"MAX_ITEM_LIST_LENGTH ({length}), got {stride!r}")
    return stride


class SessionDataset(ColumnarLoadMixin, SequentialDataset):
    """Flat, user-sorted sequential dataset with on-demand rows, loaded columnar
    (:class:`~recbole_hiertcn.data.dataset.columnar.ColumnarLoadMixin`). See the module docstring.

    Config keys: ``train_mode`` (``prefix`` or ``sequence``), ``max_history`` (history of each
    evaluation row and context of each training chunk in sequence mode), ``sequence_stride``
    (targets per window of a ``sequence_windows`` model after a user's first
    ``MAX_ITEM_LIST_LENGTH``), ``session_field`` and ``session_gap`` (sessions for the
    ``last_session`` protocol), ``eval_args``.
    """

    def __init__(self, config):
        self.train_mode = config["train_mode"] or "prefix"
        if self.train_mode not in TRAIN_MODES:
            raise ValueError(f"config key `train_mode` must be one of {TRAIN_MODES}, "
                             f"got {self.train_mode!r}")
        model_class = getattr(config, "model_class", None)
        if self.train_mode == "sequence" and not getattr(model_class, "supports_sequence_training",
                                                         False):
            raise ValueError(
                f"config key `train_mode`: 'sequence' needs a model that trains on whole "
                f"sequences (HierTCN, HRNN, GRU4Rec, NextItNet, SASRec); {config['model']} "
                f"trains on prefix rows (train_mode: prefix)")
        # a model that reads at most MAX_ITEM_LIST_LENGTH items per target in sequence mode too
        self.sequence_windows = bool(getattr(model_class, "sequence_windows", False))
        if config["benchmark_filename"] is not None:
            raise ValueError("config key `benchmark_filename`: pre-split files are not supported "
                             "by the session dataset; set `use_session_dataset: False`")
        history = config["max_history"] or 500
        if isinstance(history, bool) or not isinstance(history, int) or history < 1:
            raise ValueError(f"config key `max_history` must be a positive integer, got {history!r}")
        self.max_history = history
        self.sequence_stride = None
        if self.train_mode == "sequence" and self.sequence_windows:
            self.sequence_stride = _stride(config["sequence_stride"],
                                           config["MAX_ITEM_LIST_LENGTH"])
        self._view = "full"
        super().__init__(config)

    # ------------------------------------------------------------------ preparation
    def data_augmentation(self):
        """Sort by (user, time) once and index users; no rows are materialised."""
        self._aug_presets()
        self._check_field("uid_field", "time_field")
        self.sort(by=[self.uid_field, self.time_field], ascending=True)
        users = self.inter_feat[self.uid_field].numpy()
        self.user_starts, self.user_lengths = protocols.user_layout(users)
        owner = np.repeat(np.arange(len(self.user_starts)), self.user_lengths)
        self.position_user_start = torch.from_numpy(self.user_starts[owner])
        # RecBole's augmented rows, in order: every position but a user's first.
        first = np.zeros(len(users), dtype=bool)
        first[self.user_starts] = True
        self.all_targets = torch.from_numpy(np.flatnonzero(~first))
        self.impressions = None
        if self.config["impression_negatives"]:
            self.impressions = self._load_impressions()

    def _load_impressions(self):
        """``<dataset>.impression`` as items grouped by feed view (CSR), in this dataset's ids.

        Rows whose item or feed view the interactions do not know are left out; within a feed
        view, impressions keep their order in the file (so sampling under a seed is
        reproducible).
        """
        field = self.config["feedview_field"] or "feedview_id"
        path = os.path.join(self.dataset_path, f"{self.dataset_name}.impression")
        if not os.path.isfile(path):
            raise ValueError(f"config key `impression_negatives`: no impressions file {path}")
        if field not in self.field2token_id:
            raise ValueError(f"config key `feedview_field`: [{field}] is not a loaded token field "
                             "of the interactions (add it to load_col)")
        items, views = read_impression_ids(
            path, self.config["field_separator"] or "\t", self.iid_field,
            self.field2id_token[self.iid_field], field, self.field2id_token[field])
        starts = np.searchsorted(views, np.arange(len(self.field2id_token[field]) + 1))
        return {"field": field, "items": torch.from_numpy(items),
                "starts": torch.from_numpy(starts[:-1]),
                "counts": torch.from_numpy(np.diff(starts))}

    def sample_impressions(self, feedviews, count, generator=None):
        """``count`` impressions of each position's feed view (with replacement).

        Returns ``(items [..., count], found [...])``; positions whose feed view showed nothing
        get zeros and ``found`` False.
        """
        index = self.impressions
        views = feedviews.clamp(min=0, max=len(index["counts"]) - 1)
        available = index["counts"][views]
        found = available > 0
        if len(index["items"]) == 0:
            return torch.zeros(feedviews.shape + (count,), dtype=torch.long), found
        offset = (torch.rand(feedviews.shape + (count,), generator=generator)
                  * available.unsqueeze(-1)).long()
        pick = (index["starts"][views].unsqueeze(-1) + offset).clamp(max=len(index["items"]) - 1)
        items = index["items"][pick]
        return torch.where(found.unsqueeze(-1), items, torch.zeros_like(items)), found

    @property
    def list_fields(self):
        """(field, list field) pairs that rows carry, as in RecBole's augmentation."""
        return [(field, getattr(self, f"{field}_list_field")) for field in self.inter_feat
                if field != self.uid_field]

    def session_opens(self):
        """Session starts of the flat log: the session field if loaded, else time gaps."""
        field = self.config["session_field"]
        if field and field in self.inter_feat:
            values, by_time = self.inter_feat[field].numpy(), False
        else:
            values, by_time = self.inter_feat[self.time_field].numpy(), True
        gap = self.config["session_gap"]
        rule = SessionRule(by_time, DEFAULT_SESSION_GAP if gap is None else float(gap))
        return rule.opens(values, self.user_starts)

    def build(self):
        """Split by ``eval_args`` into train, valid and test views of the flat log."""
        self._change_feat_format()
        if self.config["eval_args"]["order"] != "TO":
            raise ValueError("config key `eval_args.order` must be 'TO' for sequential data")
        split_args = self.config["eval_args"]["split"]
        if not isinstance(split_args, dict) or len(split_args) != 1:
            raise ValueError(f"config key `eval_args.split` must be one protocol, got {split_args}")
        (protocol, mode), = split_args.items()
        if protocol not in protocols.PROTOCOLS:
            raise ValueError(f"config key `eval_args.split`: the session dataset supports "
                             f"{', '.join(protocols.PROTOCOLS)}, got {protocol!r}")
        opens = self.session_opens() if protocol == "last_session" else None
        holdout = None
        if protocol == "user_holdout":
            shares = self.config["user_holdout_shares"] or protocols.DEFAULT_HOLDOUT
            holdout = protocols.UserHoldout(shares, self.config["seed"] or 0)
        train_end, valid_pos, test_pos = protocols.split(
            self.user_starts, self.user_lengths, protocol, mode, opens, holdout)
        self._drop_unused_col()
        sequence = self.train_mode == "sequence"
        # windowed models evaluate on RecBole's rows in both modes: only training differs
        eval_history = self.max_history if sequence and not self.sequence_windows \
            else self.max_item_list_len
        if not sequence:
            train = self._prefix_view(self._train_targets(train_end), self.max_item_list_len)
        elif self.sequence_windows:
            train = self._window_view(train_end)
        else:
            train = self._sequence_view(train_end)
        return [train, self._prefix_view(torch.from_numpy(valid_pos), eval_history),
                self._prefix_view(torch.from_numpy(test_pos), eval_history)]

    def _train_targets(self, train_end):
        """Global positions of the training targets: each user's positions 1 .. end - 1."""
        return torch.from_numpy(protocols.ranges(self.user_starts + 1, train_end - 1))

    # ------------------------------------------------------------------ views
    def _prefix_view(self, targets, history):
        view = self.copy(self.inter_feat)
        view._view, view.targets, view.history = "prefix", targets.long(), int(history)
        view.field2seqlen = dict(self.field2seqlen)
        for _, list_field in self.list_fields:
            length = self.field2seqlen[list_field]
            view.field2seqlen[list_field] = (
                history if isinstance(length, int) else (history,) + tuple(length[1:]))
        return view

    def _sequence_view(self, train_end):
        """Chunks of at most ``max_history`` training targets per user, with as much earlier
        context (up to ``max_history`` positions) as the user has."""
        targets = np.maximum(train_end - 1, 0)
        chunks = np.maximum(-(-targets // self.max_history), 0)
        user = np.repeat(np.arange(len(targets)), chunks)
        k = protocols.ranges(np.zeros_like(chunks), chunks)  # chunk number within its user
        first = self.user_starts[user] + 1 + k * self.max_history
        end = np.minimum(first + self.max_history, self.user_starts[user] + train_end[user])
        begin = np.maximum(self.user_starts[user], first - self.max_history)
        view = self.copy(self.inter_feat)
        view._view = "sequence"
        view.chunk_begin, view.chunk_first, view.chunk_end = (
            torch.from_numpy(begin), torch.from_numpy(first), torch.from_numpy(end))
        return view

    def _window_view(self, train_end):
        """Windows of at most ``MAX_ITEM_LIST_LENGTH`` (L) + 1 positions, for models that read at
        most L history items per target (``sequence_windows``), as prefix rows do.

        A user's first window holds positions 0 .. L: its targets, positions 1 .. L, see their
        whole history, exactly their prefix rows. Each later window holds the next
        ``sequence_stride`` (K) targets and starts L positions before its last target: target
        ``p`` sees the items from the window's start to ``p - 1``, between L - K + 1 and L of
        them - the prefix row of ``p`` with that history (:meth:`prefix_rows`). A model runs
        over a window's first ``end - begin - 1`` positions (the last one is only a target), so
        never over more than L positions (SASRec's position embeddings). Every training target
        is in exactly one window.
        """
        length, stride = self.max_item_list_len, self.sequence_stride
        targets = np.maximum(train_end - 1, 0)
        head = np.minimum(targets, length)  # targets of the first window
        windows = (head > 0) + (-(-(targets - head) // stride))
        user = np.repeat(np.arange(len(targets)), windows)
        k = protocols.ranges(np.zeros_like(windows), windows)  # window number within its user
        start = self.user_starts[user]
        first = np.where(k == 0, start + 1, start + 1 + length + (k - 1) * stride)
        end = np.minimum(first + np.where(k == 0, length, stride), start + train_end[user])
        begin = np.maximum(start, end - 1 - length)
        view = self.copy(self.inter_feat)
        view._view = "sequence"
        view.chunk_begin, view.chunk_first, view.chunk_end = (
            torch.from_numpy(begin), torch.from_numpy(first), torch.from_numpy(end))
        # positions before the first target the model runs over (for the loader's widths)
        view.chunk_reach = torch.from_numpy(first - begin - 1)
        return view

    def target_item_counts(self):
        """``[item_num]``: how often each item id is a target of this view (the training view:
        the training targets; what a sampled softmax draws negatives from)."""
        if self._view == "prefix":
            positions = self.targets.numpy()
        elif self._view == "sequence":
            positions = protocols.ranges(self.chunk_first.numpy(),
                                         (self.chunk_end - self.chunk_first).numpy())
        else:
            raise ValueError("target_item_counts is for a view of the dataset (after build)")
        items = self.inter_feat[self.iid_field].numpy()[positions]
        return torch.from_numpy(np.bincount(items, minlength=self.item_num))

    def __len__(self):
        if self._view == "prefix":
            return len(self.targets)
        if self._view == "sequence":
            return len(self.chunk_begin)
        if hasattr(self, "all_targets"):
            return len(self.all_targets)
        return super().__len__()

    def row_users(self):
        """``[len(self)]`` the user of each row of a prefix view (RecBole's sampled evaluation
        groups rows by user), None for the other views."""
        if self._view == "prefix":
            return self.inter_feat[self.uid_field][self.targets]
        return None

    def sort(self, by, ascending=True):
        """Sort the log; a view's rows are target positions into the log it shares with the
        other views, so a view is never reordered (its rows are in user order already)."""
        if self._view == "full":
            return super().sort(by=by, ascending=ascending)
        if by not in (self.uid_field, [self.uid_field]) or ascending not in (True, [True]):
            raise ValueError(f"a {self._view} view of the session dataset keeps its rows in "
                             f"(user, time) order; it cannot be sorted by {by!r}")
        return None

    def __getitem__(self, index, join=True):
        """Rows of the view; on the whole dataset, RecBole's augmented row number ``index``
        (an int, ids, or a slice: RecBole's sampled evaluation reads each user's rows as one)."""
        if isinstance(index, slice):
            index = torch.arange(len(self))[index]
        if self._view == "prefix":
            rows = self.prefix_rows(self.targets[torch.as_tensor(index)], self.history)
        elif self._view == "sequence":
            rows = self.sequence_batch(torch.as_tensor(index))
        elif hasattr(self, "all_targets"):
            rows = self.prefix_rows(self.all_targets[torch.as_tensor(index)],
                                    self.max_item_list_len)
        else:
            rows = self.inter_feat[index]
        return self.join(rows) if join else rows

    # ------------------------------------------------------------------ row building
    def _gather(self, field, index, valid):
        values = self.inter_feat[field][index.clamp(min=0, max=len(self.inter_feat) - 1)]
        mask = valid.view(valid.shape + (1,) * (values.dim() - valid.dim()))
        return torch.where(mask, values, torch.zeros((), dtype=values.dtype))

    def prefix_rows(self, targets, history):
        """RecBole rows for the targets at these global positions, with up to ``history``
        previous interactions each (left-aligned, zero-padded)."""
        targets = torch.atleast_1d(targets)
        start = torch.maximum(self.position_user_start[targets], targets - history)
        length = targets - start
        index = start.unsqueeze(1) + torch.arange(history)
        valid = torch.arange(history).unsqueeze(0) < length.unsqueeze(1)
        rows = self.inter_feat[targets]
        values = {self.item_list_length_field: length}
        for field, list_field in self.list_fields:
            values[list_field] = self._gather(field, index, valid)
        rows.update(Interaction(values))
        return rows

    def sequence_batch(self, chunks):
        """A padded batch of chunks: every field of the window as ``seq_<field>`` ``[B, T]``, a
        target mask (training targets only, never the context), the lengths and the user ids."""
        chunks = torch.atleast_1d(chunks)
        begin, first, end = (self.chunk_begin[chunks], self.chunk_first[chunks],
                             self.chunk_end[chunks])
        length = end - begin
        width = int(length.max()) if len(length) else 0
        steps = torch.arange(width)
        index = begin.unsqueeze(1) + steps
        valid = steps.unsqueeze(0) < length.unsqueeze(1)
        values = {SEQ_LENGTH: length, SEQ_TARGET_MASK: valid & (index >= first.unsqueeze(1)),
                  self.uid_field: self.inter_feat[self.uid_field][begin]}
        for field, _ in self.list_fields:
            values[SEQ_PREFIX + field] = self._gather(field, index, valid)
        return Interaction(values)
