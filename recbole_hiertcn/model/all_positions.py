"""All-position training (``train_mode: sequence``) for RecBole's causal sequential models.

RecBole trains GRU4Rec, NextItNet and SASRec on one row per target: the target's previous
``MAX_ITEM_LIST_LENGTH`` (L) items, right-padded, and the model's output at the row's last real
position. These models are causal - the output at position ``t`` reads items ``0 .. t`` only (a
GRU; NextItNet's left-padded dilated convolutions; SASRec's lower-triangular attention mask) - so
one pass over a user's sequence gives the output of every prefix at once: the output at ``t``
predicts the item at ``t + 1``.

:class:`AllPositionTraining` goes in front of RecBole's class (``class GRU4Rec(AllPositionTraining,
recbole's GRU4Rec)``): ``__init__``, the parameters, their initialisation and every prefix-row
method stay RecBole's. On a sequence batch of
:class:`~recbole_hiertcn.data.dataset.SessionDataset`'s window view (``sequence_windows``: at
most L history items per target, as in prefix mode), ``calculate_loss`` runs the model once over
each window and takes RecBole's loss at every training target of it: cross-entropy over all
items, or BPR against the sequence loader's negatives (``train_neg_sample_args``), averaged over
targets (and negatives) as RecBole averages over rows - or, with ``softmax_samples: N``, a
sampled softmax over N shared negatives per batch (:mod:`~recbole_hiertcn.core.sampled_softmax`).
"""

import torch

from recbole_hiertcn.data.dataset.session_dataset import SEQ_PREFIX, SEQ_TARGET_MASK
from recbole_hiertcn.model.softmax_samples import sampled_softmax


class AllPositionTraining:
    """Mixin: RecBole's model, trainable on sequence batches. Subclasses define
    :meth:`position_outputs`; :meth:`target_loss` is RecBole's loss of the model on given
    outputs (overridden where the model adds terms, as NextItNet's regularisation)."""

    supports_sequence_training = True
    sequence_windows = True  # at most MAX_ITEM_LIST_LENGTH history items per target

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        # no parameters: RecBole's initialisation and state dict stay as they are
        self.sampled = sampled_softmax(type(self).__name__, config, dataset)

    def position_outputs(self, item_seq):
        """``[B, T, H]``: at every position ``t``, what RecBole's ``forward`` returns for the
        row ``item_seq[:, :t + 1]`` (the representation that predicts the next item)."""
        raise NotImplementedError

    def sequence_outputs(self, interaction):
        """Outputs and targets at every training target of a sequence batch: ``[M, H]`` and
        ``[M]``, row-major, with the ``[B, T - 1]`` mask that selected them (column ``j``:
        the target at window position ``j + 1``, predicted by the output at ``j``)."""
        items = interaction[SEQ_PREFIX + self.ITEM_ID]
        mask = interaction[SEQ_TARGET_MASK][:, 1:]
        hidden = self.position_outputs(items[:, :-1])  # the last position is only a target
        return hidden[mask], items[:, 1:][mask], mask

    def calculate_loss(self, interaction):
        if SEQ_TARGET_MASK not in interaction:
            return super().calculate_loss(interaction)  # RecBole's prefix rows
        hidden, targets, mask = self.sequence_outputs(interaction)
        negatives = None
        if self.loss_type == "BPR":
            negatives = interaction[SEQ_PREFIX + self.NEG_ITEM_ID][:, 1:][mask]  # [M, k]
        return self.target_loss(hidden, targets, negatives)

    def target_loss(self, seq_output, pos_items, neg_items=None):
        """RecBole's loss of ``seq_output`` ``[M, H]`` for ``pos_items`` ``[M]`` (CE over every
        item), or with ``loss_type: BPR`` against ``neg_items`` ``[M]`` or ``[M, k]``."""
        if self.loss_type == "BPR":
            if neg_items.dim() == 1:
                neg_items = neg_items.unsqueeze(1)
            pos_score = torch.sum(seq_output * self.item_embedding(pos_items), dim=-1)  # [M]
            neg_score = torch.sum(seq_output.unsqueeze(1) * self.item_embedding(neg_items),
                                  dim=-1)  # [M, k]
            return self.loss_fct(pos_score.unsqueeze(1).expand_as(neg_score), neg_score)
        if self.sampled is not None:
            shared = self.sampled.draw()
            positive = torch.sum(seq_output * self.item_embedding(pos_items), dim=-1)
            negative = torch.matmul(seq_output, self.item_embedding(shared).transpose(0, 1))
            return self.sampled(positive, negative, pos_items, shared)
        logits = torch.matmul(seq_output, self.item_embedding.weight.transpose(0, 1))
        return self.loss_fct(logits, pos_items)
