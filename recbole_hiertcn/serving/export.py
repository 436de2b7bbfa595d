"""From a RecBole checkpoint of HierTCN to a served artifact: from the checkpoint alone when it
carries the token maps (checkpoints of this version do), from the training data too for every
user's history (``with_states``) or an older checkpoint."""

import json

import numpy as np
import torch

from recbole_hiertcn.core.network import HierTCNCore
from recbole_hiertcn.core.session_rule import SESSION_ID
from recbole_hiertcn.core.settings import HierTCNSettings
from recbole_hiertcn.serving.artifact import ServedModel, write_artifact
from recbole_hiertcn.serving.state import encode_states
from recbole_hiertcn.serving.stream import Event, StreamingHierTCN

REPLAY_BATCH = 100_000  # events per observe_many call while replaying the log
SERVING = "serving"  # the checkpoint's key of HierTCN.serving_description (see the trainer)
CORE_PREFIX = "core."  # HierTCN's state dict names the core's weights core.<name>
TABLE_KEY = "item_encoder.table.weight"


def replay_states(model, dataset):
    """Every user's streaming state after all their interactions in ``dataset`` (in time
    order, ties in the dataset's order): ``[(user token, UserState)]``."""
    uid, iid = dataset.uid_field, dataset.iid_field
    time_field = model.boundary.time_field
    inter = dataset.inter_feat
    if time_field not in inter:
        raise ValueError(f"--with-states replays each user's events with their times: load the "
                         f"time field [{time_field}]")
    users, items = inter[uid].numpy(), inter[iid].numpy()
    times = inter[time_field].numpy().astype(np.float64)
    order = np.lexsort((np.arange(len(users)), times, users))
    rule = model.session_rule
    user_tokens = dataset.field2id_token[uid]
    item_tokens = dataset.field2id_token[iid]
    if rule == SESSION_ID:
        sessions = inter[model.boundary.field].numpy()
        session_tokens = dataset.field2id_token[model.boundary.field]
    served = ServedModel(model.core, "export", rule, item_tokens.tolist(), user_tokens.tolist(),
                         history_window=model.served_history_window)
    stream = StreamingHierTCN(served, max_id_length=1 << 30)  # the dataset's own tokens
    for first in range(0, len(order), REPLAY_BATCH):
        rows = order[first:first + REPLAY_BATCH]
        stream.observe_many([
            Event(str(user_tokens[users[row]]), str(item_tokens[items[row]]), float(times[row]),
                  str(session_tokens[sessions[row]]) if rule == SESSION_ID else None)
            for row in rows])
    return sorted(stream.store.states("export").items())


def export_model(model, dataset, output_dir, with_states=False, signing_key=None):
    """Write the trained RecBole ``HierTCN`` ``model`` and ``dataset``'s token maps (and, with
    ``with_states``, every user's state after their history) to ``output_dir``; returns the
    model version. ``signing_key`` (bytes): sign the export (``model.json.sig``)."""
    if type(model).__name__ != "HierTCN" or not hasattr(model, "core"):
        raise ValueError(f"only HierTCN exports for serving, got {type(model).__name__}")
    states = encode_states(replay_states(model, dataset)) if with_states else None
    return write_artifact(model.core, dataset.field2id_token[dataset.iid_field].tolist(),
                          dataset.field2id_token[dataset.uid_field].tolist(),
                          model.session_rule, output_dir, dataset_name=dataset.dataset_name,
                          states=states, history_window=model.served_history_window,
                          signing_key=signing_key)


def export_checkpoint(checkpoint_file, output_dir, with_states=False, signing_key=None,
                      load_data_and_model=None):
    """Export a HierTCN checkpoint, read with the safe loader.

    A checkpoint this version's trainer wrote carries what the export needs besides the
    weights (``HierTCN.serving_description``): it exports without the dataset, RecBole's data
    pipeline or the split loaders. ``with_states`` replays every user's history, and an older
    checkpoint lacks the token maps: both rebuild the model and dataset from the checkpoint with
    ``load_data_and_model`` (``checkpoint_file -> (config, model, dataset, ...)``, such as
    :func:`recbole_hiertcn.quick_start.load_data_and_model`, which rebuilds the dataset from its
    atomic files and never reads a saved dataset or saved split loaders)."""
    from recbole_hiertcn.checkpoint import (CheckpointRefused, load_checkpoint,
                                            read_checkpoint_record)

    if not with_states:
        # A HierTCN checkpoint of this version exports from its weights and description alone:
        # read as data, without importing RecBole. Anything else (another model, an older
        # checkpoint, a refused file) goes the full way below, with its own messages.
        try:
            record = read_checkpoint_record(checkpoint_file)
        except CheckpointRefused:
            record = None
        if isinstance(record, dict) and record.get(SERVING) is not None \
                and record["config"]["model"] == "HierTCN":
            return _export_without_dataset(checkpoint_file, record, record[SERVING],
                                           output_dir, signing_key)
    checkpoint = load_checkpoint(checkpoint_file)
    model_name = checkpoint["config"]["model"]
    if model_name != "HierTCN":
        raise ValueError(f"{checkpoint_file}: a {model_name} checkpoint; only HierTCN exports "
                         f"for serving")
    description = checkpoint.get(SERVING)
    if description is not None and not with_states:
        return _export_without_dataset(checkpoint_file, checkpoint, description, output_dir,
                                       signing_key)
    if load_data_and_model is None:
        raise ValueError(f"{checkpoint_file}: exporting "
                         f"{'with every user state' if with_states else 'a checkpoint without token maps'}"
                         " rebuilds the dataset: pass load_data_and_model (such as "
                         "recbole_hiertcn.quick_start.load_data_and_model)")
    _, model, dataset, *_ = load_data_and_model(checkpoint_file)
    return export_model(model.eval(), dataset, output_dir, with_states=with_states,
                        signing_key=signing_key)


def _export_without_dataset(checkpoint_file, checkpoint, description, output_dir, signing_key):
    try:
        if not isinstance(description, dict):
            raise TypeError(f"{SERVING} is a {type(description).__name__}, not a mapping")
        item_tokens, user_tokens = (_token_list(description[key])
                                    for key in ("item_tokens", "user_tokens"))
        settings = HierTCNSettings.from_mapping(checkpoint["config"])
        weights = {key[len(CORE_PREFIX):]: value
                   for key, value in checkpoint["state_dict"].items()
                   if key.startswith(CORE_PREFIX)}
        table = weights[TABLE_KEY]
        pretrained = torch.zeros(table.shape) if settings.pretrained_item_field else None
        core = HierTCNCore(settings, table.size(0), pretrained)
        core.load_state_dict(weights, strict=True)
    except (KeyError, TypeError, ValueError, RuntimeError) as err:
        raise ValueError(f"{checkpoint_file}: the checkpoint's serving description or weights "
                         f"are not those of a HierTCN ({err})") from None
    return write_artifact(core.eval(), item_tokens, user_tokens, description["session_rule"],
                          output_dir, dataset_name=str(description.get("dataset") or ""),
                          history_window=description.get("history_window"),
                          signing_key=signing_key)


def _token_list(encoded):
    tokens = json.loads(bytes(encoded).decode("utf-8"))
    if not isinstance(tokens, list) or not all(isinstance(token, str) for token in tokens):
        raise ValueError("tokens must be a JSON list of strings")
    return tokens
