"""How a user embedding becomes item scores: one small class per output mode.

Each head works on the core's ``output_layer`` (a linear layer from the TCN's width) and its
item encoder, and answers the same questions: the output, every item's score, the scores of
given items (one per row: ``score_items``; the same ids for every row: ``score_columns``), and the query / item vectors whose inner products (plus a bias) are the scores,
for retrieval. The heads own no parameters, so the state dict is the core's.
"""

from torch.nn import functional as F


class _Head:
    def __init__(self, layer, encoder):
        self.layer, self.encoder = layer, encoder

    def output(self, hidden):
        return self.layer(hidden)

    def retrieval_query(self, hidden):
        return self.output(hidden)


class UntiedScores(_Head):
    """``scoring: untied``: a linear layer to every item, ``<h, W_i> + b_i``."""

    @staticmethod
    def width(n_items, embedding_size, raw_dim):
        return n_items

    def score_all(self, hidden):
        return self.layer(hidden)

    def score_items(self, hidden, items):
        return (hidden * self.layer.weight[items]).sum(-1) + self.layer.bias[items]

    def score_columns(self, hidden, items):
        return hidden @ self.layer.weight[items].t() + self.layer.bias[items]

    def retrieval_query(self, hidden):
        return hidden  # the item vectors are the layer's rows

    def retrieval_items(self):
        return self.layer.weight, self.layer.bias


class TiedScores(_Head):
    """``scoring: tied``: the output's dot product with the item embeddings."""

    @staticmethod
    def width(n_items, embedding_size, raw_dim):
        return embedding_size

    def score_all(self, hidden):
        return self.layer(hidden) @ self.encoder.all_items().t()

    def score_items(self, hidden, items):
        return (self.layer(hidden) * self.encoder(items)).sum(-1)

    def score_columns(self, hidden, items):
        return self.layer(hidden) @ self.encoder(items).t()

    def retrieval_items(self):
        return self.encoder.all_items(), None


class PretrainedEmbeddingOutput(_Head):
    """``output_mode: embedding``: a unit vector in the pretrained item space, scored against
    the raw pretrained vectors (the reference's Pinterest setting)."""

    @staticmethod
    def width(n_items, embedding_size, raw_dim):
        return raw_dim

    def output(self, hidden):
        return F.normalize(self.layer(hidden), dim=-1)

    def score_all(self, hidden):
        return self.output(hidden) @ self.encoder.raw_vectors().t()

    def score_items(self, hidden, items):
        return (self.output(hidden) * self.encoder.raw_vectors(items)).sum(-1)

    def retrieval_items(self):
        return self.encoder.raw_vectors(), None


def head_class(settings):
    """The head of ``settings``' ``output_mode`` and ``scoring``."""
    if settings.output_mode == "embedding":
        return PretrainedEmbeddingOutput
    return UntiedScores if settings.scoring == "untied" else TiedScores
