"""A trained HierTCN as a folder that loads without the dataset, RecBole or any pickle of code.

Layout (``FORMAT_VERSION`` 1):

* ``model.json``: format and version, the settings (every model key), ``n_items``, the item
  table's width, the session rule the model was trained with (``time_gap`` or ``session_id``),
  the dataset's name, ``history_window`` (with ``seen_item_bias``: how many of a user's last
  items the offsets read, an evaluation row's history) and the model version: a SHA-256 over the weights and everything else in
  this file, so a changed setting is a changed (refused) version, and user states are kept per
  version;
* ``weights.pt``: the core's state dict, a plain tensor dict that ``torch.load`` reads with
  ``weights_only=True`` (torch's restricted unpickler: tensors and containers, nothing else);
* ``items.json`` / ``users.json``: the item and user tokens in id order (id 0 is padding);
* ``states.bin`` (``export --with-states``): every user's state after their whole history in
  the training data, so that known users are served from their past at once.

:func:`write_artifact` writes the files into a fresh temporary folder next to the target and
renames it into place, so a folder at the target is always complete.
"""

import hashlib
import io
import json
import os
import pickle
import shutil
import tempfile

import torch

from recbole_hiertcn.model.hiertcn_core import HierTCNCore
from recbole_hiertcn.model.hiertcn_settings import HierTCNSettings

FORMAT = "recbole-hiertcn-serving"
FORMAT_VERSION = 1
SESSION_RULES = ("time_gap", "session_id")
STATES_FILE = "states.bin"
_FILES = ("model.json", "weights.pt", "items.json", "users.json")


class ArtifactError(ValueError):
    """A folder that is not a loadable export; the message names the file."""


def _weights_bytes(core):
    buffer = io.BytesIO()
    torch.save({key: value.detach().cpu().clone() for key, value in core.state_dict().items()},
               buffer)
    return buffer.getvalue()


