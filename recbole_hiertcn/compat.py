"""Workarounds that let RecBole 1.2.1 run on a current stack.

Everything here is applied once, by :func:`apply`, right before RecBole is first imported in a
process that imported ``recbole_hiertcn`` (see :mod:`recbole_hiertcn.setup_trigger`), and each
workaround is scoped to RecBole's own code:

* **numpy 2** removed ``np.float_``, ``np.complex_``, ``np.unicode_`` and ``np.bool8``. RecBole's
  ``Config.compatibility_settings`` reads the first three on every ``Config()``, and ray 2.6.3
  (imported by ``recbole.quick_start``) reads ``np.bool8``. The aliases are restored only where
  they are missing, pointing at the types numpy 1 gave them.
* **Checkpoints**: RecBole checkpoints pickle the whole ``Config``. torch >= 2.6 loads with
  ``weights_only=True`` and cannot read them, so RecBole's trainer (best-model reload, resume)
  and ``load_data_and_model`` fail; older torch unpickles anything, so a hostile file runs
  code. On every torch version, RecBole's trainer module gets a stand-in ``torch`` whose
  ``load`` is :func:`recbole_hiertcn.checkpoint.load_checkpoint` (an unpickler that admits an
  exact list of globals), and ``recbole.quick_start.load_data_and_model`` becomes the plugin's
  own version, which loads the same way. ``torch.load`` itself is never replaced: every other
  load in the process keeps torch's default.
* **Pretrained files**: some of RecBole's models read a file named in their config when they
  are built (``pre_model_path`` of S3Rec, ConvNCF and RaCT, ``pretrain_path`` of NAIS, NeuMF's
  ``mf_pretrain_path`` / ``mlp_pretrain_path``, KD_DAGFM's ``warm_up``) with ``torch.load``, and
  LDiffRec reads ``item_emb.npy`` with ``np.load(allow_pickle=True)``; rebuilding such a model
  from a checkpoint reads a path the checkpoint chose. In those modules (:data:`
  PRETRAINED_LOADING_MODULES`) ``torch.load`` is the safe loader too, and LDiffRec's
  ``np.load`` never unpickles (an embedding table is a plain array).
* **Anomaly detection**: importing ``recbole.model.sequential_recommender`` (which every
  sequential run does) imports RecBole's SINE module, which calls
  ``torch.autograd.set_detect_anomaly(True)`` for the whole process. That checks every autograd
  output for NaN and roughly halves training speed of every model. The setting the process had
  before that import is put back right after it.
* **scipy**: RecBole's graph models (LightGCN, NGCF, SpectralCF, GCMC, NCL, KGIN, MCCLK; see
  :data:`DOK_UPDATE_MODULES`) fill their adjacency matrix with ``dok_matrix._update``, a private
  method current scipy no longer has. Only in those modules, ``sp`` (``scipy.sparse``) is a
  stand-in whose ``dok_matrix`` is a subclass that has ``_update``; scipy's own class is not
  changed.
* **Folders**: RecBole's ``ensure_dir`` checks for a folder, then creates it, so two runs started
  together in one folder can both find no ``log/`` (or ``saved/``) and the second crashes with
  ``FileExistsError``. In the modules that call it (:data:`ENSURE_DIR_MODULES`) it is replaced by
  ``os.makedirs(..., exist_ok=True)``; ``recbole.utils.ensure_dir`` itself is not changed.
* **Several processes**: RecBole starts ``torch.distributed`` with ``nccl`` and CUDA devices only,
  and builds ``DistributedDataParallel`` with ``device_ids``, which a CPU model refuses. In
  RecBole's ``Config``, the distributed branch of ``_init_device`` goes through
  :func:`recbole_hiertcn.distributed.init_device` (the ``backend`` setting; gloo on the CPU);
  in RecBole's trainer module, ``DistributedDataParallel`` is
  :func:`recbole_hiertcn.distributed.distributed_data_parallel`. The function RecBole's
  multi-process ``run`` spawns is the plugin's copy, so each process registers the models.
* **ray**: RecBole's ``recbole.quick_start`` runs ``from ray import tune`` when it is imported,
  for the one call ``tune.report(**test_result)`` in ``objective_function``. ray is an extra
  (``tune``; from Python 3.12 RecBole's pin ``ray<=2.6.3`` cannot even be installed), so only in
  that module, and only when ray is not installed, that import gets :data:`TUNE_WITHOUT_RAY`,
  whose ``report`` does nothing (outside a Ray Tune trial ray 2.6.3's only logs a warning, and
  without ray there is no trial). With ray installed, the module imports the real one; where
  that ray's ``tune.report`` takes the metrics as one dict (releases after 2.6, the only ones
  with wheels for Python 3.12), RecBole's keyword call is passed on as that dict, in that
  module only. The plugin's own entry points never import ``recbole.quick_start``.
* **pandas 3** copy-on-write turns RecBole's chained ``fillna(inplace=True)`` into a silent no-op.
  The package pins ``pandas<3``; :func:`check_pandas` refuses to run on pandas 3 if the pin was
  bypassed, because the damage would be silent.
"""

