"""HierTCN for RecBole: hierarchical temporal convolutional networks as a RecBole plugin.

Importing the package is the only setup step: once RecBole is imported (right away if it
already is), the compatibility workarounds in :mod:`recbole_hiertcn.compat` are applied and the
plugin's models are registered with RecBole, after which ``recbole.utils.get_model("HierTCN")``
(and ``"HRNN"``), ``Config(model="HierTCN", ...)`` and RecBole's ``run_recbole`` /
``objective_function`` / ``load_data_and_model`` work unchanged. Until then nothing of RecBole
is imported, so the RecBole-free parts (:mod:`recbole_hiertcn.serving`) load without it; see
:mod:`recbole_hiertcn.setup_trigger`. ``recbole_hiertcn.HierTCN``, ``HRNN``, ``compat`` and
``registry`` run the setup when first read.
"""

import importlib

from recbole_hiertcn import setup_trigger

setup_trigger.install()

__version__ = "0.1.0"
__all__ = ["HRNN", "HierTCN", "compat", "registry"]

# Attributes that need RecBole set up: name -> (module, attribute of it or None for the module).
_LAZY = {
    "HierTCN": ("recbole_hiertcn.model.sequential_recommender.hiertcn", "HierTCN"),
    "HRNN": ("recbole_hiertcn.model.sequential_recommender.hrnn", "HRNN"),
    "compat": ("recbole_hiertcn.compat", None),
    "registry": ("recbole_hiertcn.registry", None),
}


def __getattr__(name):
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    setup_trigger.set_up()
    module_name, attribute = _LAZY[name]
    module = importlib.import_module(module_name)
    value = module if attribute is None else getattr(module, attribute)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