def write_artifact(core, item_tokens, user_tokens, session_rule, output_dir, dataset_name="",
                   states=None, history_window=None):
    """Write ``core`` (a :class:`HierTCNCore`) and its token maps to the new folder
    ``output_dir``, with ``states`` (bytes of :func:`~recbole_hiertcn.serving.state.
    encode_states`: the users' states after their histories) when given; returns the model
    version (16 hex digits). ``history_window``: needed with ``seen_item_bias``."""
    if session_rule not in SESSION_RULES:
        raise ValueError(f"session_rule must be one of {SESSION_RULES}, got {session_rule!r}")
    check_history_window(core.settings, history_window, "history_window")
    if len(item_tokens) != core.n_items:
        raise ValueError(f"{len(item_tokens)} item tokens for a model of {core.n_items} items")
    output_dir = os.path.abspath(output_dir)
    if os.path.exists(output_dir) and (not os.path.isdir(output_dir) or os.listdir(output_dir)):
        raise FileExistsError(f"{output_dir} exists and is not an empty folder; choose a new "
                              f"--output")
    weights = _weights_bytes(core)
    description = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "model": "HierTCN",
        "settings": core.settings.to_dict(),
        "n_items": core.n_items,
        "table_dim": core.item_encoder.raw_vectors().size(1),
        "session_rule": session_rule,
        "dataset": dataset_name,
    }
    if history_window is not None:
        description["history_window"] = history_window
    if states is not None:
        description["states_sha256"] = hashlib.sha256(states).hexdigest()
    version = description["version"] = _version(weights, description)
    parent = os.path.dirname(output_dir)
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=".export-", dir=parent)
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(staging, 0o777 & ~umask)  # mkdtemp's 0700 would hide it from other users
        with open(os.path.join(staging, "weights.pt"), "wb") as handle:
            handle.write(weights)
        if states is not None:
            with open(os.path.join(staging, STATES_FILE), "wb") as handle:
                handle.write(states)
        for name, value in (("model.json", description), ("items.json", list(item_tokens)),
                            ("users.json", list(user_tokens))):
            with open(os.path.join(staging, name), "w", encoding="utf-8") as handle:
                json.dump(value, handle, ensure_ascii=False, indent=1 if name == "model.json"
                          else None)
        if os.path.isdir(output_dir):
            os.rmdir(output_dir)  # empty (checked above); rename cannot replace a folder
        os.rename(staging, output_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return version


def _version(weights, description):
    """16 hex digits of the SHA-256 of the weights and the description (without its version)."""
    digest = hashlib.sha256(weights)
    rest = {key: value for key, value in description.items() if key != "version"}
    digest.update(json.dumps(rest, sort_keys=True, ensure_ascii=True).encode("ascii"))
    return digest.hexdigest()[:16]


def _read_json(folder, name):
    path = os.path.join(folder, name)
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except FileNotFoundError:
        raise ArtifactError(f"{path}: missing; export the model again") from None
    except ValueError as err:
        raise ArtifactError(f"{path}: not valid JSON ({err})") from None


def check_history_window(settings, history_window, where):
    """A model with ``seen_item_bias`` reads a user's last ``history_window`` items: it must
    be a positive integer there (and is ignored without the option)."""
    if not settings.seen_item_bias:
        return
    if isinstance(history_window, bool) or not isinstance(history_window, int) \
            or history_window < 1:
        raise ValueError(f"{where}: a model with seen_item_bias needs the history window its "
                         f"offsets were trained with (a positive integer), got "
                         f"{history_window!r}")


class ServedModel:
    """An exported HierTCN, loaded: ``core`` (eval mode), ``settings``, ``version``,
    ``session_rule``, ``item_tokens`` (id order) with ``item_id(token)``, ``user_tokens``,
    ``history_window`` (with ``seen_item_bias``), and ``states_file`` / ``states_sha256`` when
    the export holds the users' states."""

    def __init__(self, core, version, session_rule, item_tokens, user_tokens, dataset="",
                 states_file=None, states_sha256=None, history_window=None):
        check_history_window(core.settings, history_window, "history_window")
        self.history_window = history_window
        self.states_file, self.states_sha256 = states_file, states_sha256
        self.core = core.eval()
        self.settings = core.settings
        self.version = version
        self.session_rule = session_rule
        self.item_tokens = list(item_tokens)
        self.user_tokens = list(user_tokens)
        self.dataset = dataset
        self._item_ids = {token: index for index, token in enumerate(self.item_tokens)
                          if index > 0}

    def item_id(self, token):
        """Internal id of an item token, or None for an item the model never saw."""
        return self._item_ids.get(str(token))


def load_artifact(folder):
    """Load a folder written by :func:`write_artifact` (or ``python -m recbole_hiertcn.serving
    export``) into a :class:`ServedModel`."""
    folder = os.path.abspath(folder)
    if not os.path.isdir(folder):
        raise ArtifactError(f"{folder}: no such folder")
    description = _read_json(folder, "model.json")
    path = os.path.join(folder, "model.json")
    if not isinstance(description, dict) or description.get("format") != FORMAT:
        raise ArtifactError(f"{path}: not a {FORMAT} description")
    if description.get("format_version") != FORMAT_VERSION:
        raise ArtifactError(f"{path}: format_version {description.get('format_version')!r}; "
                            f"this recbole-hiertcn reads {FORMAT_VERSION}")
    if description.get("session_rule") not in SESSION_RULES:
        raise ArtifactError(f"{path}: session_rule must be one of {SESSION_RULES}")
    try:
        settings = HierTCNSettings.from_mapping(description.get("settings") or {})
        check_history_window(settings, description.get("history_window"), "history_window")
    except ValueError as err:
        raise ArtifactError(f"{path}: {err}") from None
    weights_path = os.path.join(folder, "weights.pt")
    try:
        with open(weights_path, "rb") as handle:
            weights = handle.read()
    except FileNotFoundError:
        raise ArtifactError(f"{weights_path}: missing; export the model again") from None
    if _version(weights, description) != description.get("version"):
        raise ArtifactError(f"{weights_path}: does not match the version in model.json "
                            f"(a partial copy, files of two exports mixed, or an edited "
                            f"model.json)")
    try:  # the bytes just checked, not the file again
        state = torch.load(io.BytesIO(weights), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise ArtifactError(f"{weights_path}: refused, not a plain tensor file ({err})") from None
    table = state.get("item_encoder.table.weight") if isinstance(state, dict) else None
    if not isinstance(table, torch.Tensor) or table.dim() != 2:
        raise ArtifactError(f"{weights_path}: no item table (item_encoder.table.weight)")
    n_items, table_dim = table.shape
    if (description.get("n_items"), description.get("table_dim")) != (n_items, table_dim):
        raise ArtifactError(f"{path}: n_items / table_dim do not match the weights' item table "
                            f"{tuple(table.shape)}")
    pretrained = (torch.zeros(n_items, table_dim) if settings.pretrained_item_field
                  else None)  # values come from the weights
    core = HierTCNCore(settings, n_items, pretrained)
    try:
        core.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise ArtifactError(f"{weights_path}: does not fit the settings in model.json "
                            f"({err})") from None
    item_tokens = _read_json(folder, "items.json")
    if len(item_tokens) != n_items:
        raise ArtifactError(f"{os.path.join(folder, 'items.json')}: {len(item_tokens)} tokens "
                            f"for a model of {n_items} items")
    states_file = None
    if description.get("states_sha256") is not None:
        states_file = os.path.join(folder, STATES_FILE)
        if not os.path.isfile(states_file):
            raise ArtifactError(f"{states_file}: missing; export the model again")
    return ServedModel(core, description["version"], description["session_rule"],
                       [str(token) for token in item_tokens],
                       [str(token) for token in _read_json(folder, "users.json")],
                       description.get("dataset", ""), states_file,
                       description.get("states_sha256"), description.get("history_window"))


def read_states(model, shape=None):
    """The exported users' states of ``model``: ``[(user token, UserState)]`` (checked
    against the export's hash; empty when the export holds none)."""
    from recbole_hiertcn.serving.state import decode_states

    if model.states_file is None:
        return []
    with open(model.states_file, "rb") as handle:
        data = handle.read()
    if hashlib.sha256(data).hexdigest() != model.states_sha256:
        raise ArtifactError(f"{model.states_file}: does not match model.json")
    return list(decode_states(data, shape))
