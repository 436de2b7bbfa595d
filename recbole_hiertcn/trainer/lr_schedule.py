"""Step decay of the learning rate (the authors' reference divides it by 5 at 30 % and 60 % of
training), for every model the plugin's entry points train.

``lr_decay_epochs``: epochs (0-based, as RecBole counts them) from which the learning rate is
multiplied by ``lr_decay_factor`` once more. The rate of an epoch depends on its number only, so
a resumed run trains each epoch at the rate the uninterrupted run used.
:class:`~recbole_hiertcn.trainer.HierTCNTrainer` calls :func:`set_epoch_rate` before each epoch.
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


def set_epoch_rate(optimizer, base, epoch, schedule):
    """Before ``epoch``: every parameter group of ``optimizer`` at that epoch's rate;
    ``schedule`` is :func:`read_schedule`'s ``(decay epochs, factor)`` (no decay: untouched)."""
    decay_epochs, factor = schedule
    if not decay_epochs:
        return
    rate = epoch_learning_rate(base, epoch, decay_epochs, factor)
    for group in optimizer.param_groups:
        group["lr"] = rate
