"""Registration of the plugin's models with RecBole 1.2.1.

RecBole has no plugin hook; it finds things by name:

* ``recbole.utils.get_model(name)`` imports ``recbole.model.<family>.<name.lower()>`` - a module
  already in ``sys.modules`` is found, so each plugin model module gets an alias there;
* ``create_dataset`` looks for ``<Model>Dataset`` in ``recbole.data.dataset`` and ``get_trainer``
  for ``<Model>Trainer`` in ``recbole.trainer`` - set as attributes (HierTCN gets the O(N)
  :class:`~recbole_hiertcn.data.dataset.SessionDataset`, and the run-owned, resumable
  :class:`~recbole_hiertcn.trainer.HierTCNTrainer`);
* ``data_preparation`` asks ``recbole.data.utils.get_dataloader`` for the training loader; a
  wrapper returns the sequence loader when ``train_mode`` is ``sequence``, RecBole's otherwise;
* ``Config`` reads defaults only from RecBole's own ``properties/``; a wrapper around
  ``Config._load_internal_config_dict`` adds this project's ``properties/model/<Model>.yaml`` and
  ``properties/dataset/<dataset>.yaml`` (user files, dicts and the command line still win). A
  plugin dataset preset applies to every model on a dataset RecBole has no preset for (xing,
  pinterest); on one it has (ml-100k), RecBole's built-in models keep RecBole's preset unless
  they run through ``run_recbole_hiertcn.py``, which passes the plugin's preset explicitly.

Everything is additive: RecBole's own models, datasets and configs behave as before. The one
exception is by design: ``get_model`` answers ``GRU4Rec``, ``NextItNet`` and ``SASRec`` with the
plugin's subclasses (:data:`PLUGIN_BASELINES`), which add ``train_mode: sequence`` and keep
RecBole's parameters and prefix-row behaviour - except NextItNet's reading of padded rows, fixed
unless ``nextitnet_reading: last_slot``.
"""

import difflib
import functools
import importlib
import os
import sys

import yaml

import recbole.config.configurator as configurator
import recbole.data
import recbole.data.dataset
import recbole.data.utils
import recbole.model.sequential_recommender
import recbole.trainer
import recbole.utils
import recbole.utils.utils
from recbole.config import Config
from recbole.data.dataloader import NegSampleEvalDataLoader

from recbole_hiertcn.data.dataloader import SequenceTrainDataLoader
from recbole_hiertcn.data.dataloader.every_rank import on_every_rank
from recbole_hiertcn.data.dataloader.sampled_eval import SampledEvalDataLoader
from recbole_hiertcn.data.dataset import SessionDataset
from recbole_hiertcn import property_files
from recbole_hiertcn.trainer import HierTCNTrainer
from recbole_hiertcn.trainer.knn import SessionKNNTrainer
from recbole_hiertcn.model.names import (  # noqa: F401  (re-exported: registry.available_models)
    _EXLIB_MODELS,
    PLUGIN_BASELINES,
    PLUGIN_MODELS,
    SESSION_KNN_MODELS,
    available_models,
)

# The project's properties/ files (kept here too: run scripts and tests look them up here).
properties_dir = property_files.properties_dir
model_yaml = property_files.model_yaml
dataset_yaml = property_files.dataset_yaml

# Model name -> the dataset class RecBole's create_dataset should build for it.
PLUGIN_DATASETS = {"HierTCN": SessionDataset, "HRNN": SessionDataset}
# Model name -> the trainer RecBole's get_trainer should return for it.
PLUGIN_TRAINERS = {"HierTCN": HierTCNTrainer, "HRNN": HierTCNTrainer}
PLUGIN_DATASETS.update(dict.fromkeys(SESSION_KNN_MODELS, SessionDataset))
PLUGIN_TRAINERS.update(dict.fromkeys(SESSION_KNN_MODELS, SessionKNNTrainer))
def _unknown_model_error(name):
    known = available_models()
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.6)
    close += [m for m in known if m.lower() == str(name).lower() and m not in close]
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    return ValueError(
        f"`model` [{name}] is not a RecBole model nor a recbole_hiertcn model.{hint} "
        f"Available models: {', '.join(known)}."
    )


