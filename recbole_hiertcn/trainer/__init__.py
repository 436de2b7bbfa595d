"""Trainers of the plugin, laid out like ``recbole.trainer``."""

from recbole_hiertcn.trainer.trainer import (
    CheckpointMismatch,
    HierTCNTrainer,
    RunCheckpointMixin,
    run_trainer,
)

__all__ = ["CheckpointMismatch", "HierTCNTrainer", "RunCheckpointMixin", "run_trainer"]
