"""A trained HierTCN as a folder that loads without the dataset, RecBole or any pickle of code.

Layout (``FORMAT_VERSION`` 2):

* ``model.json``: format and version, the settings (every model key), ``n_items``, the item
  table's width, the session rule the model was trained with (``time_gap`` or ``session_id``),
  the dataset's name, ``history_window`` (with ``seen_item_bias``: how many of a user's last
  items the offsets read, an evaluation row's history), ``files``: the size and SHA-256 of
  every other file of the export, and the model version: 16 hex digits of a SHA-256 over
  everything else in this file. Every file is thus covered by the version: a changed setting,
  weight or token is a changed (refused) version, and user states are kept per version;
* ``weights.pt``: the core's state dict, a plain tensor dict that ``torch.load`` reads with
  ``weights_only=True`` (torch's restricted unpickler: tensors and containers, nothing else);
* ``items.json`` / ``users.json``: the item and user tokens in id order (id 0 is padding);
* ``states.bin`` (``export --with-states``): every user's state after their whole history in
  the training data, so that known users are served from their past at once;
* ``model.json.sig`` (exported with a signing key): the HMAC-SHA256 of ``model.json``'s bytes
  under a key the operator keeps, for services that must refuse an artifact anyone could have
  re-hashed (the version is a plain SHA-256: it detects accidents, not forgers).

:func:`load_artifact` reads only regular files (a folder, a device, a FIFO or a link to one is
refused before it is opened for reading), compares each file's size with ``files`` before
reading it, its hash after, and the settings' sizes with the weights' shapes before it builds
the model; every failure is an :class:`ArtifactError` naming the file.

:func:`write_artifact` writes the files into a fresh temporary folder next to the target and
renames it into place, so a folder at the target is always complete.
"""

import hashlib
import hmac
import io
import json
import os
import re
import shutil
import stat
import tempfile

import torch

from recbole_hiertcn.core.network import HierTCNCore
from recbole_hiertcn.core.session_rule import RULE_NAMES
from recbole_hiertcn.core.settings import HierTCNSettings

FORMAT = "recbole-hiertcn-serving"
FORMAT_VERSION = 2
SESSION_RULES = RULE_NAMES  # how the model finds sessions (core.session_rule)
DESCRIPTION_FILE = "model.json"
WEIGHTS_FILE = "weights.pt"
ITEMS_FILE = "items.json"
USERS_FILE = "users.json"
STATES_FILE = "states.bin"
SIGNATURE_FILE = "model.json.sig"
_REQUIRED_FILES = (WEIGHTS_FILE, ITEMS_FILE, USERS_FILE)
_OPTIONAL_FILES = (STATES_FILE,)
DESCRIPTION_LIMIT = 1 << 20  # bytes of model.json: settings and a few hashes need far less
_SHA256 = re.compile(r"[0-9a-f]{64}")
# Item ids a served user's state keeps for the TCN (its receptive field) and for the seen-item
# offsets (the history window): sizes no weight shows, so a bound of their own (8 bytes each).
MAX_STATE_POSITIONS = 100_000


class ArtifactError(ValueError):
    """A folder that is not a loadable export; the message names the file."""


def _weights_bytes(core):
    buffer = io.BytesIO()
    torch.save({key: value.detach().cpu().clone() for key, value in core.state_dict().items()},
               buffer)
    return buffer.getvalue()


def _json_bytes(value):
    return json.dumps(value, ensure_ascii=False).encode("utf-8")


