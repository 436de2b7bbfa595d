"""The trainer of the models that do not train (session-kNN models, sequential rules, floors).

Their index is built from the training interactions when the model is made, so an epoch has
nothing to do. :class:`SessionKNNTrainer` is the plugin's trainer
(:class:`~recbole_hiertcn.trainer.HierTCNTrainer`: run-owned checkpoints, best-model reload,
per-user averaging) with one epoch that reads no training batch: ``fit`` validates once, saves
the checkpoint (the zero parameter and the index fingerprint) and returns; ``epochs`` above 1
(a comparison plan's shared setting) would only repeat identical validations, so the trainer
has one, also when a run is resumed after its validation.
"""

from recbole_hiertcn.trainer.trainer import HierTCNTrainer


class SessionKNNTrainer(HierTCNTrainer):
    """:class:`HierTCNTrainer` with a single epoch that skips the training batches."""

    def __init__(self, config, model):
        super().__init__(config, model)
        # one epoch, whatever the config says: a resumed run that validated once is finished
        self.epochs = 1

    def _train_epoch(self, train_data, epoch_idx, loss_func=None, show_progress=False):
        return 0.0
