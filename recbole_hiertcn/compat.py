"""Workarounds that let RecBole 1.2.1 run on a current stack.

Everything here is applied once, by :func:`apply`, when ``recbole_hiertcn`` is imported, and each
workaround is scoped to RecBole's own code:

* **numpy 2** removed ``np.float_``, ``np.complex_``, ``np.unicode_`` and ``np.bool8``. RecBole's
  ``Config.compatibility_settings`` reads the first three on every ``Config()``, and ray 2.6.3
  (imported by ``recbole.quick_start``) reads ``np.bool8``. The aliases are restored only where
  they are missing, pointing at the types numpy 1 gave them.
* **torch >= 2.6** loads with ``weights_only=True`` by default. RecBole checkpoints pickle the
  whole ``Config``, so RecBole's trainer (best-model reload, resume) and
  ``load_data_and_model`` fail. Only those two places load through
  :func:`load_recbole_checkpoint`; every other ``torch.load`` in the process keeps torch's
  default. The loader also refuses files that reference code outside the packages a RecBole
  checkpoint is made of (see :data:`CHECKPOINT_MODULES`).
* **Anomaly detection**: importing ``recbole.model.sequential_recommender`` (which every
  sequential run does) imports RecBole's SINE module, which calls
  ``torch.autograd.set_detect_anomaly(True)`` for the whole process. That checks every autograd
  output for NaN and roughly halves training speed of every model. The setting the process had
  before that import is put back right after it.
* **pandas 3** copy-on-write turns RecBole's chained ``fillna(inplace=True)`` into a silent no-op.
  The package pins ``pandas<3``; :func:`check_pandas` refuses to run on pandas 3 if the pin was
  bypassed, because the damage would be silent.
"""

import contextlib
import functools
import importlib.abc
import importlib.util
import os
import pickle
import pickletools
import sys
import types
import warnings
import zipfile

import numpy as np
import torch

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

# Top-level packages whose globals a RecBole checkpoint may reference.
CHECKPOINT_MODULES = (
    "recbole",
    "recbole_hiertcn",
    "torch",
    "numpy",
    "yaml",
    "collections",
    "enum",
    "_codecs",
    "builtins",
)
# Builtins that a pickle could call to run code; never acceptable in a checkpoint.
_FORBIDDEN_BUILTINS = {"eval", "exec", "compile", "open", "__import__", "getattr", "setattr",
                       "globals", "locals", "vars", "input", "breakpoint"}

_TRAINER_MODULE = "recbole.trainer.trainer"
_SINE_MODULE = "recbole.model.sequential_recommender.sine"
_QUICK_START_MODULE = "recbole.quick_start.quick_start"


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


def _torch_has_weights_only_default():
    major, minor = (int(part) for part in torch.__version__.split(".")[:2])
    return (major, minor) >= (2, 6)


_STRING_OPS = {"SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE", "SHORT_BINSTRING",
               "BINSTRING", "STRING"}
_MEMO_GET_OPS = {"GET", "BINGET", "LONG_BINGET"}
_MEMO_PUT_OPS = {"PUT", "BINPUT", "LONG_BINPUT"}


def checkpoint_globals(path):
    """``module.name`` of every global the pickle inside a torch zip checkpoint references.

    Read with :mod:`pickletools` without executing anything. (torch's own
    ``get_unsafe_globals_in_checkpoint`` cannot read the protocol-4 pickles RecBole writes.)
    """
    try:
        with zipfile.ZipFile(path) as archive:
            member = next(n for n in archive.namelist() if n.endswith("data.pkl"))
            data = archive.read(member)
    except (zipfile.BadZipFile, StopIteration) as err:
        raise pickle.UnpicklingError(f"{path}: not a torch zip checkpoint") from err
    found, memo, recent = set(), {}, []
    for opcode, arg, _pos in pickletools.genops(data):
        name = opcode.name
        if name in _STRING_OPS:
            recent.append(arg)
        elif name in _MEMO_GET_OPS:
            recent.append(memo.get(arg))
        elif name in _MEMO_PUT_OPS:
            memo[arg] = recent[-1] if recent else None
        elif name == "MEMOIZE":
            memo[len(memo)] = recent[-1] if recent else None
        elif name in ("GLOBAL", "INST"):
            found.add(arg.replace(" ", "."))
        elif name == "STACK_GLOBAL":
            # Anything but two known strings on top reads as "None.None", which is refused.
            module, attribute = recent[-2:] if len(recent) >= 2 else (None, None)
            found.add(f"{module}.{attribute}")
        if name not in _STRING_OPS | _MEMO_GET_OPS | _MEMO_PUT_OPS | {"MEMOIZE"}:
            recent = []
    return found


