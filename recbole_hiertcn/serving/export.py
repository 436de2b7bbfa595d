"""From a RecBole checkpoint of HierTCN to a served artifact (the only serving step that needs
RecBole and the training data: the token maps, the model's settings and, with ``with_states``,
every user's history come from them)."""

import numpy as np

from recbole_hiertcn.serving.artifact import ServedModel, write_artifact
from recbole_hiertcn.serving.state import encode_states
from recbole_hiertcn.serving.stream import Event, StreamingHierTCN

REPLAY_BATCH = 100_000  # events per observe_many call while replaying the log


def _session_rule_name(model):
    return "time_gap" if model.boundary.by_time else "session_id"


def _history_window(model):
    """The items the seen-item offsets read (None: the model has none)."""
    return model.history_window if model.settings.seen_item_bias else None


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
    rule = _session_rule_name(model)
    user_tokens = dataset.field2id_token[uid]
    item_tokens = dataset.field2id_token[iid]
    if rule == "session_id":
        sessions = inter[model.boundary.field].numpy()
        session_tokens = dataset.field2id_token[model.boundary.field]
    served = ServedModel(model.core, "export", rule, item_tokens.tolist(), user_tokens.tolist(),
                         history_window=_history_window(model))
    stream = StreamingHierTCN(served)
    for first in range(0, len(order), REPLAY_BATCH):
        rows = order[first:first + REPLAY_BATCH]
        stream.observe_many([
            Event(str(user_tokens[users[row]]), str(item_tokens[items[row]]), float(times[row]),
                  str(session_tokens[sessions[row]]) if rule == "session_id" else None)
            for row in rows])
    return sorted(stream.store.states("export").items())


def export_model(model, dataset, output_dir, with_states=False):
    """Write the trained RecBole ``HierTCN`` ``model`` and ``dataset``'s token maps (and, with
    ``with_states``, every user's state after their history) to ``output_dir``; returns the
    model version."""
    if type(model).__name__ != "HierTCN" or not hasattr(model, "core"):
        raise ValueError(f"only HierTCN exports for serving, got {type(model).__name__}")
    states = encode_states(replay_states(model, dataset)) if with_states else None
    return write_artifact(model.core, dataset.field2id_token[dataset.iid_field].tolist(),
                          dataset.field2id_token[dataset.uid_field].tolist(),
                          _session_rule_name(model), output_dir, dataset_name=dataset.dataset_name,
                          states=states, history_window=_history_window(model))


def export_checkpoint(checkpoint_file, output_dir, with_states=False):
    """Read a checkpoint with the safe loader, rebuild its dataset (from the checkpoint's
    ``data_path``) and model as RecBole's ``load_data_and_model`` does, and export them."""
    from recbole_hiertcn.checkpoint import load_checkpoint
    from recbole_hiertcn.quick_start import load_data_and_model

    model_name = load_checkpoint(checkpoint_file)["config"]["model"]
    if model_name != "HierTCN":
        raise ValueError(f"{checkpoint_file}: a {model_name} checkpoint; only HierTCN exports "
                         f"for serving")
    _, model, dataset, *_ = load_data_and_model(checkpoint_file)
    return export_model(model.eval(), dataset, output_dir, with_states=with_states)