import builtins
import importlib.abc
import importlib.util
import inspect
import os
import sys
import types
import warnings

import numpy as np
import scipy.sparse
import torch

from recbole_hiertcn.checkpoint import load_checkpoint
from recbole_hiertcn.setup_trigger import check_recbole

# Aliases numpy 2 removed, with the types numpy 1 gave them.
NUMPY_ALIASES = {
    "float_": np.float64,
    "complex_": np.complex128,
    "unicode_": np.str_,
    "bool8": np.bool_,
    "int0": np.intp,
    "uint0": np.uintp,
    "object0": np.object_,
    "string_": np.bytes_,
}

_TRAINER_MODULE = "recbole.trainer.trainer"
_SINE_MODULE = "recbole.model.sequential_recommender.sine"
_QUICK_START_MODULE = "recbole.quick_start.quick_start"
_CONFIG_MODULE = "recbole.config.configurator"


def restore_numpy_aliases():
    """Add the numpy 1 aliases that numpy 2 removed; existing attributes are left alone."""
    for name, value in NUMPY_ALIASES.items():
        if name not in np.__dict__:
            setattr(np, name, value)


# Deprecation notices RecBole's own code triggers on a current stack, by the module raising them:
# pandas 2 on the chained fillna (harmless before pandas 3, which is refused), torch on
# torch.cuda.amp.GradScaler, setuptools on ray's pkg_resources import.
_KNOWN_NOISE = (
    (FutureWarning, "A value is trying to be set on a copy", r"recbole\.data\.dataset\.dataset"),
    (FutureWarning, r"`torch\.cuda\.amp\.GradScaler", r"recbole\.trainer\.trainer"),
    (UserWarning, "pkg_resources is deprecated", r"ray\."),
)


def silence_known_noise():
    """Hide the deprecation notices listed in ``_KNOWN_NOISE``, only where RecBole raises them."""
    for category, message, module in _KNOWN_NOISE:
        warnings.filterwarnings("ignore", message=message, category=category, module=module)


def check_pandas():
    """Refuse pandas >= 3, on which RecBole silently keeps NaN in float fields."""
    import pandas

    major = int(pandas.__version__.split(".")[0])
    if major >= 3:
        raise ImportError(
            f"recbole_hiertcn: pandas {pandas.__version__} is installed, but RecBole 1.2.1 fills "
            "missing values with chained fillna(inplace=True), which pandas 3 silently ignores. "
            "Install 'pandas<3' (the package declares this pin)."
        )


class _StandIn(types.ModuleType):
    """Stands in for a module inside one of RecBole's modules: the names given are replaced,
    every other name is the original module's (which itself is left as it is)."""

    def __init__(self, original, **replacements):
        super().__init__(original.__name__, original.__doc__)
        self._original = original
        self.__dict__.update(replacements)

    def __getattr__(self, name):
        return getattr(self._original, name)


