"""Evaluation loaders that give every DDP rank all rows.

Under DDP RecBole builds every loader on a ``DistributedSampler``, which splits the rows across
ranks and pads the split with repeated rows. For evaluation the plugin's trainer instead lets
every rank iterate all rows and score its own batches, then gathers the rows
(:mod:`recbole_hiertcn.trainer.ddp`), so that each target counts once. The loader classes here
are RecBole's own, built as one process would build them.
"""


class OneProcessConfig:
    """A ``Config`` read as one process reads it: ``single_spec`` is True, the rest is the
    config's."""

    def __init__(self, config):
        self._config = config

    def __getitem__(self, key):
        return True if key == "single_spec" else self._config[key]

    def __setitem__(self, key, value):
        self._config[key] = value

    def __contains__(self, key):
        return key in self._config

    def __getattr__(self, name):
        return getattr(self._config, name)


_loaders = {}


def on_every_rank(loader_class):
    """``loader_class`` built with :class:`OneProcessConfig` (one subclass per class)."""
    if loader_class not in _loaders:
        def __init__(self, config, *args, **kwargs):
            loader_class.__init__(self, OneProcessConfig(config), *args, **kwargs)

        _loaders[loader_class] = type(loader_class.__name__, (loader_class,), {
            "__init__": __init__, "__module__": __name__,
            "__doc__": f"{loader_class.__name__} with all rows on every DDP rank."})
    return _loaders[loader_class]
