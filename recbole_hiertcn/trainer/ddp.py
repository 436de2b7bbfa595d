"""Training and evaluation across processes, with the same results as one process.

RecBole 1.2.1 under DDP evaluates each rank's share of a ``DistributedSampler`` (which pads it
with repeated rows) and averages the ranks' metrics weighted by their counts of *batches*; the
result is not a single-process evaluation of the same model. The parts here, which
:class:`~recbole_hiertcn.trainer.HierTCNTrainer` uses when it runs under DDP:

* evaluation: every rank iterates the whole evaluation loader (the plugin builds evaluation
  loaders without RecBole's ``DistributedSampler``, see :mod:`recbole_hiertcn.registry`) and
  scores and collects only its batches (batch ``b`` on rank ``b mod world size``), then the
  ranks' collected rows are gathered in rank order and every rank computes the metrics on all
  of them: each target counted once; with full-sort evaluation the metrics are one process's
  (sampled evaluation draws its candidates per rank);
* training: the sequence loader gives each rank a share of every global batch and a weight
  (:data:`~recbole_hiertcn.data.dataloader.sequence_dataloader.SEQ_RANK_WEIGHT`); the rank's
  loss is scaled by it, so the averaged gradient is the global batch's.
"""

import torch

from recbole_hiertcn import distributed
from recbole_hiertcn.data.dataloader.sequence_dataloader import SEQ_RANK_WEIGHT

# Fields of RecBole's collected evaluation data that hold one row per evaluation row.
ROW_FIELDS = ("rec.items", "rec.topk", "rec.meanrank", "rec.score", "data.label")


class GatheringEvaluator:
    """Stands in for the evaluator of one evaluation: gathers the ranks' rows first. A rank
    that scored no batch has no rows and may lack a field: it takes the field's shape from the
    others, so every rank makes the same collective calls."""

    def __init__(self, evaluator):
        self.evaluator = evaluator

    def __getattr__(self, name):
        return getattr(self.evaluator, name)

    def evaluate(self, dataobject):
        local = {field: dataobject.get(field) for field in ROW_FIELDS
                 if field in dataobject._data_dict
                 and isinstance(dataobject.get(field), torch.Tensor)}
        shapes = {}
        for held in distributed.gather_objects(
                {field: (tuple(value.shape[1:]), str(value.dtype).split(".")[-1])
                 for field, value in local.items()}):
            shapes.update(held)
        for field in sorted(shapes):  # the same fields, in the same order, on every rank
            trailing, dtype = shapes[field]
            value = local.get(field)
            if value is None:
                value = torch.zeros((0,) + trailing, dtype=getattr(torch, dtype))
            dataobject.set(field, distributed.gather_rows(value))
        return self.evaluator.evaluate(dataobject)


class SkippingCollector:
    """Stands in for the trainer's collector during one evaluation: batches scored by another
    rank (marked by ``scores`` None) are not collected."""

    def __init__(self, collector):
        self.collector = collector

    def __getattr__(self, name):
        return getattr(self.collector, name)

    def eval_batch_collect(self, scores, *rest):
        if scores is not None:
            self.collector.eval_batch_collect(scores, *rest)


def scores_batch(batch):
    """Whether this rank scores evaluation batch number ``batch`` (batch ``b`` on rank
    ``b mod world size``)."""
    return batch % distributed.world_size() == distributed.rank()


def other_ranks_batch(batched_data):
    """What an evaluation step returns for another rank's batch (``scores`` None: the
    :class:`SkippingCollector` skips it). The interaction has no rows."""
    interaction = batched_data[0] if isinstance(batched_data, tuple) else batched_data
    return interaction[torch.zeros(0, dtype=torch.long)], None, None, None


def rank_weighted(loss_func):
    """``loss_func`` scaled by the rank's share of the global batch (see the module docstring)."""

    def weighted(interaction):
        loss = loss_func(interaction)
        if SEQ_RANK_WEIGHT in interaction:
            loss = loss * interaction[SEQ_RANK_WEIGHT][0]
        return loss

    return weighted
