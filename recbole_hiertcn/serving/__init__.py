"""Serving a trained HierTCN: export, per-user streaming state, retrieval, stores and an HTTP
service. Nothing here but :mod:`~recbole_hiertcn.serving.export` uses RecBole."""

from recbole_hiertcn.serving.artifact import ArtifactError, ServedModel, load_artifact
from recbole_hiertcn.serving.retrieval import ExactRetrieval, FaissRetrieval
from recbole_hiertcn.serving.state import UserState
from recbole_hiertcn.serving.store import MemoryStateStore
from recbole_hiertcn.serving.stream import (
    BadEvent,
    Event,
    OutOfOrderEvent,
    StreamingHierTCN,
    UnknownItem,
)

__all__ = ["ArtifactError", "BadEvent", "Event", "ExactRetrieval", "FaissRetrieval",
           "MemoryStateStore", "OutOfOrderEvent", "ServedModel", "StreamingHierTCN",
           "UnknownItem", "UserState", "load_artifact"]
