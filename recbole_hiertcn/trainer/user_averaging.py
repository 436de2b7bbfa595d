"""Metrics averaged per user first, then over users (``metric_averaging: users``).

RecBole averages a top-k metric over evaluation rows: under ``last_session`` or
``user_holdout`` a user with many targets weighs as much as many users. The authors' reference
averages each user's targets first, then over users. With ``metric_averaging: users``,
:class:`~recbole_hiertcn.trainer.HierTCNTrainer` records the user of every full-sort evaluation
row and evaluates with :class:`UserAveragedEvaluator`, which averages that way.
"""

import inspect
from collections import OrderedDict

import numpy as np
import torch
from recbole.evaluator.base_metric import TopkMetric

from recbole_hiertcn import distributed

AVERAGINGS = ("targets", "users")


def per_user_means(values, users):
    """``[rows, k]`` metric values -> ``[users, k]``: the mean of each user's rows."""
    _, inverse, counts = np.unique(users, return_inverse=True, return_counts=True)
    sums = np.zeros((len(counts), values.shape[1]))
    np.add.at(sums, inverse, values)
    return sums / counts[:, None]


def row_values(metric, dataobject):
    """``[rows, max k]`` values of a top-k metric, before RecBole averages them. Hit, MRR and
    Precision read the hit positions only, Recall, NDCG and MAP also each row's positives."""
    pos_index, pos_len = metric.used_info(dataobject)
    arity = len(inspect.signature(metric.metric_info).parameters)
    return metric.metric_info(*(pos_index, pos_len)[:arity])


class UserAveragedEvaluator:
    """Stands in for RecBole's ``Evaluator`` for one evaluation: every top-k metric is averaged
    over each user's rows, then over users. ``users`` fills up while the rows are scored."""

    def __init__(self, evaluator, users):
        self.evaluator, self.users = evaluator, users

    def evaluate(self, dataobject):
        users = torch.cat(self.users) if self.users else torch.zeros(0, dtype=torch.long)
        users = distributed.gather_rows(users).numpy()  # under DDP: every rank's, in rank order
        result = OrderedDict()
        for name in self.evaluator.metrics:
            metric = self.evaluator.metric_class[name]
            if not isinstance(metric, TopkMetric):
                raise ValueError(f"config key `metric_averaging`: 'users' averages top-k metrics "
                                 f"(Recall, MRR, NDCG, Hit, Precision, MAP); {name} is not one")
            values = row_values(metric, dataobject)
            if len(values) != len(users):
                raise RuntimeError(f"{len(values)} evaluation rows but {len(users)} users seen")
            result.update(metric.topk_result(name, per_user_means(values, users)))
        return result


def read_averaging(config):
    """Whether ``metric_averaging`` asks for per-user averaging; a ``ValueError`` naming the key
    for anything but its values."""
    averaging = config["metric_averaging"] or "targets"
    if averaging not in AVERAGINGS:
        raise ValueError(f"config key `metric_averaging` must be one of "
                         f"{', '.join(AVERAGINGS)}, got {averaging!r}")
    return averaging == "users"


def refuse_sampled_evaluation():
    """Per-user averaging reads each full-sort row's user; sampled evaluation has no such row."""
    raise ValueError("config key `metric_averaging`: 'users' needs full-sort evaluation "
                     "(eval_args mode: full)")