def _file_entry(data):
    return {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def write_artifact(core, item_tokens, user_tokens, session_rule, output_dir, dataset_name="",
                   states=None, history_window=None, signing_key=None):
    """Write ``core`` (a :class:`HierTCNCore`) and its token maps to the new folder
    ``output_dir``, with ``states`` (bytes of :func:`~recbole_hiertcn.serving.state.
    encode_states`: the users' states after their histories) when given; returns the model
    version (16 hex digits). ``history_window``: needed with ``seen_item_bias``.
    ``signing_key`` (bytes): also write ``model.json.sig``, the HMAC-SHA256 of model.json."""
    if session_rule not in SESSION_RULES:
        raise ValueError(f"session_rule must be one of {SESSION_RULES}, got {session_rule!r}")
    check_history_window(core.settings, history_window, "history_window")
    if len(item_tokens) != core.n_items:
        raise ValueError(f"{len(item_tokens)} item tokens for a model of {core.n_items} items")
    item_tokens, user_tokens = [str(t) for t in item_tokens], [str(t) for t in user_tokens]
    if len(set(item_tokens)) != len(item_tokens):
        raise ValueError("item tokens must be distinct")
    output_dir = os.path.abspath(output_dir)
    if os.path.exists(output_dir) and (not os.path.isdir(output_dir) or os.listdir(output_dir)):
        raise FileExistsError(f"{output_dir} exists and is not an empty folder; choose a new "
                              f"--output")
    contents = {WEIGHTS_FILE: _weights_bytes(core), ITEMS_FILE: _json_bytes(item_tokens),
                USERS_FILE: _json_bytes(user_tokens)}
    if states is not None:
        contents[STATES_FILE] = bytes(states)
    description = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "model": "HierTCN",
        "settings": core.settings.to_dict(),
        "n_items": core.n_items,
        "table_dim": core.item_encoder.raw_vectors().size(1),
        "session_rule": session_rule,
        "dataset": dataset_name,
        "files": {name: _file_entry(data) for name, data in contents.items()},
    }
    if history_window is not None:
        description["history_window"] = history_window
    version = description["version"] = description_version(description)
    contents[DESCRIPTION_FILE] = json.dumps(description, ensure_ascii=False,
                                            indent=1).encode("utf-8")
    if signing_key is not None:
        contents[SIGNATURE_FILE] = sign(contents[DESCRIPTION_FILE], signing_key).encode("ascii")
    parent = os.path.dirname(output_dir)
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=".export-", dir=parent)
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(staging, 0o777 & ~umask)  # mkdtemp's 0700 would hide it from other users
        for name, data in contents.items():
            with open(os.path.join(staging, name), "wb") as handle:
                handle.write(data)
        if os.path.isdir(output_dir):
            os.rmdir(output_dir)  # empty (checked above); rename cannot replace a folder
        os.rename(staging, output_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return version


def description_version(description):
    """16 hex digits of the SHA-256 of ``description`` without its ``version`` (canonical
    JSON). With the sizes and hashes of every file in ``files``, it covers the whole export."""
    rest = {key: value for key, value in description.items() if key != "version"}
    encoded = json.dumps(rest, sort_keys=True, ensure_ascii=True).encode("ascii")
    return hashlib.sha256(encoded).hexdigest()[:16]


def sign(description_bytes, key):
    """Hex HMAC-SHA256 of model.json's bytes under ``key`` (bytes)."""
    if not isinstance(key, (bytes, bytearray)) or not key:
        raise ValueError("a signing key must be non-empty bytes")
    return hmac.new(bytes(key), description_bytes, hashlib.sha256).hexdigest()


def read_key_file(path):
    """A signing key from a file (its bytes, surrounding whitespace removed); the key is
    never taken from the command line, where other users of the machine could read it."""
    try:
        with open(path, "rb") as handle:
            key = handle.read(1 << 16).strip()
    except OSError as err:
        raise ValueError(f"{path}: cannot read the key ({err.strerror})") from None
    if not key:
        raise ValueError(f"{path}: the key file is empty")
    return key


def read_regular_file(path, limit=None, expected_size=None):
    """The bytes of the regular file at ``path``, refused before reading when it is anything
    else (a folder, a device such as /dev/zero, a FIFO, or a link to one) or of another size
    than ``expected_size`` or larger than ``limit``. Raises :class:`ArtifactError`."""
    try:
        # O_NONBLOCK: opening a FIFO must not wait for a writer (it is refused right after)
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise ArtifactError(f"{path}: missing; export the model again") from None
    except OSError as err:
        raise ArtifactError(f"{path}: cannot be read ({err.strerror})") from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise ArtifactError(f"{path}: not a regular file")
    with os.fdopen(fd, "rb") as handle:
        if expected_size is not None and info.st_size != expected_size:
            raise ArtifactError(f"{path}: {info.st_size} bytes, model.json says "
                                f"{expected_size}")
        if limit is not None and info.st_size > limit:
            raise ArtifactError(f"{path}: {info.st_size} bytes, more than the {limit} allowed")
        wanted = info.st_size if expected_size is None else expected_size
        data = handle.read(wanted + 1)  # one more: a file that grew since fstat is refused
    if len(data) != wanted:
        raise ArtifactError(f"{path}: changed while it was read")
    return data


def check_history_window(settings, history_window, where):
    """A model with ``seen_item_bias`` reads a user's last ``history_window`` items: it must
    be a positive integer there (and is ignored without the option)."""
    if not settings.seen_item_bias:
        return
    if settings.seen_item_counts:
        raise ValueError(f"{where}: a model with seen_item_counts is not served yet (the "
                         f"served state keeps no session of each past item); export one "
                         f"without it")
    if getattr(settings, "seen_item_cooccurrence", False):
        raise ValueError(f"{where}: a model with seen_item_cooccurrence is not served yet (the "
                         f"artifact holds no item similarities); export one without it")
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
                 states_file=None, states_sha256=None, history_window=None, states_bytes=None):
        check_history_window(core.settings, history_window, "history_window")
        self.history_window = history_window
        self.states_file, self.states_sha256 = states_file, states_sha256
        self.states_bytes = states_bytes
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


