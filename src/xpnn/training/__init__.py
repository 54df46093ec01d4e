"""Training: the Trainer (the loop of ``fit`` with its hooks), the one batch iterator and
the data checks shared by fit, evaluate and predict."""

from .batches import INFERENCE_BATCH, Batch, Batches, batches
from .trainer import EpochTotals, Trainer

__all__ = ["Trainer", "EpochTotals", "Batch", "Batches", "batches", "INFERENCE_BATCH"]
