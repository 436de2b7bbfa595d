"""RecBole's SASRec, trainable with the loss at every position (``train_mode: sequence``).

The class is RecBole 1.2.1's ``SASRec`` with :class:`~recbole_hiertcn.model.all_positions.
AllPositionTraining` in front: the same ``__init__``, parameters and initialisation, and RecBole's
own methods on prefix rows (``train_mode: prefix``, the default; evaluation in both modes), so
RecBole's figures reproduce. Registered under RecBole's name: ``get_model("SASRec")`` returns it.

SASRec's attention is causal (a lower-triangular mask, padding keys masked) and its position
embeddings count from a row's first item. In sequence mode it runs over windows of at most
``MAX_ITEM_LIST_LENGTH`` positions (:meth:`~recbole_hiertcn.data.dataset.SessionDataset.
_window_view`), each target's history starting at position 0 of its window: the output for a
target is that of the prefix row holding the same history.
"""

import torch

from recbole.model.sequential_recommender.sasrec import SASRec as RecBoleSASRec

from recbole_hiertcn.model.all_positions import AllPositionTraining


class SASRec(AllPositionTraining, RecBoleSASRec):
    """RecBole's SASRec; see the module docstring."""

    def position_outputs(self, item_seq):
        """RecBole's ``forward`` without the gather: ``[B, T, hidden_size]``,
        ``T <= MAX_ITEM_LIST_LENGTH`` (one position embedding each)."""
        if item_seq.size(1) > self.max_seq_length:
            raise ValueError(f"SASRec: {item_seq.size(1)} positions, more than its "
                             f"{self.max_seq_length} position embeddings (MAX_ITEM_LIST_LENGTH)")
        position_ids = torch.arange(item_seq.size(1), dtype=torch.long, device=item_seq.device)
        position_embedding = self.position_embedding(position_ids.unsqueeze(0).expand_as(item_seq))
        input_emb = self.LayerNorm(self.item_embedding(item_seq) + position_embedding)
        input_emb = self.dropout(input_emb)
        extended_attention_mask = self.get_attention_mask(item_seq)
        trm_output = self.trm_encoder(input_emb, extended_attention_mask,
                                      output_all_encoded_layers=True)
        return trm_output[-1]
