"""Step decay of the learning rate (the authors' reference divides it by 5 at 30 % and 60 % of
training), for every model the plugin's entry points train.

``lr_decay_epochs``: epochs (0-based, as RecBole counts them) from which the learning rate is
multiplied by ``lr_decay_factor`` once more. The rate of an epoch depends on its number only, so
a resumed run trains each epoch at the rate the uninterrupted run used.
"""

import numbers

DEFAULT_FACTOR = 0.2


def epoch_learning_rate(base, epoch, decay_epochs, factor):
    """The learning rate of ``epoch``: ``base`` times ``factor`` per decay epoch reached."""
    return base * factor ** sum(epoch >= step for step in decay_epochs)


def read_schedule(config):
    """``(decay epochs, factor)`` from the config; ``((), 1.0)`` without decay."""
    epochs = config["lr_decay_epochs"] or ()
    if isinstance(epochs, numbers.Integral) and not isinstance(epochs, bool):
        epochs = [epochs]
    if not isinstance(epochs, (list, tuple)) or any(
            isinstance(e, bool) or not isinstance(e, numbers.Integral) or e < 1 for e in epochs):
        raise ValueError(f"config key `lr_decay_epochs` must be a list of epochs >= 1, got "
                         f"{config['lr_decay_epochs']!r}")
    factor = config["lr_decay_factor"]
    factor = DEFAULT_FACTOR if factor is None else factor
    if isinstance(factor, bool) or not isinstance(factor, numbers.Real) or not 0 < factor <= 1:
        raise ValueError(f"config key `lr_decay_factor` must be in (0, 1], got {factor!r}")
    return tuple(int(e) for e in epochs), float(factor)


class StepDecayMixin:
    """Put in front of a RecBole ``Trainer``: sets the optimiser's rate before every epoch."""

    def __init__(self, config, model):
        super().__init__(config, model)
        self._decay_epochs, self._decay_factor = read_schedule(config)

    def _train_epoch(self, train_data, epoch_idx, *args, **kwargs):
        if self._decay_epochs:
            rate = epoch_learning_rate(self.config["learning_rate"], epoch_idx,
                                       self._decay_epochs, self._decay_factor)
            for group in self.optimizer.param_groups:
                group["lr"] = rate
        return super()._train_epoch(train_data, epoch_idx, *args, **kwargs)
