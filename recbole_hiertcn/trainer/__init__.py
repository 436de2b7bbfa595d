"""Trainers of the plugin, laid out like ``recbole.trainer``."""

from recbole_hiertcn.trainer.trainer import CheckpointMismatch, HierTCNTrainer, run_trainer

__all__ = ["CheckpointMismatch", "HierTCNTrainer", "run_trainer"]