def _use_safe_torch_load(module):
    # torch.load is the allowlist loader there; torch.load itself is never replaced
    module.torch = _StandIn(torch, load=load_checkpoint)


# RecBole modules whose models torch.load a file named in their config when they are built.
PRETRAINED_LOADING_MODULES = (
    "recbole.model.general_recommender.convncf",
    "recbole.model.general_recommender.nais",
    "recbole.model.general_recommender.neumf",
    "recbole.model.general_recommender.ract",
    "recbole.model.context_aware_recommender.kd_dagfm",
    "recbole.model.sequential_recommender.s3rec",
)
_LDIFFREC_MODULE = "recbole.model.general_recommender.ldiffrec"


def load_array_without_pickles(file, *args, allow_pickle=False, **kwargs):
    """``np.load`` that never unpickles, whatever the caller asks (RecBole's LDiffRec asks
    ``allow_pickle=True`` for a plain float array)."""
    return np.load(file, *args, allow_pickle=False, **kwargs)


def _patch_ldiffrec(module):
    if getattr(module, "np", None) is np:
        module.np = _StandIn(np, load=load_array_without_pickles)


def _patch_quick_start(module):
    """RecBole's ``load_data_and_model`` imports torch inside the function, so its load cannot
    be redirected in its module; the plugin's own version (same steps, safe loader) replaces it
    in ``recbole.quick_start``. ``run_recboles``, which ``run(..., nproc=N)`` spawns, is
    replaced by the plugin's copy, so that spawned processes register the plugin's models."""
    from recbole_hiertcn.quick_start import load_data_and_model, recbole_rank

    module.load_data_and_model = load_data_and_model
    # the function RecBole's multi-process ``run`` spawns: the plugin's copy imports the plugin
    module.run_recboles = recbole_rank
    package = sys.modules.get("recbole.quick_start")
    if package is not None and hasattr(package, "load_data_and_model"):
        package.load_data_and_model = load_data_and_model


# --- ray: recbole.quick_start without it ----------------------------------------------------------


class _TuneWithoutRay(types.ModuleType):
    """``ray.tune`` for RecBole's quick-start module when ray is not installed."""

    def __repr__(self):
        return "<stand-in for ray.tune: ray is not installed>"

    @staticmethod
    def report(*_args, **_metrics):
        """Report nothing: without ray no Ray Tune trial is running (outside one, ray 2.6.3's
        ``tune.report`` only logs a warning)."""


TUNE_WITHOUT_RAY = _TuneWithoutRay(
    "ray.tune", "Stands in for ray.tune in recbole.quick_start.quick_start: ray is not installed.")
_RAY_WITHOUT_RAY = types.SimpleNamespace(tune=TUNE_WITHOUT_RAY)


def _import_in_quick_start(name, globals=None, locals=None, fromlist=(), level=0):
    """``__import__`` of RecBole's quick-start module: the usual import, except that
    ``from ray import tune`` gets :data:`TUNE_WITHOUT_RAY` when ray itself is missing (a ray
    that is installed but fails to import still fails)."""
    try:
        return builtins.__import__(name, globals, locals, fromlist, level)
    except ModuleNotFoundError as missing:
        if (level, name, tuple(fromlist or ()), missing.name) == (0, "ray", ("tune",), "ray"):
            return _RAY_WITHOUT_RAY
        raise


def _quick_start_imports_tune_or_stand_in(module):
    """Before ``recbole.quick_start.quick_start`` runs: its own imports go through
    :func:`_import_in_quick_start` (its builtins are a copy with that ``__import__``; the
    process's builtins are not touched)."""
    module.__builtins__ = dict(builtins.__dict__, __import__=_import_in_quick_start)


def _quick_start_builtins_back(module):
    """After it ran: the module's ``__builtins__`` are the process's again (functions it
    defined keep the copy, which differs only for an import of ray they would make)."""
    module.__builtins__ = builtins.__dict__


