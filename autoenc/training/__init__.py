"""Training: the loop (`fit`), several models of one architecture at once (`stacked.fit_stacked`),
checkpoints of a training in progress, and the device it runs on."""
from .checkpoints import checkpoint_epochs
from .device import resolve_device, resolve_precision
from .loop import TrainConfig, TrainResult, budget_epochs, fit

__all__ = ["TrainConfig", "TrainResult", "budget_epochs", "checkpoint_epochs", "fit", "resolve_device",
           "resolve_precision"]