def load_artifact(folder, signing_key=None):
    """Load a folder written by :func:`write_artifact` (or ``recbole-hiertcn export``) into a
    :class:`ServedModel`. With ``signing_key`` (bytes), ``model.json.sig`` must hold
    model.json's HMAC under that key. Raises :class:`ArtifactError` naming the file."""
    folder = os.path.abspath(folder)
    if not os.path.isdir(folder):
        raise ArtifactError(f"{folder}: no such folder")
    path = os.path.join(folder, DESCRIPTION_FILE)
    raw = read_regular_file(path, limit=DESCRIPTION_LIMIT)
    if signing_key is not None:
        _check_signature(folder, raw, signing_key)
    description = _parse_description(path, raw)
    settings = description["settings"]
    contents = {name: _read_listed_file(folder, name, entry)
                for name, entry in description["files"].items() if name != STATES_FILE}
    weights_path = os.path.join(folder, WEIGHTS_FILE)
    state = _read_weights(weights_path, contents[WEIGHTS_FILE])
    n_items, table_dim = description["n_items"], description["table_dim"]
    core = _build_core(path, weights_path, settings, state, n_items, table_dim)
    item_tokens = _read_tokens(os.path.join(folder, ITEMS_FILE), contents[ITEMS_FILE])
    if len(item_tokens) != n_items:
        raise ArtifactError(f"{os.path.join(folder, ITEMS_FILE)}: {len(item_tokens)} tokens "
                            f"for a model of {n_items} items")
    if len(set(item_tokens)) != n_items:
        raise ArtifactError(f"{os.path.join(folder, ITEMS_FILE)}: the tokens are not distinct")
    user_tokens = _read_tokens(os.path.join(folder, USERS_FILE), contents[USERS_FILE])
    states_file = states_sha256 = None
    if STATES_FILE in description["files"]:
        states_file = os.path.join(folder, STATES_FILE)
        states_sha256 = description["files"][STATES_FILE]["sha256"]
        _check_listed_file(states_file, description["files"][STATES_FILE])
    return ServedModel(core, description["version"], description["session_rule"], item_tokens,
                       user_tokens, description.get("dataset", ""), states_file, states_sha256,
                       description.get("history_window"),
                       states_bytes=description["files"].get(STATES_FILE, {}).get("bytes"))


def _check_signature(folder, description_bytes, key):
    path = os.path.join(folder, SIGNATURE_FILE)
    try:
        signature = read_regular_file(path, limit=1024).decode("ascii").strip()
    except ArtifactError as err:
        raise ArtifactError(f"{err} (a signing key was given, so the export must be signed)") \
            from None
    except UnicodeDecodeError:
        signature = ""
    if not hmac.compare_digest(signature, sign(description_bytes, key)):
        raise ArtifactError(f"{path}: the signature does not match model.json under the given "
                            f"key (a changed export, or another key)")


