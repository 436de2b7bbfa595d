"""Datasets of the plugin."""

from recbole_hiertcn.data.dataset.columnar import ColumnarDataset, ColumnarLoadMixin
from recbole_hiertcn.data.dataset.session_dataset import SessionDataset

__all__ = ["ColumnarDataset", "ColumnarLoadMixin", "SessionDataset"]
