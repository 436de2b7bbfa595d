"""From a RecBole checkpoint of HierTCN to a served artifact (the only serving step that needs
RecBole and the training data: the token maps and the model's settings come from them)."""

from recbole_hiertcn.serving.artifact import write_artifact


def export_model(model, dataset, output_dir):
    """Write the trained RecBole ``HierTCN`` ``model`` and ``dataset``'s token maps to
    ``output_dir``; returns the model version."""
    if type(model).__name__ != "HierTCN" or not hasattr(model, "core"):
        raise ValueError(f"only HierTCN exports for serving, got {type(model).__name__}")
    rule = "time_gap" if model.boundary.by_time else "session_id"
    return write_artifact(model.core, dataset.field2id_token[dataset.iid_field].tolist(),
                          dataset.field2id_token[dataset.uid_field].tolist(), rule, output_dir,
                          dataset_name=dataset.dataset_name)


def export_checkpoint(checkpoint_file, output_dir):
    """Read a checkpoint with the safe loader, rebuild its dataset (from the checkpoint's
    ``data_path``) and model as RecBole's ``load_data_and_model`` does, and export them."""
    from recbole_hiertcn.checkpoint import load_checkpoint
    from recbole_hiertcn.quick_start import load_data_and_model

    model_name = load_checkpoint(checkpoint_file)["config"]["model"]
    if model_name != "HierTCN":
        raise ValueError(f"{checkpoint_file}: a {model_name} checkpoint; only HierTCN exports "
                         f"for serving")
    _, model, dataset, *_ = load_data_and_model(checkpoint_file)
    return export_model(model.eval(), dataset, output_dir)
