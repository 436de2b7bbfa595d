"""Session-kNN models, sequential rules and trivial floors on numpy / scipy, without RecBole.

* :mod:`.index` - the training sessions as a sparse session x item index;
* :mod:`.rows` - evaluation rows: running, earlier and query sessions;
* :mod:`.neighbours` - candidates, sampling, own-session removal, top-k;
* :mod:`.scorers` - SR, SKNN, VSKNN, STAN, VSTAN, Popularity, Repeat and the session-aware
  extensions (formulas in its docstring);
* :mod:`.decay` - the position and exponential decays.

The RecBole models are thin adapters
(:mod:`recbole_hiertcn.model.sequential_recommender.sknn` etc.).
"""

from recbole_hiertcn.model.session_knn.index import SessionIndex, TrainingLog
from recbole_hiertcn.model.session_knn.rows import Rows, RowSessions
from recbole_hiertcn.model.session_knn.scorers import (
    SKNN,
    STAN,
    VSKNN,
    VSTAN,
    Extensions,
    Popularity,
    Repeat,
    SequentialRules,
)

__all__ = ["SKNN", "STAN", "VSKNN", "VSTAN", "Extensions", "Popularity", "Repeat", "RowSessions",
           "Rows", "SequentialRules", "SessionIndex", "TrainingLog"]
