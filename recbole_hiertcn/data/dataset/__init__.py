"""Datasets of the plugin."""

from recbole_hiertcn.data.dataset.session_dataset import SessionDataset

__all__ = ["SessionDataset"]
