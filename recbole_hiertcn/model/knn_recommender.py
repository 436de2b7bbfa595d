"""RecBole side of the session-kNN models and floors: a thin adapter around
:mod:`recbole_hiertcn.model.session_knn`.

:class:`SessionKNNRecommender` is a RecBole ``SequentialRecommender`` that does not train:

* it builds the training-session index once, in ``__init__``, from the **training
  interactions** of the dataset RecBole gives a model (``train_data._dataset``): for the
  :class:`~recbole_hiertcn.data.dataset.SessionDataset` the union, per user, of every training
  target and its history (prefix view: ``targets``; sequence view: the chunks), never a
  validation or test target; for RecBole's own ``SequentialDataset`` every training row's
  target plus each user's first history;
* sessions come from the plugin's one rule,
  :class:`~recbole_hiertcn.core.session_rule.SessionRule`, on the field
  :class:`~recbole_hiertcn.model.session_boundary.SessionBoundary` chooses (session ids if
  loaded, else idle gaps), for the index and for the rows alike; the target's own session id or time
  says whether it opens a session exactly as for HierTCN (``target_session_known``);
* every evaluation row is read as the neural models read it: ``item_id_list``,
  ``item_length``, the boundary list (and the target's boundary value), the time list if
  loaded, the user id (:class:`~recbole_hiertcn.model.session_knn.rows.Rows`);
* ``full_sort_predict`` scores a whole batch at once (sparse products, in chunks of rows);
  ``predict`` reads the same scores for sampled evaluation;
* ``calculate_loss`` returns a zero loss of one zero parameter (as RecBole's ``Pop``), and
  :class:`~recbole_hiertcn.trainer.knn.SessionKNNTrainer` skips the pass over the training
  batches altogether;
* checkpoints hold that parameter and a fingerprint of the index: the index is rebuilt from the
  same training data on reload (deterministically), and a checkpoint whose fingerprint differs
  from the rebuilt index is refused.
"""


import numpy as np
import torch
from torch import nn

from recbole.model.abstract_recommender import SequentialRecommender
from recbole.utils import InputType

from recbole_hiertcn.core.config_values import (
    choice,
    flag,
    non_negative_number,
    positive_int,
)
from recbole_hiertcn.data import protocols
from recbole_hiertcn.model.session_boundary import SessionBoundary
from recbole_hiertcn.model.session_knn.decay import WEIGHTINGS
from recbole_hiertcn.model.session_knn.index import SessionIndex, TrainingLog
from recbole_hiertcn.model.session_knn.rows import Rows
from recbole_hiertcn.model.session_knn.scorers import (
    REMIND_STRATEGIES,
    SIMILARITIES,
    Extensions,
)

FINGERPRINT = "index_fingerprint"


# ---------------------------------------------------------------------------- config values
def weighting(model, config, key):
    return choice(model, config, key, WEIGHTINGS)


def similarity(model, config, key):
    return choice(model, config, key, SIMILARITIES)


EXTENSION_KEYS = {
    "extend": flag, "extend_length": positive_int,
    "boost": flag, "boost_weight": non_negative_number,
    "remind": flag, "remind_strategy": lambda m, c, k: choice(m, c, k, REMIND_STRATEGIES),
    "remind_sessions": positive_int, "remind_weight": non_negative_number,
    "exclude_running_items": flag,
}


def read_keys(model, config, spec):
    """``{key: reader(model, config, key)}`` of a spec ``{key: reader}``."""
    return {key: reader(model, config, key) for key, reader in spec.items()}


# ---------------------------------------------------------------------------- training data
def _union_per_user(first, last):
    """Sorted positions of the union, per user start ``first``, of ``[first, last]``."""
    if not len(first):
        return np.zeros(0, dtype=np.int64)
    starts, inverse = np.unique(first, return_inverse=True)
    ends = np.full(len(starts), -1, dtype=np.int64)
    np.maximum.at(ends, inverse, last)
    return protocols.ranges(starts, ends - starts + 1)


def training_positions(dataset):
    """Positions of the flat log of a :class:`SessionDataset` train view that are training
    data: every training target and the history before it (per user, from the user's first
    event to the last training target)."""
    view = getattr(dataset, "_view", None)
    if view == "prefix":
        targets = dataset.targets.numpy().astype(np.int64)
        return _union_per_user(dataset.position_user_start[dataset.targets].numpy(), targets)
    if view == "sequence":
        first = dataset.chunk_first
        last = dataset.chunk_end.numpy().astype(np.int64) - 1
        return _union_per_user(dataset.position_user_start[first].numpy(), last)
    raise ValueError(f"the session-kNN models are built from a training view of the session "
                     f"dataset, got a {view!r} view")


