"""STAN: sequence and time aware neighbourhood (Garg et al., SIGIR 2019), for RecBole.

``w1(i) = exp(-(x_s(i) - 1) / lambda_spw)`` on the query items,
``sim(s, n) = sum_{i in s & n} w1(i) / sqrt(|s| |n|) * exp(-|t(s) - t(n)| / lambda_snh)``
(``lambda_snh`` in days), and
``r(i) = sum_{n in N_k(s)} sim(s, n) exp(-|p_n(i) - p_n(a(n))| / lambda_inh) 1_n(i)``, ``a(n)``
the most recent query item that ``n`` holds. A scale of ``~`` switches its decay off. Formulas,
extensions and scores returned: :mod:`recbole_hiertcn.model.session_knn.scorers`. Defaults:
``properties/model/STAN.yaml``.
"""

from recbole_hiertcn.core.config_values import (
    non_negative_int,
    optional_scale,
    positive_int,
)
from recbole_hiertcn.core.config_values import config_error
from recbole_hiertcn.model.knn_recommender import SessionKNNRecommender
from recbole_hiertcn.model.session_knn import scorers


class STAN(SessionKNNRecommender):
    """STAN (module docstring). Config keys: ``k``, ``sample_size``, ``lambda_spw``,
    ``lambda_snh``, ``lambda_inh`` and the extension keys."""

    KEYS = {"k": positive_int, "sample_size": non_negative_int, "lambda_spw": optional_scale,
            "lambda_snh": optional_scale, "lambda_inh": optional_scale}

    def build_scorer(self, index, extensions, **settings):
        if settings["lambda_snh"] is not None and not self.boundary.has_times:
            raise config_error(type(self).__name__, "lambda_snh",
                               f"needs the time field [{self.boundary.time_field}] loaded "
                               "(or ~ to switch the recency decay off)")
        return self.scorer_class(index, extensions=extensions, **settings)

    scorer_class = scorers.STAN