def _parse_description(path, raw):
    """model.json, checked field by field before anything it describes is read."""
    try:
        description = json.loads(raw.decode("utf-8"))
    except ValueError as err:
        raise ArtifactError(f"{path}: not valid JSON ({err})") from None
    if not isinstance(description, dict) or description.get("format") != FORMAT:
        raise ArtifactError(f"{path}: not a {FORMAT} description")
    if description.get("format_version") != FORMAT_VERSION:
        raise ArtifactError(f"{path}: format_version {description.get('format_version')!r}; "
                            f"this recbole-hiertcn reads {FORMAT_VERSION} (export the "
                            f"checkpoint again)")
    if description.get("version") != description_version(description):
        raise ArtifactError(f"{path}: the version does not match the description (an edited "
                            f"model.json)")
    if description.get("session_rule") not in SESSION_RULES:
        raise ArtifactError(f"{path}: session_rule must be one of {SESSION_RULES}")
    for key in ("n_items", "table_dim"):
        value = description.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ArtifactError(f"{path}: {key} must be a positive integer, got {value!r}")
    files = description.get("files")
    if not isinstance(files, dict) or not set(_REQUIRED_FILES) <= set(files) \
            or not set(files) <= set(_REQUIRED_FILES + _OPTIONAL_FILES):
        raise ArtifactError(f"{path}: files must list {', '.join(_REQUIRED_FILES)} (and "
                            f"optionally {STATES_FILE}), each with its bytes and sha256")
    for name, entry in files.items():
        size = entry.get("bytes") if isinstance(entry, dict) else None
        digest = entry.get("sha256") if isinstance(entry, dict) else None
        if isinstance(size, bool) or not isinstance(size, int) or size < 0 \
                or not isinstance(digest, str) or not _SHA256.fullmatch(digest):
            raise ArtifactError(f"{path}: files.{name} needs bytes (an integer) and sha256 "
                                f"(64 hex digits)")
    try:
        description["settings"] = HierTCNSettings.from_mapping(description.get("settings") or {})
        check_history_window(description["settings"], description.get("history_window"),
                             "history_window")
    except (ValueError, TypeError) as err:
        raise ArtifactError(f"{path}: {err}") from None
    positions = (("receptive field", description["settings"].receptive_field or 0),
                 ("history_window", description.get("history_window") or 0))
    for name, value in positions:
        if value > MAX_STATE_POSITIONS:
            raise ArtifactError(f"{path}: a {name} of {value} items, more than the "
                                f"{MAX_STATE_POSITIONS} a served user's state may keep")
    return description


def _check_listed_file(path, entry):
    """The file at ``path`` is a regular file of the size model.json lists (not read)."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise ArtifactError(f"{path}: missing; export the model again") from None
    except OSError as err:
        raise ArtifactError(f"{path}: cannot be read ({err.strerror})") from None
    if not stat.S_ISREG(info.st_mode):
        raise ArtifactError(f"{path}: not a regular file")
    if info.st_size != entry["bytes"]:
        raise ArtifactError(f"{path}: {info.st_size} bytes, model.json says {entry['bytes']}")


def _read_listed_file(folder, name, entry):
    """The bytes of a file model.json lists, of the size and SHA-256 it lists."""
    path = os.path.join(folder, name)
    data = read_regular_file(path, expected_size=entry["bytes"])
    if hashlib.sha256(data).hexdigest() != entry["sha256"]:
        raise ArtifactError(f"{path}: does not match its hash in model.json (a changed file, "
                            f"or files of two exports mixed)")
    return data


def _read_weights(path, data):
    """The state dict in ``data``, read by torch's restricted (weights-only) unpickler."""
    try:  # the bytes just checked, not the file again
        state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - truncated zip, refused global, bad record ...
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ArtifactError(f"{path}: refused, not a plain tensor file ({reason})") from None
    if not isinstance(state, dict) or not all(
            isinstance(key, str) and isinstance(value, torch.Tensor)
            for key, value in state.items()):
        raise ArtifactError(f"{path}: not a state dict of named tensors")
    return state