def _reports_keywords(report):
    """Whether ``report`` takes metrics as keywords (ray up to 2.6: ``report(**metrics)``)."""
    try:
        parameters = inspect.signature(report).parameters.values()
    except (TypeError, ValueError):
        return True  # nothing to go by: leave it as it is
    return any(parameter.kind is parameter.VAR_KEYWORD for parameter in parameters)


def _tune_report_as_dict(module):
    """After ``recbole.quick_start.quick_start`` ran with a ray whose ``tune.report`` takes one
    dict: its ``tune`` is a stand-in whose ``report(**metrics)`` (RecBole's call) reports
    ``metrics``; ``ray.tune`` itself is not changed."""
    tune = getattr(module, "tune", None)
    if tune is None or tune is TUNE_WITHOUT_RAY or _reports_keywords(tune.report):
        return
    report = tune.report

    def report_keywords(*args, **metrics):
        if args:  # already the dict form
            return report(*args, **metrics)
        return report(metrics)

    module.tune = _StandIn(tune, report=report_keywords)


# --- folders: race-free ensure_dir ----------------------------------------------------------------

# RecBole modules that create folders (logs, checkpoints, saved datasets) through ensure_dir.
ENSURE_DIR_MODULES = (
    "recbole.utils.logger",
    "recbole.trainer.trainer",
    "recbole.data.dataset.dataset",
    "recbole.data.utils",
)


def ensure_dir(dir_path):
    """RecBole's ``ensure_dir`` without the gap between checking and creating."""
    os.makedirs(dir_path, exist_ok=True)


def _patch_ensure_dir(module):
    module.ensure_dir = ensure_dir


# --- scipy: dok_matrix._update -------------------------------------------------------------------

# RecBole modules that build an adjacency matrix with ``sp.dok_matrix(...)._update(dict)``.
DOK_UPDATE_MODULES = (
    "recbole.model.general_recommender.gcmc",
    "recbole.model.general_recommender.lightgcn",
    "recbole.model.general_recommender.ncl",
    "recbole.model.general_recommender.ngcf",
    "recbole.model.general_recommender.spectralcf",
    "recbole.model.knowledge_aware_recommender.kgin",
    "recbole.model.knowledge_aware_recommender.mcclk",
)


class DokMatrixWithUpdate(scipy.sparse.dok_matrix):
    """scipy's ``dok_matrix`` with the private ``_update`` RecBole's graph models call."""

    def _update(self, mapping):
        """Set the entries ``{(row, col): value}`` in bulk, without checks, like scipy's old one.

        Keys are not bounds-checked and values are stored as given (zeros included), as
        ``dict.update`` did when ``dok_matrix`` was a dict of its entries.
        """
        entries = getattr(self, "_dict", None)
        if isinstance(entries, dict):  # scipy >= 1.13 keeps the entries in ``self._dict``
            entries.update(mapping)
            return
        inherited = getattr(super(), "_update", None)
        if inherited is not None:  # a scipy that still has the method
            inherited(mapping)
            return
        # Any other layout: element-wise assignment through the public indexing.
        if mapping:
            rows, cols = zip(*mapping.keys())
            self[np.asarray(rows), np.asarray(cols)] = np.fromiter(
                mapping.values(), dtype=self.dtype, count=len(mapping))


def _patch_dok_update(module):
    if getattr(module, "sp", None) is scipy.sparse:
        module.sp = _StandIn(scipy.sparse, dok_matrix=DokMatrixWithUpdate)


class _AfterImport(importlib.abc.MetaPathFinder):
    """Runs callbacks right before (``preparations``) and right after (``callbacks``) one module
    is executed, without importing it early."""

    def __init__(self, name):
        self.name, self.callbacks, self.preparations = name, [], []

    def find_spec(self, fullname, path=None, target=None):
        if fullname != self.name:
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(fullname)
        if spec is None or spec.loader is None:
            return spec
        exec_module, callbacks = spec.loader.exec_module, list(self.callbacks)
        preparations = list(self.preparations)

        def exec_then_patch(module):
            for prepare in preparations:
                prepare(module)
            exec_module(module)
            for callback in callbacks:
                callback(module)

        spec.loader.exec_module = exec_then_patch
        return spec


