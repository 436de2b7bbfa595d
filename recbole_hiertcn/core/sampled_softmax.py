"""Sampled softmax with logQ correction: cross-entropy over large catalogues at a fraction of the
cost of a full softmax.

A full softmax scores every item at every training target: on Complete Journey (28k items,
1.4M targets) that output layer is most of an epoch. Here each batch draws ``samples`` item ids
(with replacement) from ``q``, the items' frequency among the training targets, and each
target's cross-entropy runs over its own item and those shared negatives. Each negative's logit
is shifted by ``-log(samples * q(item))``, the expected number of times it was drawn, so that the
sum over the draws estimates the full softmax's sum over the other items without a bias toward
popular ones (importance sampling: Bengio & Senecal, IEEE TNN 2008; the logQ correction of
Yi et al., RecSys 2019). A draw of the row's own target is masked out; the target's own logit
is exact. With every item drawn exactly once from a uniform ``q`` the loss is exactly the full softmax's
(a test holds it to that).

Config key ``softmax_samples`` (read by :mod:`recbole_hiertcn.model.softmax_samples`).
"""

import torch
from torch import nn
from torch.nn import functional as F


class SampledSoftmax(nn.Module):
    """The proposal ``q`` over item ids (from ``item_counts``; id 0, padding, is never drawn)
    and the loss. ``q`` is a buffer left out of the state dict: checkpoints are the same with
    and without sampling."""

    def __init__(self, item_counts, samples):
        super().__init__()
        counts = torch.as_tensor(item_counts, dtype=torch.float64).clone()
        counts[0] = 0
        if counts.sum() <= 0:  # no training targets: uniform over the real ids
            counts[1:] = 1
        self.samples = int(samples)
        probabilities = counts / counts.sum()
        self.register_buffer("probabilities", probabilities.float(), persistent=False)
        # log of the expected draws of each item per batch (-inf for items never drawn)
        self.register_buffer("log_expected", torch.log(self.samples * probabilities).float(),
                             persistent=False)

    def draw(self):
        """``[samples]`` item ids, drawn with replacement from ``q`` (torch's generator, so a
        seed fixes them)."""
        return torch.multinomial(self.probabilities, self.samples, replacement=True)

    def forward(self, target_scores, negative_scores, targets, negatives):
        """Mean cross-entropy of ``targets`` ``[M]`` (scores ``[M]``) against the shared
        ``negatives`` ``[S]`` (scores ``[M, S]``)."""
        negative = negative_scores - self.log_expected[negatives].unsqueeze(0)
        hits = negatives.unsqueeze(0) == targets.unsqueeze(1)  # the row's own item drawn
        negative = negative.masked_fill(hits, float("-inf"))
        logits = torch.cat([target_scores.unsqueeze(1), negative], dim=1)
        return F.cross_entropy(logits, torch.zeros_like(targets))
