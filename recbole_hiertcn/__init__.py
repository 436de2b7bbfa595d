"""HierTCN for RecBole: hierarchical temporal convolutional networks as a RecBole plugin.

Importing the package is the only setup step: it applies the compatibility workarounds in
:mod:`recbole_hiertcn.compat` and registers the plugin's models with RecBole, after which
``recbole.utils.get_model("HierTCN")`` (and ``"HRNN"``), ``Config(model="HierTCN", ...)`` and RecBole's
``run_recbole`` / ``objective_function`` / ``load_data_and_model`` work unchanged.
"""

from recbole_hiertcn import compat

compat.apply()

from recbole_hiertcn import registry  # noqa: E402  (RecBole must be importable on numpy 2 first)

registry.register()

from recbole_hiertcn.model.sequential_recommender.hiertcn import HierTCN  # noqa: E402
from recbole_hiertcn.model.sequential_recommender.hrnn import HRNN  # noqa: E402

__version__ = "0.1.0"
__all__ = ["HRNN", "HierTCN", "compat", "registry"]
