"""V-SkNN: vector-multiplication session kNN (Ludewig & Jannach, UMUAI 2018), for RecBole.

Query items weighted by their steps back ``x`` (``weighting``: ``w(x)``),
``sim(s, n) = sum_{i in s & n} w(x_s(i)) / sqrt(|s| |n|)`` over the ``sample_size`` most
recent sessions sharing an item with ``s``, and
``r(i) = (1 + idf_weight * idf(i)) sum_{n in N_k(s)} sim(s, n) w'(x_s(a(n))) 1_n(i)``, ``a(n)``
the most recent query item that ``n`` holds, ``w'`` the ``score_weighting``. Formulas,
extensions and scores returned: :mod:`recbole_hiertcn.model.session_knn.scorers`. Defaults:
``properties/model/VSKNN.yaml``.
"""

from recbole_hiertcn.core.config_values import (
    non_negative_int,
    non_negative_number,
    positive_int,
)
from recbole_hiertcn.model.knn_recommender import (
    SessionKNNRecommender,
    similarity,
    weighting,
)
from recbole_hiertcn.model.session_knn import scorers


class VSKNN(SessionKNNRecommender):
    """V-SkNN (module docstring). Config keys: ``k``, ``sample_size``, ``similarity``,
    ``weighting``, ``score_weighting``, ``idf_weight`` and the extension keys."""

    KEYS = {"k": positive_int, "sample_size": non_negative_int, "similarity": similarity,
            "weighting": weighting, "score_weighting": weighting,
            "idf_weight": non_negative_number}

    def build_scorer(self, index, extensions, **settings):
        return scorers.VSKNN(index, extensions=extensions, **settings)
