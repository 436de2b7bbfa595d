"""The model names RecBole's ``get_model`` answers once the plugin is imported, and which module
defines each plugin model: plain data, importing no trainer or loader, so that the checkpoint
loader (which admits only model classes of these names) sits below the registry."""

import importlib

from recbole.model.abstract_recommender import AbstractRecommender

# Model name -> (RecBole family package, module that defines it).
PLUGIN_MODELS = {
    "HierTCN": ("sequential_recommender", "recbole_hiertcn.model.sequential_recommender.hiertcn"),
    "HRNN": ("sequential_recommender", "recbole_hiertcn.model.sequential_recommender.hrnn"),
}
# Session-kNN models, sequential rules and trivial floors (recbole_hiertcn.model.session_knn):
# sequential models of this plugin that do not train.
SESSION_KNN_MODELS = ("SR", "SKNN", "VSKNN", "STAN", "VSTAN", "SessionPop", "Repeat")
PLUGIN_MODELS.update({
    name: ("sequential_recommender",
           f"recbole_hiertcn.model.sequential_recommender.{name.lower()}")
    for name in SESSION_KNN_MODELS
})
# RecBole's own models that get_model answers with the plugin's subclass of the same name:
# RecBole's parameters and prefix-row behaviour, plus `train_mode: sequence`
# (recbole_hiertcn.model.all_positions). RecBole's modules and classes are left as they are.
PLUGIN_BASELINES = {
    "GRU4Rec": "recbole_hiertcn.model.sequential_recommender.gru4rec",
    "NextItNet": "recbole_hiertcn.model.sequential_recommender.nextitnet",
    "SASRec": "recbole_hiertcn.model.sequential_recommender.sasrec",
}
_RECBOLE_FAMILIES = (
    "general_recommender",
    "context_aware_recommender",
    "sequential_recommender",
    "knowledge_aware_recommender",
)
# Needs lightgbm/xgboost, which RecBole does not install; listed by name only.
_EXLIB_MODELS = ("LightGBM", "XGBoost")


def available_models():
    """Every model name ``get_model`` accepts: RecBole's built-ins and this plugin's."""
    names = set(PLUGIN_MODELS) | set(_EXLIB_MODELS)
    for family in _RECBOLE_FAMILIES:
        package = importlib.import_module(f"recbole.model.{family}")
        names.update(
            name
            for name, value in vars(package).items()
            if isinstance(value, type) and issubclass(value, AbstractRecommender)
        )
    return sorted(names)
