"""SR: sequential rules (Kamehkhosh, Jannach & Ludewig 2017; Ludewig & Jannach 2018), for
RecBole.

A rule ``p -> q`` gains ``w(d)`` each time ``q`` follows ``p`` by ``d <= steps`` events in a
training session (``weighting``: ``w(d)``; ``div``: ``1/d``); per antecedent the ``pruning``
heaviest rules are kept (0: all). ``r(q) = sum_{x=1..last_items} w(x) W[s_x, q]``, ``s_x`` the
query session's event ``x`` steps back (``last_items: 1``: the published SR). Formulas,
extensions and scores returned: :mod:`recbole_hiertcn.model.session_knn.scorers`. Defaults:
``properties/model/SR.yaml``.
"""

from recbole_hiertcn.core.config_values import (
    non_negative_int,
    positive_int,
)
from recbole_hiertcn.model.knn_recommender import (
    SessionKNNRecommender,
    weighting,
)
from recbole_hiertcn.model.session_knn import scorers


class SR(SessionKNNRecommender):
    """SR (module docstring). Config keys: ``steps``, ``weighting``, ``pruning``,
    ``last_items`` and the extension keys."""

    KEYS = {"steps": positive_int, "weighting": weighting, "pruning": non_negative_int,
            "last_items": positive_int}

    def build_scorer(self, index, extensions, **settings):
        return scorers.SequentialRules(index, extensions=extensions, **settings)
