"""SKNN: session-based k nearest neighbours (Jannach & Ludewig, RecSys 2017), for RecBole.

``sim(s, n) = |s & n| / sqrt(|s| |n|)`` (``similarity: cosine``; ``jaccard``:
``|s & n| / |s | n|``) between the query session ``s`` and training sessions ``n`` sharing an
item with it (the ``sample_size`` most recent of them; 0: all); the ``k`` most similar score
``r(i) = sum_{n in N_k(s)} sim(s, n) 1_n(i)``. Formulas, extensions and scores returned:
:mod:`recbole_hiertcn.model.session_knn.scorers`; RecBole side:
:mod:`recbole_hiertcn.model.knn_recommender`. Defaults: ``properties/model/SKNN.yaml``.
"""

from recbole_hiertcn.core.config_values import (
    non_negative_int,
    positive_int,
)
from recbole_hiertcn.model.knn_recommender import (
    SessionKNNRecommender,
    similarity,
)
from recbole_hiertcn.model.session_knn import scorers


class SKNN(SessionKNNRecommender):
    """SKNN (module docstring). Config keys: ``k``, ``sample_size``, ``similarity`` and the
    extension keys."""

    KEYS = {"k": positive_int, "sample_size": non_negative_int, "similarity": similarity}

    def build_scorer(self, index, extensions, **settings):
        return scorers.SKNN(index, extensions=extensions, **settings)