def training_log(dataset, boundary, config):
    """The training interactions the model may use, as a
    :class:`~recbole_hiertcn.model.session_knn.index.TrainingLog`."""
    uid, iid = dataset.uid_field, dataset.iid_field
    time_field = boundary.time_field if boundary.has_times else None
    if hasattr(dataset, "position_user_start"):  # the plugin's SessionDataset
        at = torch.from_numpy(training_positions(dataset))
        feat = dataset.inter_feat

        def column(field):
            return feat[field][at].numpy()
    else:  # RecBole's SequentialDataset: rows of (history, target), sorted by user and time
        column = _augmented_columns(dataset, config)
    return TrainingLog(
        users=column(uid), items=column(iid), boundary=column(boundary.field),
        times=None if time_field is None else column(time_field).astype(np.float64),
        by_time=boundary.by_time, gap=boundary.gap)


def _augmented_columns(dataset, config):
    """Flat training columns of RecBole's augmented rows: per user, the first row's history,
    then every row's target."""
    feat, suffix = dataset.inter_feat, config["LIST_SUFFIX"]
    users = feat[dataset.uid_field].numpy()
    first = np.flatnonzero(np.r_[True, users[1:] != users[:-1]]) if len(users) else users
    lengths = feat[dataset.item_list_length_field].numpy()[first]
    owner = np.repeat(np.arange(len(first)), lengths)
    slot = protocols.ranges(np.zeros(len(first), np.int64), lengths)
    # each user's history events (in order), then the user's targets
    rank = np.r_[np.repeat(first, lengths) * 2, np.arange(len(users)) * 2 + 1]
    order = np.argsort(rank, kind="stable")

    def column(field):
        if field == dataset.uid_field:
            history = users[first][owner]
        else:
            history = feat[field + suffix].numpy()[first[owner], slot]
        return np.r_[history, feat[field].numpy()][order]

    return column


# ---------------------------------------------------------------------------- the model
class SessionKNNRecommender(SequentialRecommender):
    """Base of the session-kNN models and floors (see the module docstring). A subclass sets
    ``KEYS`` (its config keys: ``{key: reader}``) and :meth:`build_scorer`."""

    input_type = InputType.POINTWISE
    supports_sequence_training = True  # it does not train: any training view will do
    KEYS = {}
    uses_extensions = True

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        name = type(self).__name__
        self.boundary = SessionBoundary(name, config, dataset)
        self.settings = read_keys(name, config, self.KEYS)
        extensions = (Extensions(**read_keys(name, config, EXTENSION_KEYS))
                      if self.uses_extensions else
                      Extensions(exclude_running_items=flag(name, config,
                                                            "exclude_running_items")))
        self.index = SessionIndex(training_log(dataset, self.boundary, config), self.n_items)
        self.scorer = self.build_scorer(self.index, extensions, **self.settings)
        self.extensions = extensions
        self.fake_loss = nn.Parameter(torch.zeros(1))
        self.register_buffer(FINGERPRINT, torch.from_numpy(self.index.fingerprint()))
        self._register_load_state_dict_pre_hook(self._check_fingerprint)
        self._time_list = (self.boundary.time_field + config["LIST_SUFFIX"]
                           if self.boundary.has_times else None)

    def build_scorer(self, index, extensions, **settings):
        raise NotImplementedError

    def _check_fingerprint(self, state_dict, prefix, *_):
        saved = state_dict.get(prefix + FINGERPRINT)
        if saved is not None and not torch.equal(saved.cpu(),
                                                 getattr(self, FINGERPRINT).cpu()):
            raise ValueError(
                f"{type(self).__name__}: this checkpoint was built from other training "
                f"sessions than the ones this model indexed (fingerprint "
                f"{saved.tolist()} != {getattr(self, FINGERPRINT).tolist()}): the data, "
                f"protocol or session settings differ")

    def extra_repr(self):
        index = self.index
        return (f"training sessions={index.n_sessions}, indexed (session, item)={index.X.nnz}, "
                f"settings={self.settings}, extensions={self.extensions}")

    # ------------------------------------------------------------------ rows
    def rows(self, interaction):
        """The batch as :class:`~recbole_hiertcn.model.session_knn.rows.Rows`."""
        lengths = interaction[self.ITEM_SEQ_LEN]
        opens = self.boundary.row_opens(interaction, lengths)

        def host(name):
            return interaction[name].detach().cpu().numpy()

        return Rows(items=host(self.ITEM_SEQ), lengths=host(self.ITEM_SEQ_LEN).astype(np.int64),
                    opens=opens.detach().cpu().numpy(), users=host(self.USER_ID),
                    boundary=host(self.boundary.list_field),
                    times=None if self._time_list is None
                    else host(self._time_list).astype(np.float64))

    # ------------------------------------------------------------------ RecBole API
    def calculate_loss(self, interaction):
        """A zero loss (nothing trains; the index was built in ``__init__``)."""
        return self.fake_loss.sum() * 0.0

    def full_sort_predict(self, interaction):
        scores = self.scorer.scores(self.rows(interaction))
        return torch.from_numpy(scores).to(interaction[self.ITEM_SEQ].device)

    def predict(self, interaction):
        scores = self.full_sort_predict(interaction)
        return scores.gather(1, interaction[self.ITEM_ID].unsqueeze(1)).squeeze(1)
