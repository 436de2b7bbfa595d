"""The trainer of the models that do not train (session-kNN models, sequential rules, floors).

Their index is built from the training interactions when the model is made, so an epoch has
nothing to do. :class:`SessionKNNTrainer` is the plugin's trainer
(:class:`~recbole_hiertcn.trainer.HierTCNTrainer`: run-owned checkpoints, best-model reload,
per-user averaging) with one epoch that reads no training batch: ``fit`` validates once, saves
the checkpoint (the zero parameter and the index fingerprint) and returns; ``epochs`` above 1
(a comparison plan's shared setting) would only repeat identical validations, so they are cut
to one.
"""

from recbole_hiertcn.trainer.trainer import HierTCNTrainer


class SessionKNNTrainer(HierTCNTrainer):
    """:class:`HierTCNTrainer` with a single epoch that skips the training batches."""

    def fit(self, train_data, valid_data=None, verbose=True, saved=True, show_progress=False,
            callback_fn=None):
        self.epochs = min(self.epochs, self.start_epoch + 1)
        return super().fit(train_data, valid_data, verbose=verbose, saved=saved,
                           show_progress=show_progress, callback_fn=callback_fn)

    def _train_epoch(self, train_data, epoch_idx, loss_func=None, show_progress=False):
        return 0.0
