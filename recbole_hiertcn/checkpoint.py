"""Loading RecBole checkpoints without letting the file run code.

A RecBole checkpoint pickles the whole ``Config`` next to the weights, so torch's safe
``weights_only`` loader cannot read it (and stops at the FRAME opcode of RecBole's protocol-4
pickles anyway). Full unpickling would run whatever a file's ``__reduce__`` names - and whole
packages are no boundary: torch, numpy and yaml each hold functions that execute their arguments
(``yaml.unsafe_load``, numpy.testing's ``runstring``, torch.hub's module loader,
``torch.utils.cpp_extension.load_inline``, ``torch.storage._load_from_bytes``).

:func:`load_checkpoint` hands ``torch.load`` an unpickler whose ``find_class`` admits an exact
list of ``(module, name)`` pairs: RecBole's ``Config`` and enums, the yaml loader class the
``Config`` keeps, the model classes RecBole's ``get_model`` returns (built-in and registered
plugin models), ``torch.device`` and what torch and numpy need to rebuild tensors, storages,
dtypes, arrays and scalars. Anything else stops the load with :class:`CheckpointRefused`, which
names the global, before it is called. ``Config``, the loader class and model classes are only
ever named by a checkpoint (rebuilt with ``__new__`` and their state), so a pickle that calls
one of them with arguments of its choosing is refused too. Nothing here changes ``torch.load``
or any other loader of the process.

:func:`read_checkpoint_record` reads a HierTCN checkpoint the same way without importing RecBole:
RecBole's ``Config``, enums and the model class (exact names) become inert records. Serving's
export uses it: exporting a checkpoint of this version (without ``--with-states``) imports no
RecBole.
"""

import _compat_pickle
import collections
import importlib
import io
import os
import pickle
import types
import zipfile

import numpy as np
import torch

__all__ = ["CheckpointRefused", "load_checkpoint", "allowed_globals"]


class CheckpointRefused(pickle.UnpicklingError):
    """The file references a global a RecBole checkpoint never needs; nothing of it was run."""


# What torch needs to rebuild tensors and parameters, by exact name; names a torch version does
# not have are skipped. Storages (``torch.FloatStorage`` ...) never reach this list: torch.load's
# own unpickler wrapper turns every ``*Storage`` name into its storage type first.
_TORCH_GLOBALS = (
    ("torch._utils", "_rebuild_tensor"),
    ("torch._utils", "_rebuild_tensor_v2"),
    ("torch._utils", "_rebuild_tensor_v3"),
    ("torch._utils", "_rebuild_parameter"),
    ("torch._utils", "_rebuild_parameter_with_state"),
    ("torch._utils", "_rebuild_sparse_tensor"),
    ("torch._utils", "_rebuild_nested_tensor"),
    ("torch._utils", "_rebuild_meta_tensor_no_storage"),
    ("torch._utils", "_rebuild_qtensor"),
    ("torch._utils", "_rebuild_wrapper_subclass"),
    ("torch.nn.parameter", "Parameter"),
    ("torch", "Tensor"),
    ("torch", "Size"),
    ("torch", "device"),
    ("torch.serialization", "_get_layout"),
    ("torch.storage", "UntypedStorage"),
    ("torch.storage", "TypedStorage"),
)
_TORCH_QSCHEMES = ("per_tensor_affine", "per_tensor_symmetric", "per_channel_affine",
                   "per_channel_symmetric", "per_channel_affine_float_qparams")
_RECBOLE_GLOBALS = (
    ("recbole.config.configurator", "Config"),
    ("recbole.utils.enum_type", "ModelType"),
    ("recbole.utils.enum_type", "KGDataLoaderState"),
    ("recbole.utils.enum_type", "EvaluatorType"),
    ("recbole.utils.enum_type", "InputType"),
    ("recbole.utils.enum_type", "FeatureType"),
    ("recbole.utils.enum_type", "FeatureSource"),
)
# The loader class Config keeps (a class reference; Config never pickles loader objects).
_YAML_LOADER = ("yaml.loader", "FullLoader")
_PLAIN_GLOBALS = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("builtins", "bytearray"): bytearray,
    ("builtins", "complex"): complex,
    ("builtins", "slice"): slice,
    ("builtins", "range"): range,
}
_NUMPY_GLOBALS = {
    # numpy 2 names; numpy 1 wrote the same objects under numpy.core.
    ("numpy", "dtype"): np.dtype,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy._core.multiarray", "scalar"): "scalar",
    ("numpy._core.multiarray", "_reconstruct"): "_reconstruct",
    ("numpy.core.multiarray", "scalar"): "scalar",
    ("numpy.core.multiarray", "_reconstruct"): "_reconstruct",
}