def _size_settings(settings):
    """``(name, value)`` of every setting that sizes a layer, and of the counts of layers."""
    sizes = [("embedding_size", settings.embedding_size), ("hidden_size", settings.hidden_size),
             ("kernel_size", settings.kernel_size)]
    sizes += [(f"tcn_channels[{n}]", width) for n, width in enumerate(settings.tcn_channels)]
    counts = [("num_layers", settings.num_layers), ("tcn_channels", len(settings.tcn_channels)),
              ("convs_per_block", settings.convs_per_block)]
    return sizes, counts


def _build_core(path, weights_path, settings, state, n_items, table_dim):
    """The core of ``settings`` with the weights in ``state``, built only once the shapes the
    settings imply are those of the weights (a file claiming ``hidden_size: 200000`` or
    20,000 blocks is refused before anything of that size is allocated)."""
    table = state.get("item_encoder.table.weight")
    if table is None or table.dim() != 2:
        raise ArtifactError(f"{weights_path}: no item table (item_encoder.table.weight)")
    if (n_items, table_dim) != tuple(table.shape):
        raise ArtifactError(f"{path}: n_items / table_dim do not match the weights' item table "
                            f"{tuple(table.shape)}")
    # Every size a layer has is some weight's dimension, and every layer has a weight: a
    # setting past those bounds cannot fit, and is refused before even a shape-only build.
    largest = max(max(value.shape, default=1) for value in state.values())
    sizes, counts = _size_settings(settings)
    for name, value in sizes:
        if value > largest:
            raise ArtifactError(f"{path}: {name} {value} does not fit the settings' weights "
                                f"(no weight in {WEIGHTS_FILE} is that wide)")
    for name, value in counts:
        if value > len(state):
            raise ArtifactError(f"{path}: {name} {value} does not fit the settings' weights "
                                f"({len(state)} tensors in {WEIGHTS_FILE})")
    expected = _shapes(settings, n_items, table_dim, device="meta")  # allocates nothing
    found = {key: tuple(value.shape) for key, value in state.items()}
    if expected != found:
        missing = sorted(set(expected) - set(found))[:3]
        unexpected = sorted(set(found) - set(expected))[:3]
        other = sorted(k for k in set(expected) & set(found) if expected[k] != found[k])[:3]
        raise ArtifactError(f"{weights_path}: does not fit the settings in model.json (missing "
                            f"{missing}, unexpected {unexpected}, other shapes {other})")
    core = HierTCNCore(settings, n_items, _pretrained_stand_in(settings, n_items, table_dim))
    core.load_state_dict(state, strict=True)
    return core


def _pretrained_stand_in(settings, n_items, table_dim, device=None):
    """Zeros for the fixed item vectors (the weights replace them)."""
    if not settings.pretrained_item_field:
        return None
    return torch.zeros(n_items, table_dim, device=device)


def _shapes(settings, n_items, table_dim, device):
    with torch.device(device):
        core = HierTCNCore(settings, n_items,
                           _pretrained_stand_in(settings, n_items, table_dim, device))
    return {key: tuple(value.shape) for key, value in core.state_dict().items()}


def _read_tokens(path, data):
    try:
        tokens = json.loads(data.decode("utf-8"))
    except ValueError as err:
        raise ArtifactError(f"{path}: not valid JSON ({err})") from None
    if not isinstance(tokens, list) or not all(isinstance(token, str) for token in tokens):
        raise ArtifactError(f"{path}: must be a list of token strings")
    return tokens


def read_states(model, shape=None):
    """The exported users' states of ``model``: ``[(user token, UserState)]`` (checked
    against the export's size and hash; empty when the export holds none)."""
    from recbole_hiertcn.serving.state import StateFormatError, decode_states

    if model.states_file is None:
        return []
    data = read_regular_file(model.states_file, expected_size=model.states_bytes)
    if hashlib.sha256(data).hexdigest() != model.states_sha256:
        raise ArtifactError(f"{model.states_file}: does not match its hash in model.json")
    try:
        return list(decode_states(data, shape))
    except StateFormatError as err:
        raise ArtifactError(f"{model.states_file}: {err}") from None