def _is_checkpoint_global(name):
    module, _, attribute = name.rpartition(".")
    top = module.split(".")[0]
    if top not in CHECKPOINT_MODULES:
        return False
    return not (top == "builtins" and attribute in _FORBIDDEN_BUILTINS)


def load_recbole_checkpoint(path, map_location=None, **kwargs):
    """Load a checkpoint written by RecBole's trainer (it pickles the ``Config``).

    RecBole checkpoints cannot be loaded with ``weights_only=True``, so this loads them with full
    unpickling - only after checking that every global the file references belongs to RecBole,
    this plugin, torch, numpy, yaml or the standard containers. A file that references anything
    else (``os.system``, ``subprocess``, ...) is refused. Load only checkpoints you trust: this is
    the trust RecBole itself assumed.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"load_recbole_checkpoint needs a file path, got {type(path).__name__}")
    path = os.fspath(path)
    foreign = [name for name in checkpoint_globals(path) if not _is_checkpoint_global(name)]
    if foreign:
        raise pickle.UnpicklingError(
            f"{path}: refusing to load, the file is not a RecBole checkpoint; it references "
            f"{', '.join(sorted(foreign))}"
        )
    kwargs.pop("weights_only", None)
    # torch.serialization.load is torch.load itself, never a temporary stand-in for it.
    return torch.serialization.load(path, map_location=map_location, weights_only=False,
                                    **kwargs)


class _TorchWithCheckpointLoader(types.ModuleType):
    """Stands in for ``torch`` inside one RecBole module: ``load`` reads RecBole checkpoints."""

    def __init__(self):
        super().__init__("torch")
        self.load = load_recbole_checkpoint

    def __getattr__(self, name):
        return getattr(torch, name)


@contextlib.contextmanager
def _checkpoint_path_trusted(path):
    """Within the block, ``torch.load(path)`` of exactly this file uses the checkpoint loader.

    RecBole's ``load_data_and_model`` imports torch inside the function, so the loader cannot be
    swapped in its module; loads of any other file keep torch's own behaviour.
    """
    target = os.path.realpath(os.fspath(path))
    original = torch.load

    @functools.wraps(original)
    def load(f, *args, **kwargs):
        if isinstance(f, (str, os.PathLike)) and os.path.realpath(os.fspath(f)) == target:
            return load_recbole_checkpoint(f, *args, **kwargs)
        return original(f, *args, **kwargs)

    torch.load = load
    try:
        yield
    finally:
        torch.load = original


def _patch_trainer(module):
    module.torch = _TorchWithCheckpointLoader()


def _patch_quick_start(module):
    original = module.load_data_and_model
    if getattr(original, "_recbole_hiertcn", False):
        return

    @functools.wraps(original)
    def load_data_and_model(model_file):
        with _checkpoint_path_trusted(model_file):
            return original(model_file)

    load_data_and_model._recbole_hiertcn = True
    module.load_data_and_model = load_data_and_model
    package = sys.modules.get("recbole.quick_start")
    if package is not None and getattr(package, "load_data_and_model", None) is original:
        package.load_data_and_model = load_data_and_model


class _AfterImport(importlib.abc.MetaPathFinder):
    """Runs a callback right after one module is executed, without importing it early."""

    def __init__(self, name, callback):
        self.name, self.callback = name, callback

    def find_spec(self, fullname, path=None, target=None):
        if fullname != self.name:
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(fullname)
        if spec is None or spec.loader is None:
            return spec
        exec_module, callback = spec.loader.exec_module, self.callback

        def exec_then_patch(module):
            exec_module(module)
            callback(module)

        spec.loader.exec_module = exec_then_patch
        return spec


def after_import(name, callback):
    """Call ``callback(module)`` now if ``name`` is imported, otherwise right after its import."""
    if name in sys.modules:
        callback(sys.modules[name])
    elif not any(isinstance(f, _AfterImport) and f.name == name for f in sys.meta_path):
        sys.meta_path.insert(0, _AfterImport(name, callback))


def _restore_anomaly_detection(enabled):
    def restore(_module):
        torch.autograd.set_detect_anomaly(enabled)

    return restore


def apply():
    """Apply every workaround; safe to call more than once."""
    restore_numpy_aliases()
    check_pandas()
    silence_known_noise()
    after_import(_SINE_MODULE, _restore_anomaly_detection(torch.is_anomaly_enabled()))
    if _torch_has_weights_only_default():
        after_import(_TRAINER_MODULE, _patch_trainer)
        after_import(_QUICK_START_MODULE, _patch_quick_start)