_cache = {}


def _resolve(module, name):
    """``module.name`` if both exist, else None (for names a library version lacks)."""
    try:
        value = importlib.import_module(module)
        for part in name.split("."):
            value = getattr(value, part)
    except (ImportError, AttributeError):
        return None
    return value


def _numpy_multiarray():
    """numpy's multiarray module under its numpy 2 or numpy 1 name."""
    return _resolve("numpy._core", "multiarray") or _resolve("numpy.core", "multiarray")


def _base_globals():
    """``{(module, name): object}`` of torch, numpy and plain Python every checkpoint may
    reference, and yaml's loader class; nothing of RecBole (importing none of it)."""
    if "base" not in _cache:
        allowed = dict(_PLAIN_GLOBALS)
        allowed[("_codecs", "encode")] = _resolve("_codecs", "encode")  # bytes, pickle protocol 2
        for module, name in _TORCH_GLOBALS + (_YAML_LOADER,):
            value = _resolve(module, name)
            if value is not None:
                allowed[(module, name)] = value
        # dtypes (``torch.float32``) and quantisation schemes are pickled as ``torch.<name>``.
        for name in dir(torch):
            value = getattr(torch, name, None)
            if isinstance(value, torch.dtype) or (name in _TORCH_QSCHEMES):
                allowed[("torch", name)] = value
        allowed[("torch._tensor", "_rebuild_from_type_v2")] = _rebuild_tensor_subclass
        multiarray = _numpy_multiarray()
        for key, value in _NUMPY_GLOBALS.items():
            allowed[key] = getattr(multiarray, value) if isinstance(value, str) else value
        _cache["base"] = allowed
    return _cache["base"]


def allowed_globals():
    """``{(module, name): object}`` a checkpoint may reference (model classes come on top)."""
    if "globals" not in _cache:
        allowed = dict(_base_globals())
        for module, name in _RECBOLE_GLOBALS:
            value = _resolve(module, name)
            if value is not None:
                allowed[(module, name)] = value
        _cache["globals"] = allowed
    return _cache["globals"]


def _model_class(module, name):
    """The model class RecBole's ``get_model(name)`` returns, if it is defined at ``module.name``.

    Only names RecBole or this plugin list as models are looked up, so the file cannot make the
    loader import a module of its choosing.
    """
    import recbole.utils

    from recbole_hiertcn.model.names import available_models

    if name not in available_models():
        return None
    try:
        model = recbole.utils.get_model(name)
    except (ImportError, ValueError, AttributeError):
        return None
    # The class itself, or one it derives from: the plugin registers subclasses under RecBole's
    # names (GRU4Rec, NextItNet, SASRec), and checkpoints written before name RecBole's class.
    for candidate in getattr(model, "__mro__", (model,)):
        if getattr(candidate, "__module__", None) == module \
                and getattr(candidate, "__qualname__", None) == name:
            return candidate
    return None


def _python2_name(module, name):
    """The Python 3 name of a Python 2 name (pickle protocol 2 writes ``__builtin__.set``)."""
    if (module, name) in _compat_pickle.NAME_MAPPING:
        return _compat_pickle.NAME_MAPPING[(module, name)]
    return _compat_pickle.IMPORT_MAPPING.get(module, module), name


def _is_reference_only(obj):
    """Classes a checkpoint names but never calls: ``Config`` and model objects are rebuilt with
    ``__new__`` and their saved state, so a call (with arguments the file chose) is refused."""
    from recbole.model.abstract_recommender import AbstractRecommender

    config_class = allowed_globals().get(("recbole.config.configurator", "Config"))
    loader_class = allowed_globals().get(("yaml.loader", "FullLoader"))
    return obj is config_class or obj is loader_class or (
        isinstance(obj, type) and issubclass(obj, AbstractRecommender))


