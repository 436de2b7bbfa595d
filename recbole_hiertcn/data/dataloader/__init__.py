"""Data loaders of the plugin."""

from recbole_hiertcn.data.dataloader.sequence_dataloader import SequenceTrainDataLoader

__all__ = ["SequenceTrainDataLoader"]
