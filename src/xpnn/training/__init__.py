"""Training: what ``compile`` sets up, the Trainer (the loop of ``fit`` with its hooks),
inference (``infer``, ``evaluate``, ``predict``), the one batch iterator and the data
checks they share."""

from . import inference
from .batches import INFERENCE_BATCH, Batch, Batches, batches
from .compiled import compile_model, metric_values
from .trainer import EpochTotals, Trainer

__all__ = [
    "Trainer",
    "EpochTotals",
    "Batch",
    "Batches",
    "batches",
    "INFERENCE_BATCH",
    "compile_model",
    "metric_values",
    "inference",
]
