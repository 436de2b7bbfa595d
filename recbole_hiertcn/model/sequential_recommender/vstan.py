"""VSTAN: STAN with the ideas of V-SkNN (Latifi, Mauro & Jannach, Information Sciences 2021),
for RecBole.

STAN's ``lambda_spw``, ``lambda_snh`` (days) and ``lambda_inh``, plus V-SkNN's recency sampling
(``sample_size``), a ``similarity`` choice, a neighbour weight by the position of the anchor in
the query, ``exp(-(x_s(a(n)) - 1) / lambda_ipw)``, and IDF, ``(1 + lambda_idf * idf(i))``.
A scale of ``~`` switches its decay off. Formulas, extensions and scores returned:
:mod:`recbole_hiertcn.model.session_knn.scorers`. Defaults: ``properties/model/VSTAN.yaml``.
"""

from recbole_hiertcn.core.config_values import (
    non_negative_int,
    non_negative_number,
    optional_scale,
    positive_int,
)
from recbole_hiertcn.model.knn_recommender import similarity
from recbole_hiertcn.model.sequential_recommender.stan import STAN
from recbole_hiertcn.model.session_knn import scorers


class VSTAN(STAN):
    """VSTAN (module docstring). Config keys: ``k``, ``sample_size``, ``similarity``,
    ``lambda_spw``, ``lambda_snh``, ``lambda_inh``, ``lambda_ipw``, ``lambda_idf`` and the
    extension keys."""

    KEYS = {"k": positive_int, "sample_size": non_negative_int, "similarity": similarity,
            "lambda_spw": optional_scale, "lambda_snh": optional_scale,
            "lambda_inh": optional_scale, "lambda_ipw": optional_scale,
            "lambda_idf": non_negative_number}
    scorer_class = scorers.VSTAN
