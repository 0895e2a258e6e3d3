"""autoenc: deep dense autoencoders on MNIST-family images.

The stages, one module or folder each: data -> model -> training -> evaluation -> runs -> study -> report.

    from autoenc import load, ModelConfig, TrainConfig, fit, evaluate
    x_train, _ = load("mnist", "train"); x_val, _ = load("mnist", "val")
    result = fit(ModelConfig.preset(depth=3, latent=30), x_train, x_val, TrainConfig(epochs=20))
    x_test, y_test = load("mnist", "test")
    print(evaluate(result.model, x_test, y_test, (28, 28))["psnr"])
"""
from .data import image_shape, load
from .errors import AutoencError, ConfigError, DataError, TrainingError
from .evaluation import evaluate, psnr, psnr_dataset, reconstruct
from .model import DenseAutoencoder, ModelConfig
from .runs import evaluate_run, load_run, read_run, train_run
from .training import TrainConfig, TrainResult, fit

__version__ = "0.1.0"

__all__ = [
    "AutoencError", "ConfigError", "DataError", "DenseAutoencoder", "ModelConfig", "TrainConfig", "TrainResult",
    "TrainingError", "evaluate", "evaluate_run", "fit", "image_shape", "load", "load_run", "psnr",
    "psnr_dataset", "read_run", "reconstruct", "train_run",
]