def _tensor_rebuild_functions():
    return {value for (module, _), value in _base_globals().items()
            if module == "torch._utils"}


def _rebuild_tensor_subclass(func, new_type, args, state):
    """``torch._tensor._rebuild_from_type_v2`` calls ``func(*args)``: only a tensor rebuild
    function may be that ``func``, and only a tensor type the result."""
    if func not in _tensor_rebuild_functions():
        raise CheckpointRefused(f"a tensor rebuilt by {getattr(func, '__qualname__', func)!r}")
    if not (isinstance(new_type, type) and issubclass(new_type, torch.Tensor)):
        raise CheckpointRefused(f"a tensor of type {new_type!r}")
    return torch._tensor._rebuild_from_type_v2(func, new_type, args, state)


class _AllowlistUnpickler(pickle._Unpickler):
    """``find_class`` admits only exact ``(module, name)`` pairs (see the module docstring), and
    calls (REDUCE, INST, OBJ) of the classes a checkpoint only names are refused.

    The pure-Python unpickler is used because its opcodes can be checked one by one; the pickle
    inside a checkpoint is small (tensor data is read separately by torch), so it costs little.
    """

    extra = {}  # set per load: objects the caller allowed on purpose
    dispatch = dict(pickle._Unpickler.dispatch)

    def find_class(self, module, name):
        for key in ((module, name), _python2_name(module, name)):
            if key in self.extra:
                return self.extra[key]
            if key in allowed_globals():
                return allowed_globals()[key]
        model = _model_class(module, name)
        if model is not None:
            return model
        raise CheckpointRefused(f"{module}.{name}")

    def _check_call(self, func):
        if _is_reference_only(func) and func not in self.extra.values():
            raise CheckpointRefused(f"a call of {func.__module__}.{func.__qualname__}")

    def load_reduce(self):
        self._check_call(self.stack[-2])
        super().load_reduce()

    dispatch[pickle.REDUCE[0]] = load_reduce

    def _instantiate(self, klass, args):
        # The condition under which pickle calls klass(*args) instead of klass.__new__(klass).
        if args or not isinstance(klass, type) or hasattr(klass, "__getinitargs__"):
            self._check_call(klass)
        super()._instantiate(klass, args)


def _pickle_module(extra, base=None):
    """A stand-in for the ``pickle`` module (what ``torch.load(pickle_module=...)`` uses),
    unpickling with ``base`` (default :class:`_AllowlistUnpickler`) and the ``extra`` globals."""
    unpickler = type("CheckpointUnpickler", (base or _AllowlistUnpickler,), {"extra": extra})
    module = types.ModuleType("recbole_hiertcn.checkpoint.pickle")
    module.Unpickler = unpickler
    module.load = lambda file, **kwargs: unpickler(file, **kwargs).load()
    module.loads = lambda data, **kwargs: unpickler(io.BytesIO(data), **kwargs).load()
    return module


def _exact_pairs(objects):
    pairs = {}
    for obj in objects:
        module, name = getattr(obj, "__module__", None), getattr(obj, "__qualname__", None)
        if not module or not name:
            raise TypeError(f"allow: {obj!r} is not a class or function with a module and name")
        pairs[(module, name)] = obj
    return pairs


def _describe(source):
    if isinstance(source, (str, os.PathLike)):
        return os.fspath(source)
    return getattr(source, "name", repr(source))


def _is_torchscript_archive(source):
    """TorchScript archives carry ``constants.pkl``; torch.load would hand them to torch.jit."""
    position = None if isinstance(source, (str, os.PathLike)) else source.tell()
    try:
        with zipfile.ZipFile(source) as archive:
            return any(n.endswith("/constants.pkl") or n == "constants.pkl"
                       for n in archive.namelist())
    except zipfile.BadZipFile:
        return False
    finally:
        if position is not None:
            source.seek(position)


def _refusal_message(where, name):
    return (
        f"{where}: refusing to load it: it references {name}, which a RecBole checkpoint never "
        f"needs, and unpickling it could run code. Nothing from the file was run. If you trust "
        f"this file, load it on purpose: recbole_hiertcn.checkpoint.load_checkpoint(path, "
        f"allow=[<the exact class or function>]) admits more globals by exact object, and "
        f"torch.load(path, weights_only=False) unpickles everything."
    )


