"""SessionPop: the popularity floor, as a sequential model of this plugin.

``r(i)`` = the item's training events, the same list for every row. Named ``SessionPop``, not
``Pop``: RecBole's own general-recommender ``Pop`` exists, runs on a plain dataset and RecBole's
general evaluation rows; registering a plugin ``Pop`` would shadow it for every RecBole user of
the process. This one is a sequential model, so it loads through the session dataset, counts
only the training interactions and is scored on exactly the evaluation rows of every other
sequential model. Defaults: ``properties/model/SessionPop.yaml``.
"""

from recbole_hiertcn.model.knn_recommender import SessionKNNRecommender
from recbole_hiertcn.model.session_knn import scorers


class SessionPop(SessionKNNRecommender):
    """Popularity of the training interactions (module docstring). Config key:
    ``exclude_running_items``."""

    uses_extensions = False

    def build_scorer(self, index, extensions, **settings):
        return scorers.Popularity(index, extensions=extensions)
