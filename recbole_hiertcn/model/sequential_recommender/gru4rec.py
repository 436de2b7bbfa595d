"""RecBole's GRU4Rec, trainable with the loss at every position (``train_mode: sequence``).

The class is RecBole 1.2.1's ``GRU4Rec`` with :class:`~recbole_hiertcn.model.all_positions.
AllPositionTraining` in front: the same ``__init__``, parameters and initialisation, and RecBole's
own methods on prefix rows (``train_mode: prefix``, the default; evaluation in both modes), so
RecBole's figures reproduce. Registered under RecBole's name: ``get_model("GRU4Rec")`` returns it.

In sequence mode the GRU runs over windows of at most ``MAX_ITEM_LIST_LENGTH`` + 1 positions
(:meth:`~recbole_hiertcn.data.dataset.SessionDataset._window_view`), so it reads at most
``MAX_ITEM_LIST_LENGTH`` history items per target, as on prefix rows.
"""

from recbole.model.sequential_recommender.gru4rec import GRU4Rec as RecBoleGRU4Rec

from recbole_hiertcn.model.all_positions import AllPositionTraining


class GRU4Rec(AllPositionTraining, RecBoleGRU4Rec):
    """RecBole's GRU4Rec; see the module docstring."""

    def position_outputs(self, item_seq):
        """RecBole's ``forward`` without the gather: ``[B, T, embedding_size]``."""
        item_seq_emb_dropout = self.emb_dropout(self.item_embedding(item_seq))
        gru_output, _ = self.gru_layers(item_seq_emb_dropout)
        return self.dense(gru_output)
