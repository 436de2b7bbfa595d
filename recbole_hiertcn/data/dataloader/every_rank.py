"""Evaluation loaders that give every DDP rank all rows.

Under DDP RecBole builds every loader on a ``DistributedSampler``, which splits the rows across
ranks and pads the split with repeated rows. For evaluation the plugin's trainer instead lets
every rank iterate all rows and score its own batches, then gathers the rows
(:mod:`recbole_hiertcn.trainer.ddp`), so that each target counts once. The loader classes here
are RecBole's own, built as one process would build them.
"""


from recbole.data.dataloader import FullSortEvalDataLoader, NegSampleEvalDataLoader

from recbole_hiertcn.data.dataloader.sampled_eval import SampledEvalDataLoader


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
        config = self.__dict__.get("_config")  # absent while unpickling or copying
        if config is None:
            raise AttributeError(name)
        return getattr(config, name)


class _OnEveryRank:
    """Mixin: build the loader with :class:`OneProcessConfig`."""

    def __init__(self, config, *args, **kwargs):
        super().__init__(OneProcessConfig(config), *args, **kwargs)


# RecBole's evaluation loaders, as module-level classes (``save_dataloaders`` pickles them).
class FullSortEvalDataLoaderOnEveryRank(_OnEveryRank, FullSortEvalDataLoader):
    """RecBole's ``FullSortEvalDataLoader`` with all rows on every DDP rank."""


class NegSampleEvalDataLoaderOnEveryRank(_OnEveryRank, SampledEvalDataLoader):
    """RecBole's ``NegSampleEvalDataLoader`` (as :class:`SampledEvalDataLoader`) with all rows
    on every DDP rank."""


_LOADERS = {FullSortEvalDataLoader: FullSortEvalDataLoaderOnEveryRank,
            NegSampleEvalDataLoader: NegSampleEvalDataLoaderOnEveryRank,
            SampledEvalDataLoader: NegSampleEvalDataLoaderOnEveryRank}


def on_every_rank(loader_class):
    """The class of ``loader_class`` that gives every rank all rows (another evaluation
    loader class gets one made here, which ``save_dataloaders`` cannot pickle)."""
    if loader_class not in _LOADERS:
        _LOADERS[loader_class] = type(f"{loader_class.__name__}OnEveryRank",
                                      (_OnEveryRank, loader_class), {"__module__": __name__})
    return _LOADERS[loader_class]
