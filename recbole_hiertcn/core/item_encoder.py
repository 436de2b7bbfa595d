"""Item id -> vector of the model width: learned embeddings, or fixed pretrained vectors.

In the Pinterest setting of the reference, items come with fixed pretrained vectors (512-d) that
a learned linear layer without bias projects to the model width. Both kinds of item input share
one interface, so the rest of HierTCN does not care which one it has.
"""

import torch
from torch import nn
from torch.nn import functional as F


class ItemEncoder(nn.Module):
    """Learned item embeddings (``pretrained`` None) or projected pretrained vectors.

    Args:
        n_items: number of item ids, id 0 being padding.
        size: width of the vectors returned.
        pretrained: optional ``[n_items, dim]`` tensor of fixed item vectors (row 0 padding).
        freeze: keep the pretrained vectors fixed (only the projection learns).
    """

    def __init__(self, n_items, size, pretrained=None, freeze=True):
        super().__init__()
        if pretrained is None:
            self.table = nn.Embedding(n_items, size, padding_idx=0)
            nn.init.normal_(self.table.weight, std=0.02)
            with torch.no_grad():
                self.table.weight[0].zero_()
            self.projection = None
        else:
            pretrained = torch.as_tensor(pretrained, dtype=torch.float32).clone()
            pretrained[0] = 0.0
            self.table = nn.Embedding.from_pretrained(pretrained, freeze=freeze, padding_idx=0)
            self.projection = nn.Linear(pretrained.size(1), size, bias=False)
        self.padding_idx = 0

    def project(self, vectors):
        """Raw table vectors (or any mix of them, such as a mean) -> vectors of the model width."""
        return vectors if self.projection is None else self.projection(vectors)

    def forward(self, ids):
        """``[...]`` ids -> ``[..., size]``; padding gives zeros."""
        return self.project(self.table(ids))

    def bag_mean(self, ids, offsets):
        """Mean vector of each bag of a flat id list (bags start at ``offsets``); padding ids are
        left out of the means and an all-padding bag is zero."""
        means = F.embedding_bag(ids, self.table.weight, offsets, mode="mean",
                                padding_idx=self.padding_idx)
        return self.project(means)

    def all_items(self):
        """``[n_items, size]``: every item's vector, for dot-product scoring."""
        return self.project(self.table.weight)

    def raw_vectors(self, ids=None):
        """The table's own vectors (the pretrained space when pretrained), all or of ``ids``."""
        return self.table.weight if ids is None else self.table(ids)
