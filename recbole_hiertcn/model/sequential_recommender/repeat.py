"""Repeat: the repeat-consumption floor, as a sequential model of this plugin.

``r(i) = c(i) + pop(i) / (max pop + 1)``: ``c(i)`` the occurrences of ``i`` in the row's history
window (what every model of the row sees), so the user's most frequent items come first and
training popularity breaks ties (and orders every item the history lacks). Nothing to learn:
the floor that shows how much of a table is "buy it again". Defaults:
``properties/model/Repeat.yaml``.
"""

from recbole_hiertcn.model.knn_recommender import SessionKNNRecommender
from recbole_hiertcn.model.session_knn import scorers


class Repeat(SessionKNNRecommender):
    """The user's most frequent history items, ties by popularity (module docstring). Config
    key: ``exclude_running_items``."""

    uses_extensions = False

    def build_scorer(self, index, extensions, **settings):
        return scorers.Repeat(index, extensions=extensions)