def _wrap_get_model(original):
    if getattr(original, "_recbole_hiertcn", False):
        return original

    @functools.wraps(original)
    def get_model(model_name):
        if model_name in PLUGIN_MODELS:
            return getattr(importlib.import_module(PLUGIN_MODELS[model_name][1]), model_name)
        if model_name in PLUGIN_BASELINES:
            return getattr(importlib.import_module(PLUGIN_BASELINES[model_name]), model_name)
        try:
            return original(model_name)
        except (ValueError, AttributeError, ModuleNotFoundError):
            if model_name in _EXLIB_MODELS:
                raise  # a real exlib model whose library is missing: keep RecBole's message
            raise _unknown_model_error(model_name) from None  # RecBole's cause misleads

    get_model._recbole_hiertcn = True
    return get_model


def _load_yaml(config, path):
    with open(path, "r", encoding="utf-8") as stream:
        return yaml.load(stream.read(), Loader=config.yaml_loader) or {}


def _wrap_load_internal_config_dict(original):
    if getattr(original, "_recbole_hiertcn", False):
        return original

    @functools.wraps(original)
    def _load_internal_config_dict(self, model, model_class, dataset):
        original(self, model, model_class, dataset)
        recbole_dataset = os.path.join(
            os.path.dirname(os.path.realpath(configurator.__file__)),
            "..", "properties", "dataset", f"{dataset}.yaml",
        )
        has_recbole_preset = os.path.isfile(recbole_dataset)
        plugin_model = model in PLUGIN_MODELS
        plugin_dataset = dataset_yaml(dataset)
        if plugin_dataset and not plugin_model and has_recbole_preset:
            plugin_dataset = None  # a built-in model on a RecBole dataset: RecBole's preset only
        # Plugin model defaults sit above RecBole's overall and quick-start defaults; dataset
        # presets (RecBole's, then the plugin's) sit above model defaults, as in RecBole.
        layers = []
        if plugin_model and model_yaml(model):
            layers.append(_load_yaml(self, model_yaml(model)))
        if layers and has_recbole_preset:
            layers.append(_load_yaml(self, recbole_dataset))
        if plugin_dataset:
            preset = _load_yaml(self, plugin_dataset)
            layers.append(preset)
            self.parameters["Dataset"] += [
                key for key in preset if key not in self.parameters["Dataset"]
            ]
        for layer in layers:
            self.internal_config_dict.update(layer)

    _load_internal_config_dict._recbole_hiertcn = True
    return _load_internal_config_dict


def register_model(name, family, module_name):
    """Make ``name`` visible to RecBole's ``get_model``, ``get_trainer`` and ``create_dataset``."""
    PLUGIN_MODELS[name] = (family, module_name)
    module = importlib.import_module(module_name)
    family_package = importlib.import_module(f"recbole.model.{family}")
    alias = f"recbole.model.{family}.{name.lower()}"
    sys.modules[alias] = module
    setattr(family_package, name.lower(), module)
    setattr(family_package, name, getattr(module, name))
    if name in PLUGIN_DATASETS:
        setattr(recbole.data.dataset, name + "Dataset", PLUGIN_DATASETS[name])
    trainer = PLUGIN_TRAINERS.get(name, getattr(module, name + "Trainer", None))
    if trainer is not None:
        setattr(recbole.trainer, name + "Trainer", trainer)


def _wrap_get_dataloader(original):
    if getattr(original, "_recbole_hiertcn", False):
        return original

    @functools.wraps(original)
    def get_dataloader(config, phase):
        if phase == "train" and config["train_mode"] == "sequence":
            return SequenceTrainDataLoader
        loader = original(config, phase)
        if loader is NegSampleEvalDataLoader:  # its rows by user, in session datasets too
            loader = SampledEvalDataLoader
        if phase != "train" and config["single_spec"] is False:
            return on_every_rank(loader)  # see recbole_hiertcn.trainer.ddp
        return loader

    get_dataloader._recbole_hiertcn = True
    return get_dataloader


def register():
    """Register every plugin model and install the config and error-message hooks."""
    wrapped = _wrap_get_model(recbole.utils.utils.get_model)
    for namespace in (recbole.utils.utils, recbole.utils, configurator):
        namespace.get_model = wrapped
    quick_start = sys.modules.get("recbole.quick_start.quick_start")
    if quick_start is not None:
        quick_start.get_model = wrapped
    get_dataloader = _wrap_get_dataloader(recbole.data.utils.get_dataloader)
    recbole.data.utils.get_dataloader = recbole.data.get_dataloader = get_dataloader
    Config._load_internal_config_dict = _wrap_load_internal_config_dict(
        Config._load_internal_config_dict
    )
    for name, (family, module_name) in list(PLUGIN_MODELS.items()):
        register_model(name, family, module_name)