def load_checkpoint(source, map_location=None, allow=()):
    """Load a RecBole checkpoint (or any torch file of tensors and plain data) safely.

    Args:
        source: a path or a binary file object, as for ``torch.load``.
        map_location: as for ``torch.load``.
        allow: further classes or functions the file may reference, each admitted by its exact
            module and name (e.g. a model class of your own).

    Raises:
        CheckpointRefused: the file references a global outside the allowlist (the message
            names it and says how to load a trusted file on purpose), or it is a TorchScript
            archive.
    """
    return _load(source, map_location, _pickle_module(_exact_pairs(allow)))


def _load(source, map_location, pickle_module):
    """``torch.load`` through ``pickle_module``, TorchScript archives refused, a refusal named
    with the file."""
    where = _describe(source)
    if _is_torchscript_archive(source):
        raise CheckpointRefused(f"{where}: refusing to load a TorchScript archive as a RecBole "
                                f"checkpoint; use torch.jit.load if you trust it")
    try:
        return torch.load(source, map_location=map_location, pickle_module=pickle_module,
                          weights_only=False)
    except CheckpointRefused as err:
        raise CheckpointRefused(_refusal_message(where, err.args[0])) from None


# ----------------------------------------------------------- reading a checkpoint as data only
class ConfigRecord:
    """RecBole's pickled ``Config`` read as data: the attributes it saved, with ``record[key]``
    and ``key in record`` answering from ``final_config_dict`` as ``Config`` does. No RecBole
    code is imported or run to build one."""

    def __getitem__(self, key):
        return self.__dict__.get("final_config_dict", {}).get(key)

    def __contains__(self, key):
        return key in self.__dict__.get("final_config_dict", {})


EnumRecord = collections.namedtuple("EnumRecord", "enum value")  # a RecBole enum member
ClassRecord = collections.namedtuple("ClassRecord", "module name")  # a class named, not loaded

_RECORD_ENUMS = tuple(name for module, name in _RECBOLE_GLOBALS
                      if module == "recbole.utils.enum_type")
# The one model class a record may name (``Config.model_class``): serving exports HierTCN only.
_RECORD_MODEL = ("recbole_hiertcn.model.sequential_recommender.hiertcn", "HierTCN")


def _enum_record(enum):
    def member(value):  # an enum member is pickled as a call of its class with its value
        return EnumRecord(enum, value)
    return member


def _record_globals():
    if "record" not in _cache:
        allowed = dict(_base_globals())
        allowed[("recbole.config.configurator", "Config")] = ConfigRecord
        for name in _RECORD_ENUMS:
            allowed[("recbole.utils.enum_type", name)] = _enum_record(name)
        allowed[_RECORD_MODEL] = ClassRecord(*_RECORD_MODEL)
        _cache["record"] = allowed
    return _cache["record"]


class _RecordUnpickler(_AllowlistUnpickler):
    """The allowlist unpickler with RecBole's names mapped to inert records (exact names only);
    ``Config`` records, the named model class and the yaml loader class are never called."""

    def find_class(self, module, name):
        for key in ((module, name), _python2_name(module, name)):
            if key in _record_globals():
                return _record_globals()[key]
        raise CheckpointRefused(f"{module}.{name}")

    def _check_call(self, func):
        if func is ConfigRecord:
            raise CheckpointRefused("a call of recbole.config.configurator.Config")
        if isinstance(func, ClassRecord):
            raise CheckpointRefused(f"a call of {func.module}.{func.name}")
        if func is _base_globals().get(_YAML_LOADER):
            raise CheckpointRefused("a call of yaml.loader.FullLoader")


def read_checkpoint_record(source, map_location=None):
    """A HierTCN checkpoint read as data without importing RecBole: as :func:`load_checkpoint`
    gives it, except that ``config`` is a :class:`ConfigRecord`, RecBole's enums are
    :class:`EnumRecord` and the model class a :class:`ClassRecord`. What serving's export
    needs; a file naming any other global (another model's class included) is refused with
    :class:`CheckpointRefused`, before anything of it is called."""
    return _load(source, map_location, _pickle_module({}, _RecordUnpickler))