def _finder(name):
    finder = next((f for f in sys.meta_path if isinstance(f, _AfterImport) and f.name == name),
                  None)
    if finder is None:
        finder = _AfterImport(name)
        sys.meta_path.insert(0, finder)
    return finder


def after_import(name, callback):
    """Call ``callback(module)`` now if ``name`` is imported, otherwise right after its import.

    Several callbacks may wait for one module; registering the same callback twice (``apply``
    called again) runs it once.
    """
    if name in sys.modules:
        callback(sys.modules[name])
        return
    finder = _finder(name)
    if callback not in finder.callbacks:
        finder.callbacks.append(callback)


def before_import(name, callback):
    """Call ``callback(module)`` on the new, empty module ``name`` right before its code runs;
    nothing if it is imported already (its code has run). Registering the same callback twice
    runs it once."""
    if name in sys.modules:
        return
    finder = _finder(name)
    if callback not in finder.preparations:
        finder.preparations.append(callback)


def _restore_anomaly_detection(enabled):
    def restore(_module):
        torch.autograd.set_detect_anomaly(enabled)

    return restore


# --- several processes: any backend, CPU models ----------------------------------------------------


def _patch_config_device(module):
    """``Config._init_device`` keeps RecBole's single-process branch; a distributed run (the
    config has ``local_rank``) starts through :func:`recbole_hiertcn.distributed.init_device`."""
    from recbole_hiertcn import distributed

    config_class = module.Config
    original = config_class._init_device
    if getattr(original, "_plugin_backend", False):
        return

    def _init_device(self):
        if "local_rank" not in self.final_config_dict:
            return original(self)
        gpu_id = self.final_config_dict["gpu_id"]
        if isinstance(gpu_id, tuple):
            gpu_id = ",".join(map(str, gpu_id))
        self.final_config_dict["gpu_id"] = str(gpu_id)
        os.environ["CUDA_VISIBLE_DEVICES"] = str(gpu_id)
        distributed.init_device(self.final_config_dict)

    _init_device._plugin_backend = True
    config_class._init_device = _init_device


def _patch_trainer_ddp(module):
    from recbole_hiertcn.distributed import distributed_data_parallel

    module.DistributedDataParallel = distributed_data_parallel


def apply():
    """Apply every workaround; safe to call more than once."""
    check_recbole()
    restore_numpy_aliases()
    check_pandas()
    silence_known_noise()
    after_import(_SINE_MODULE, _restore_anomaly_detection(torch.is_anomaly_enabled()))
    if not hasattr(scipy.sparse.dok_matrix, "_update"):
        for name in DOK_UPDATE_MODULES:
            after_import(name, _patch_dok_update)
    # On every torch: before 2.6 torch.load unpickles anything, from 2.6 it cannot read RecBole.
    after_import(_TRAINER_MODULE, _use_safe_torch_load)
    for name in PRETRAINED_LOADING_MODULES:
        after_import(name, _use_safe_torch_load)
    after_import(_LDIFFREC_MODULE, _patch_ldiffrec)
    after_import(_TRAINER_MODULE, _patch_trainer_ddp)
    after_import(_CONFIG_MODULE, _patch_config_device)
    before_import(_QUICK_START_MODULE, _quick_start_imports_tune_or_stand_in)
    after_import(_QUICK_START_MODULE, _quick_start_builtins_back)
    after_import(_QUICK_START_MODULE, _tune_report_as_dict)
    after_import(_QUICK_START_MODULE, _patch_quick_start)
    for name in ENSURE_DIR_MODULES:
        after_import(name, _patch_ensure_dir)
