"""Config key ``softmax_samples`` (models trained in ``train_mode: sequence``): ``~`` or 0, the
full softmax; ``N``, a :class:`~recbole_hiertcn.core.sampled_softmax.SampledSoftmax` over N
shared negatives per batch, its proposal counted on the RecBole training dataset."""

from recbole_hiertcn.core.config_values import config_error, non_negative_int
from recbole_hiertcn.core.sampled_softmax import SampledSoftmax


def sampled_softmax(model_name, config, dataset):
    """The model's :class:`SampledSoftmax`, or None for the full softmax (``softmax_samples``
    ~ or 0). Sampling works on sequence batches with the CE loss; the proposal counts the
    training targets of ``dataset`` (the training view) only."""
    if config["softmax_samples"] is None:
        return None
    samples = non_negative_int(model_name, config, "softmax_samples")
    if samples == 0:
        return None
    if config["train_mode"] != "sequence":
        raise config_error(model_name, "softmax_samples",
                           "needs train_mode: sequence (set it, or softmax_samples: 0)")
    if config["loss_type"] not in (None, "CE"):
        raise config_error(model_name, "softmax_samples",
                           f"samples the CE loss; loss_type is {config['loss_type']!r}")
    counts = getattr(dataset, "target_item_counts", None)
    if counts is None:
        raise config_error(model_name, "softmax_samples",
                           "needs the session dataset (use_session_dataset: True)")
    return SampledSoftmax(counts(), samples)
