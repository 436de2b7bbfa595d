"""RecBole's NextItNet, read at each row's last item, trainable with the loss at every position
(``train_mode: sequence``).

RecBole 1.2.1's ``NextItNet.forward`` returns ``dilate_outputs[:, -1]``: the output at the last
slot of a right-padded row. For every history shorter than ``MAX_ITEM_LIST_LENGTH`` that slot is
padding, so the representation depends on how much padding follows the history (the causal
convolutions then reach the real items only from up to ``MAX_ITEM_LIST_LENGTH - 1`` slots away,
through zero embeddings). This class reads the output at each row's last real position
(``item_length - 1``) instead - config key ``nextitnet_reading: last_item``, the default;
``nextitnet_reading: last_slot`` restores RecBole's reading, to reproduce RecBole's figures (and
is what a config made for RecBole's own class, e.g. in an older checkpoint, gets by default).

Otherwise it is RecBole's class with :class:`~recbole_hiertcn.model.all_positions.
AllPositionTraining` in front: the same parameters and initialisation (``__init__`` only adds
the reading), RecBole's loss (with its L2 terms) and, in sequence mode, the output at every
position of windows of at most ``MAX_ITEM_LIST_LENGTH`` + 1 positions. Registered under RecBole's
name: ``get_model("NextItNet")`` returns it.
"""

import torch

from recbole.model.sequential_recommender.nextitnet import NextItNet as RecBoleNextItNet

from recbole_hiertcn.core.config_values import config_error
from recbole_hiertcn.data.dataset.session_dataset import SEQ_TARGET_MASK
from recbole_hiertcn.model.all_positions import AllPositionTraining

READINGS = ("last_item", "last_slot")


class NextItNet(AllPositionTraining, RecBoleNextItNet):
    """RecBole's NextItNet, read at the last real position; see the module docstring."""

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        reading = config["nextitnet_reading"]
        if reading is None:
            # a config made for RecBole's own class (a checkpoint written before the plugin
            # registered NextItNet) keeps the reading it was trained with
            reading = ("last_slot" if getattr(config, "model_class", None) is RecBoleNextItNet
                       else "last_item")
        if reading not in READINGS:
            raise config_error("NextItNet", "nextitnet_reading",
                               f"must be one of {', '.join(READINGS)}, got {reading!r}")
        if reading == "last_slot" and config["train_mode"] == "sequence":
            raise config_error("NextItNet", "nextitnet_reading",
                               "'last_slot' (RecBole's reading of padded rows) needs "
                               "train_mode: prefix; sequence training reads every real position")
        self.reading = reading

    def position_outputs(self, item_seq):
        """The output at every position: ``[B, T, embedding_size]``."""
        return self.final_layer(self.residual_blocks(self.item_embedding(item_seq)))

    def row_output(self, item_seq, item_seq_len):
        """The representation of each right-padded row: at its last item (``last_item``), or at
        its last slot (``last_slot``, RecBole's ``forward``)."""
        if self.reading == "last_slot":
            return self.forward(item_seq)
        dilate_outputs = self.residual_blocks(self.item_embedding(item_seq))
        return self.final_layer(self.gather_indexes(dilate_outputs, item_seq_len - 1))

    def target_loss(self, seq_output, pos_items, neg_items=None):
        """RecBole's loss, with its L2 terms on the embeddings, final layer and residual
        blocks."""
        loss = super().target_loss(seq_output, pos_items, neg_items)
        reg_loss = self.reg_loss([self.item_embedding.weight, self.final_layer.weight])
        return loss + self.reg_weight * reg_loss + self.reg_loss_rb()

    def _row_output(self, interaction):
        return self.row_output(interaction[self.ITEM_SEQ], interaction[self.ITEM_SEQ_LEN])

    def calculate_loss(self, interaction):
        if self.reading == "last_slot" or SEQ_TARGET_MASK in interaction:
            return super().calculate_loss(interaction)
        neg_items = interaction[self.NEG_ITEM_ID] if self.loss_type == "BPR" else None
        return self.target_loss(self._row_output(interaction), interaction[self.POS_ITEM_ID],
                                neg_items)

    def predict(self, interaction):
        seq_output = self._row_output(interaction)
        test_item_emb = self.item_embedding(interaction[self.ITEM_ID])
        return torch.mul(seq_output, test_item_emb).sum(dim=1)

    def full_sort_predict(self, interaction):
        return torch.matmul(self._row_output(interaction),
                            self.item_embedding.weight.transpose(0, 1))
