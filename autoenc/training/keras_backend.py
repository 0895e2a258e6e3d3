"""The Keras backend (`backend=keras`): the protocol's dense autoencoder in Keras 3 on TensorFlow's
CPU build, built from the same ModelConfig and TrainConfig as the torch model and trained to the
same recipe. `fit` returns what `training.fit` returns (a TrainResult whose model is a
`KerasAutoencoder`), so run folders, metrics, `autoenc evaluate` and the study treat both alike.

What each part of the recipe is in Keras (docs/keras.md):

- model: an encoder and a decoder, each a keras.Sequential of Dense layers (no bias in front of
  batch norm; BatchNormalization and LayerNormalization with torch's momentum and epsilon; the
  activations as torch defines them), the two in one keras.Sequential. L2 is
  `kernel_regularizer=L2(l2)` on every Dense (l2 * sum of squared kernel entries), L1 is
  `activity_regularizer=L1(l1)` on the code, which Keras >= 3.14 divides by the batch size:
  l1 * mean over the batch of sum_j |E_j|, the protocol's penalties exactly.
- optimizer: Adam (betas 0.9, 0.999, epsilon 1e-8 as torch's) with the recipe's schedule as
  Keras's own CosineDecay (warm-up from lr/10, cosine to lr/1000: `learning_rate`'s values).
- data: a tf.data pipeline whose batch order and noise are pure functions of (seed, epoch,
  step) (stateless random ops), fresh noise for every batch, so a resumed run replays exactly;
  the validation inputs and the batch-norm sample are the torch trainer's own tensors.
- each epoch: batch-norm statistics recomputed from that sample before validation, the validation
  objective (Keras's val_loss: reconstruction + penalties), the best weights kept, early stopping
  as `loop.patience_exhausted` says, the history row, and a checkpoint (weights, Adam's state, the
  best weights, history; safetensors, atomically) every `checkpoint_seconds`.

Keras is imported with this module, so only the Keras path pays for it (seconds).
"""
from __future__ import annotations

import json
import logging
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ..errors import ConfigError, TrainingError
from ..evaluation.metrics import psnr
from ..files import atomic_save_tensors, atomic_target, atomic_write_text
from ..model import FORMAT, ModelConfig
from ..progress import bar as progress_bar
from ..progress import shown
from .checkpoints import read_checkpoint
from .loop import (BALANCE_MSE, TrainConfig, TrainResult, batch_norm_inputs, check_inputs, checkpoint_interval,
                   corrupt, default_lr, default_warmup, patience_exhausted)

INSTALL = "pip install 'autoenc[keras]'"
KERAS_MIN = (3, 14)  # the first Keras that divides an activity penalty by the batch size


def _import_keras():
    """keras and tensorflow, imported for the TensorFlow backend with TensorFlow's C++ log lines
    off; ConfigError saying what to install when they are missing, or when Keras is too old or
    runs on another backend."""
    backend = os.environ.get("KERAS_BACKEND", "tensorflow")
    if backend != "tensorflow":
        raise ConfigError(f"KERAS_BACKEND={backend}: backend=keras runs Keras on TensorFlow; unset KERAS_BACKEND "
                          f"or set it to tensorflow")
    os.environ["KERAS_BACKEND"] = "tensorflow"
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's start-up INFO and absl lines
    try:
        import keras
        import tensorflow as tf
        tf.get_logger().setLevel(logging.ERROR)  # e.g. tf.function's retracing warnings: not the user's business
    except ImportError as exc:
        raise ConfigError(f"backend=keras needs Keras and TensorFlow, which are not installed ({exc}): "
                          f"{INSTALL}") from None
    version = tuple(int(p) for p in keras.__version__.split(".")[:2])
    if version < KERAS_MIN or keras.backend.backend() != "tensorflow":
        raise ConfigError(f"backend=keras needs Keras >= {KERAS_MIN[0]}.{KERAS_MIN[1]} on TensorFlow (this is Keras "
                          f"{keras.__version__} on {keras.backend.backend()}): {INSTALL}")
    return keras, tf


keras, tf = _import_keras()
layers = keras.layers

# How the training step runs: 32 steps per call, compiled by XLA when the run is long enough to
# pay for the compilation (docs/keras.md). Recorded in each run's config.json and checkpoint: the
# last bits of the numbers depend on them.
STEPS_PER_EXECUTION = 32
JIT_MIN_STEPS = 2000
ADAM_EPSILON = 1e-8  # torch's (Keras's default is 1e-7)
NORM_EPSILON, BN_MOMENTUM = 1e-5, 0.9  # torch's BatchNorm1d / LayerNorm defaults (Keras's: 1e-3, 0.99)
LEAKY_SLOPE = 0.01  # torch's LeakyReLU (Keras's: 0.2)


def settings(total_steps: int) -> dict:
    """How a training of `total_steps` optimizer steps runs: {"jit_compile": XLA from JIT_MIN_STEPS
    steps on, "steps_per_execution": STEPS_PER_EXECUTION}."""
    return {"jit_compile": total_steps >= JIT_MIN_STEPS, "steps_per_execution": STEPS_PER_EXECUTION}


def versions() -> dict:
    """The Keras and TensorFlow versions this process runs."""
    return {"keras": keras.__version__, "tensorflow": tf.__version__}


# ---- the model ----

def _activation(name: str, layer_name: str, **kwargs):
    """The activation `name` (config.ACTIVATIONS) as torch computes it, as a layer."""
    if name == "leaky_relu":
        return layers.LeakyReLU(negative_slope=LEAKY_SLOPE, name=layer_name, **kwargs)
    return layers.Activation(name, name=layer_name, **kwargs)  # relu, gelu (exact), silu, elu, tanh, linear


class _Seeds:
    """One seeded initializer per layer (a shared seeded initializer gives every layer the same
    draw), so a model is a function of its config's seed."""

    def __init__(self, seed: int) -> None:
        self.seed, self.count = seed, 0

    def next(self) -> int:
        self.count += 1
        return self.seed * 1000 + self.count

    def dense(self, init: str, fan_in: int) -> dict:
        """Dense kwargs for ModelConfig.init: the distributions torch's DenseAutoencoder draws from."""
        if init == "default":  # torch's nn.Linear: U(+-1/sqrt(fan_in)) for the weights and the bias
            bound = 1 / math.sqrt(fan_in)
            return {"kernel_initializer": keras.initializers.VarianceScaling(1 / 3, "fan_in", "uniform", self.next()),
                    "bias_initializer": keras.initializers.RandomUniform(-bound, bound, self.next())}
        kernel = {"orthogonal": lambda s: keras.initializers.Orthogonal(1.0, s),
                  "kaiming": lambda s: keras.initializers.VarianceScaling(2.0, "fan_in", "untruncated_normal", s),
                  "glorot": lambda s: keras.initializers.GlorotUniform(s)}[init](self.next())
        return {"kernel_initializer": kernel, "bias_initializer": "zeros"}


@keras.saving.register_keras_serializable(package="autoenc")
class UnitColumnDense(layers.Dense):
    """model.UnitColumnLinear in Keras: a Dense layer that uses its kernel with every row (what one
    input unit writes) at unit L2 norm; the free kernel is what Adam and the L2 penalty see."""

    def call(self, inputs):
        kernel = self.kernel / keras.ops.maximum(keras.ops.norm(self.kernel, axis=1, keepdims=True), 1e-12)
        outputs = keras.ops.matmul(inputs, kernel)
        if self.use_bias:
            outputs = keras.ops.add(outputs, self.bias)
        return self.activation(outputs) if self.activation is not None else outputs


def build(config: ModelConfig, l2: float = 0.0, l1: float = 0.0, seed: int = 0):
    """The Keras autoencoder of `config`: keras.Sequential([encoder, decoder]), each a
    keras.Sequential named "encoder" / "decoder" mapping (N, D) pixels in [0, 1] to the (N, L)
    code E and back to (N, D) in [0, 1]. l2: L2(l2) kernel regularizer on every Dense; l1: L1(l1)
    activity regularizer on the code (per image, averaged over the batch); seed: the
    initialization. The layers and their order are DenseAutoencoder's (`load_torch_weights`)."""
    seeds = _Seeds(seed)
    l2_reg = keras.regularizers.L2(l2) if l2 else None

    def block(stack: list, n_in: int, n_out: int, tag: str, norm: str, unit: bool = False) -> None:
        dense = UnitColumnDense if unit else layers.Dense
        stack.append(dense(n_out, use_bias=norm != "batch", kernel_regularizer=l2_reg,
                           name=f"{tag}_dense", **seeds.dense(config.init, n_in)))
        if norm == "batch":
            stack.append(layers.BatchNormalization(momentum=BN_MOMENTUM, epsilon=NORM_EPSILON, name=f"{tag}_bn"))
        elif norm == "layer":
            stack.append(layers.LayerNormalization(epsilon=NORM_EPSILON, name=f"{tag}_ln"))
        stack.append(_activation(config.activation, f"{tag}_act"))

    sizes = [config.input_dim, *config.widths]
    enc: list = [keras.Input((config.input_dim,), name="pixels")]
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        block(enc, a, b, f"enc{i}", config.norm)
    enc.append(layers.Dense(config.latent, kernel_regularizer=l2_reg, name="code_dense",
                            **seeds.dense(config.init, sizes[-1])))
    enc.append(_activation(config.latent_activation, "code",
                           activity_regularizer=keras.regularizers.L1(l1) if l1 else None))
    back = [config.latent, *reversed(config.widths)]
    dec: list = [keras.Input((config.latent,), name="code_in")]
    for i, (a, b) in enumerate(zip(back[:-1], back[1:])):
        block(dec, a, b, f"dec{i}", config.decoder_normalization, unit=config.unit_code_columns and i == 0)
    output = UnitColumnDense if config.unit_code_columns and not config.widths else layers.Dense
    dec.append(output(config.input_dim, activation="sigmoid", kernel_regularizer=l2_reg, name="output",
                      **seeds.dense(config.init, back[-1])))
    encoder, decoder = keras.Sequential(enc, name="encoder"), keras.Sequential(dec, name="decoder")
    return keras.Sequential([keras.Input((config.input_dim,), name="pixels"), encoder, decoder], name="autoencoder")


def load_torch_weights(keras_model, torch_model) -> None:
    """Copy the weights of a torch DenseAutoencoder into `build`'s Keras model of the same config
    (dense weights transposed, biases, batch-norm scale, shift and running statistics, layer-norm
    scale and shift): the two then compute the same function, to float32 rounding."""
    torch_layers = [m for m in torch_model.modules()
                    if isinstance(m, (torch.nn.Linear, torch.nn.BatchNorm1d, torch.nn.LayerNorm))]
    keras_layers = [layer for part in keras_model.layers for layer in part.layers
                    if isinstance(layer, (layers.Dense, layers.BatchNormalization, layers.LayerNormalization))]
    if len(torch_layers) != len(keras_layers):
        raise ConfigError(f"the torch model has {len(torch_layers)} dense and normalization layers, the Keras model "
                          f"{len(keras_layers)}: build both from the same ModelConfig")
    for t, k in zip(torch_layers, keras_layers):
        def arr(p):
            return p.detach().cpu().numpy()
        if isinstance(t, torch.nn.Linear):
            k.set_weights([arr(t.weight).T] + ([arr(t.bias)] if t.bias is not None else []))
        elif isinstance(t, torch.nn.BatchNorm1d):
            k.set_weights([arr(t.weight), arr(t.bias), arr(t.running_mean), arr(t.running_var)])
        else:
            k.set_weights([arr(t.weight), arr(t.bias)])


def _batch_norms(keras_model) -> list:
    return [layer for part in keras_model.layers for layer in part.layers
            if isinstance(layer, layers.BatchNormalization)]


def _numpy(x: torch.Tensor) -> np.ndarray:
    return x.detach().cpu().to(torch.float32).numpy()


class KerasAutoencoder(torch.nn.Module):
    """A Keras autoencoder as autoenc's torch code scores models: `encode` / `decode` / `forward`
    take (N, D) or (N, L) float tensors (pixels in [0, 1]) and return torch float32 tensors on the
    inputs' device, computed by the Keras model in inference mode (batch norm's moving
    statistics); `config` is its ModelConfig. `keras_model` is the keras.Sequential of `build`.
    Its one torch parameter is empty: it says where outputs go (the CPU), as metrics.reconstruct
    reads a model's device from its parameters. `trained_with`: how `fit` ran ({} for a loaded
    model): `settings`, `versions`."""

    def __init__(self, keras_model, config: ModelConfig, trained_with: dict | None = None) -> None:
        super().__init__()
        self.keras_model = keras_model
        self.config = config
        self.trained_with = trained_with or {}
        self.place = torch.nn.Parameter(torch.empty(0), requires_grad=False)
        self.encoder_part, self.decoder_part = keras_model.get_layer("encoder"), keras_model.get_layer("decoder")

    def _run(self, part, x: torch.Tensor) -> torch.Tensor:
        out = part(_numpy(x), training=False)
        return torch.from_numpy(np.array(out, dtype=np.float32)).to(x.device)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """(N, D) pixels in [0, 1] -> (N, L) code E."""
        return self._run(self.encoder_part, x)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """(N, L) code -> (N, D) reconstruction with pixels in [0, 1]."""
        return self._run(self.decoder_part, z)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, D) pixels in [0, 1] -> (N, D) reconstructions in [0, 1]."""
        return self._run(self.keras_model, x)

    def num_parameters(self) -> int:
        """Trainable parameters (as DenseAutoencoder counts them: batch norm's statistics excluded)."""
        return int(sum(np.prod(w.shape) for w in self.keras_model.trainable_weights))

    def save(self, path: str | Path) -> None:
        """Write the Keras model to `path` (a .keras file, atomically): Keras's own format, which
        `keras.saving.load_model(path, compile=False)` reads (with autoenc imported when the model
        has unit_code_columns, a layer of autoenc's own)."""
        with atomic_target(path, suffix=".tmp.keras") as tmp:
            self.keras_model.save(tmp)


def load(path: str | Path, config: ModelConfig) -> KerasAutoencoder:
    """The model a Keras run saved (model.keras), for inference; ConfigError when it is unreadable."""
    try:
        model = keras.saving.load_model(path, compile=False)
        model.get_layer("encoder"), model.get_layer("decoder")
    except Exception as exc:  # zip, h5 and deserialization errors of several types
        raise ConfigError(f"{path} is not a readable Keras autoencoder ({type(exc).__name__}: {exc})") from exc
    return KerasAutoencoder(model, config)


# ---- training ----

def schedule(config: TrainConfig, total_steps: int, depth: int):
    """The learning rate of `loop.learning_rate` as Keras's schedule: a float (constant), or
    CosineDecay with a linear warm-up from peak/10 over int(warmup * total_steps) steps (onecycle)
    and a cosine to peak/1000 over the other steps."""
    peak = config.lr or default_lr(depth)
    if config.schedule == "constant":
        return peak
    warmup = default_warmup(depth) if config.warmup is None else config.warmup
    warm = int(warmup * total_steps) if config.schedule == "onecycle" else 0
    if warm == 0:
        return keras.optimizers.schedules.CosineDecay(peak, max(1, total_steps), alpha=1e-3)
    return keras.optimizers.schedules.CosineDecay(peak / 10, max(1, total_steps - warm), alpha=1e-3,
                                                  warmup_target=peak, warmup_steps=warm)


class EpochData:
    """The training split as a tf.data pipeline, one epoch long: the order a stateless shuffle
    keyed by (seed, epoch), batches of `batch` images (the last one smaller), and for a denoiser
    fresh noise per batch keyed by (seed + 1, global step): every epoch is a pure function of the
    seed and its number, so a resumed run sees what the uninterrupted run saw. Batches are
    (input, clean) or, for a blind denoiser, (input, clean, weight): weights 1 / (BALANCE_MSE +
    sigma^2), mean 1 over the batch, as `loop.corrupt_weighted`. Add `callback` to fit's callbacks
    (it tells the pipeline the epoch; Keras makes a new iterator at every epoch start)."""

    def __init__(self, x: np.ndarray, batch: int, config: TrainConfig) -> None:
        n = len(x)
        self.steps = steps = math.ceil(n / batch)
        images = tf.constant(x)
        self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False)
        seed, noise_var, clip = config.seed, config.noise_var, config.noise_clip

        def batches(_):
            e = self.epoch.read_value()
            order = tf.random.experimental.stateless_shuffle(tf.range(n, dtype=tf.int64),
                                                             seed=tf.stack([tf.constant(seed, tf.int64), e]))
            return tf.data.Dataset.zip(tf.data.Dataset.range(e * steps, (e + 1) * steps),
                                       tf.data.Dataset.from_tensor_slices(order).batch(batch))

        def make(step, index):
            clean = tf.gather(images, index)
            if noise_var is None:
                return clean, clean
            key = tf.stack([tf.constant(seed + 1, tf.int64), step])
            if isinstance(noise_var, tuple):
                k_sigma, k_noise = tf.unstack(tf.random.experimental.stateless_split(key, 2))
                lo, hi = math.sqrt(noise_var[0]), math.sqrt(noise_var[1])
                sigma = lo + (hi - lo) * tf.random.stateless_uniform(tf.shape(clean)[:1], k_sigma)
                noisy = clean + sigma[:, None] * tf.random.stateless_normal(tf.shape(clean), k_noise)
            else:
                noisy = clean + math.sqrt(noise_var) * tf.random.stateless_normal(tf.shape(clean), key)
            noisy = tf.clip_by_value(noisy, 0.0, 1.0) if clip else noisy
            if not isinstance(noise_var, tuple):
                return noisy, clean
            weight = 1.0 / (BALANCE_MSE + sigma ** 2)
            return noisy, clean, weight / tf.reduce_mean(weight)

        data = tf.data.Dataset.from_tensors(0).flat_map(batches)
        data = data.map(make, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        self.dataset = data.apply(tf.data.experimental.assert_cardinality(steps)).prefetch(tf.data.AUTOTUNE)
        self.callback = keras.callbacks.LambdaCallback(on_epoch_begin=lambda e, logs=None: self.epoch.assign(e))


def recompute_batch_norm(keras_model, x_in: np.ndarray) -> None:
    """Set every BatchNormalization's moving mean and variance to the statistics of inputs x_in
    ((N, D) pixels, N >= 2), in one training-mode pass with momentum 0 (`loop.recompute_batch_norm`
    for Keras; Keras keeps the biased variance, torch the unbiased: a factor N/(N-1))."""
    norms = _batch_norms(keras_model)
    if not norms or len(x_in) < 2:
        return
    for layer in norms:
        layer.momentum = 0.0
    try:
        keras_model(x_in, training=True)  # eager: reads momentum now (the compiled step keeps its own 0.9)
    finally:
        for layer in norms:
            layer.momentum = BN_MOMENTUM


@dataclass
class _State:
    """What a checkpoint holds besides the weights and Adam's state."""

    epoch: int = 0
    elapsed: float = 0.0
    history: list | None = None
    best_loss: float = math.inf
    best_epoch: int = 0
    best_weights: list | None = None


class _Epochs(keras.callbacks.Callback):
    """The end of each epoch, as `loop.close_epoch` and `fit`'s loop do it: batch-norm statistics
    recomputed before validation, the history row (val_psnr: the project's psnr of the validation
    outputs), the best weights, the history file, checkpoints, progress, early stopping."""

    def __init__(self, config: TrainConfig, peak_lr: float, model_config: ModelConfig, state: _State,
                 x_val_in: np.ndarray, x_val: torch.Tensor, bn_in: np.ndarray | None, save: Callable[[], None],
                 every: float, history_path, on_epoch, bars, bar) -> None:
        super().__init__()
        self.config, self.peak_lr, self.model_config, self.state = config, peak_lr, model_config, state
        self.x_val_in, self.x_val, self.bn_in = x_val_in, x_val, bn_in
        self.save, self.every, self.history_path, self.on_epoch = save, every, history_path, on_epoch
        self.bars, self.bar = bars, bar
        self.saved_at = time.perf_counter()

    def on_epoch_begin(self, epoch, logs=None):
        self.t0, self.train_seconds = time.perf_counter(), None

    def on_test_begin(self, logs=None):
        self.train_seconds = time.perf_counter() - self.t0
        if self.bn_in is not None:
            recompute_batch_norm(self.model, self.bn_in)

    def on_epoch_end(self, epoch, logs=None):
        s, logs = self.state, logs or {}
        train_loss, val_loss = float(logs["loss"]), float(logs["val_loss"])
        if not math.isfinite(train_loss):
            raise TrainingError(
                f"the training loss became {train_loss} in epoch {epoch + 1}; lower the learning rate (now "
                f"lr={self.peak_lr:g}, e.g. trainer.lr={self.peak_lr / 10:g}) or the regularization strengths")
        out = KerasAutoencoder(self.model, self.model_config)
        val_psnr = psnr(out(torch.from_numpy(self.x_val_in)), self.x_val)
        if val_loss < s.best_loss:
            s.best_loss, s.best_epoch, s.best_weights = val_loss, epoch + 1, self.model.get_weights()
        lr = self.model.optimizer.learning_rate
        seconds = time.perf_counter() - self.t0
        row = {"epoch": epoch + 1, "train_loss": train_loss, "val_loss": val_loss, "val_psnr": val_psnr,
               "lr": float(lr.numpy()) if hasattr(lr, "numpy") else float(lr),
               "train_seconds": round(self.train_seconds if self.train_seconds is not None else seconds, 4),
               "seconds": round(seconds, 4)}
        s.history.append(row)
        s.epoch, s.elapsed = epoch + 1, s.elapsed + seconds
        if self.history_path is not None:
            atomic_write_text(self.history_path, "".join(json.dumps(r) + "\n" for r in s.history))
        if time.perf_counter() - self.saved_at >= self.every:
            self.save()
            self.saved_at = time.perf_counter()
        if self.on_epoch is not None:
            self.on_epoch(row, out)
        self.bars.update(self.bar, advance=1, info=f"loss {train_loss:.4g}, val psnr {val_psnr:.2f} dB")
        if patience_exhausted(self.config, epoch + 1, s.best_epoch):
            self.model.stop_training = True


def set_threads(threads: int | None) -> None:
    """TensorFlow's CPU threads: `threads` for the operations (intra-op), 1 between them (None:
    TensorFlow's default, every core). TensorFlow fixes them at its first operation in a
    process: asking for another number later is a ConfigError."""
    if threads is None:
        return
    threading = tf.config.threading
    if threading.get_intra_op_parallelism_threads() == threads and threading.get_inter_op_parallelism_threads() == 1:
        return
    try:
        threading.set_intra_op_parallelism_threads(threads)
        threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:
        raise ConfigError(f"threads={threads}: TensorFlow already runs on "
                          f"{threading.get_intra_op_parallelism_threads() or 'its default'} threads in this process "
                          f"and cannot change them; train with the same threads, or in a new process") from None


def _checkpoint(path, keras_model, model_config: ModelConfig, config: TrainConfig, state: _State,
                how: dict) -> None:
    """Atomically save the whole training state after `state.epoch` epochs (safetensors)."""
    tensors = {f"model.{i}": torch.from_numpy(np.array(w)) for i, w in enumerate(keras_model.get_weights())}
    tensors.update({f"opt.{i}": torch.from_numpy(np.array(v.numpy()))
                    for i, v in enumerate(keras_model.optimizer.variables)})
    tensors.update({f"best.{i}": torch.from_numpy(np.array(w)) for i, w in enumerate(state.best_weights or [])})
    meta = {"format": FORMAT, "backend": "keras", "epoch": state.epoch, "elapsed": state.elapsed,
            "history": state.history, "best_loss": state.best_loss, "best_epoch": state.best_epoch,
            "model": model_config.to_dict(), "train": config.to_dict(), "device": "cpu", "precision": "fp32",
            "keras": how}
    atomic_save_tensors(path, tensors, metadata={"autoenc": json.dumps(meta)})


def _resume(path, keras_model, model_config: ModelConfig, config: TrainConfig, how: dict) -> _State:
    """Restore what `_checkpoint` wrote into the compiled `keras_model` and its optimizer."""
    meta, tensors = read_checkpoint(path, model_config.to_dict(), config.to_dict(), "cpu", backend="keras")
    if meta.get("keras") != how:
        raise ConfigError(f"{path} was written with the Keras settings {meta.get('keras')}, this autoenc trains with "
                          f"{how}: delete it to start afresh")

    def listed(prefix: str) -> list[np.ndarray]:
        return [tensors[f"{prefix}{i}"].numpy() for i in range(sum(k.startswith(prefix) for k in tensors))]

    try:
        keras_model.set_weights(listed("model."))
        optimizer = keras_model.optimizer
        optimizer.build(keras_model.trainable_variables)
        saved = listed("opt.")
        if len(saved) != len(optimizer.variables):
            raise ValueError(f"{len(saved)} optimizer variables, the model has {len(optimizer.variables)}")
        for variable, value in zip(optimizer.variables, saved):
            variable.assign(value)
    except ValueError as exc:
        raise ConfigError(f"{path} does not fit this model ({exc}); delete it to start afresh") from exc
    return _State(epoch=meta["epoch"], elapsed=meta["elapsed"], history=meta["history"],
                  best_loss=meta["best_loss"], best_epoch=meta["best_epoch"], best_weights=listed("best.") or None)


def fit(model_config: ModelConfig, x_train: torch.Tensor, x_val: torch.Tensor, config: TrainConfig,
        history_path: str | Path | None = None, progress: bool | None = None,
        checkpoint_path: str | Path | None = None, on_epoch: Callable[[dict, KerasAutoencoder], None] | None = None,
        checkpoint_seconds: float | None = None) -> TrainResult:
    """Train a new Keras autoencoder and return it (a `KerasAutoencoder`) with its history: the
    torch `training.fit` for Keras, with the same arguments and the same result.

    x_train, x_val: (N, D) float tensors with pixels in [0, 1]. history_path: (re)write the history
    there after every epoch. progress: a bar (default: when stderr is a terminal). checkpoint_path:
    save the training state there after an epoch when checkpoint_seconds (`checkpoint_interval`)
    have passed since the last save, and resume from it when it exists: an interrupted run ends
    with the same numbers as an uninterrupted one. on_epoch: called after each epoch with the
    history row and the model. config.device: auto or cpu; config.threads: TensorFlow's
    (`set_threads`); config.precision: float32 always (auto and fp32)."""
    from ..config import check_backend

    check_backend("keras", config.device, config.precision)
    check_inputs(model_config, x_train, x_val, config.batch_size)
    every = checkpoint_interval(checkpoint_seconds)
    set_threads(config.threads)
    n = len(x_train)
    steps = math.ceil(n / config.batch_size)
    model = build(model_config, config.l2, config.l1, config.seed)
    loss = {"mse": keras.losses.MeanSquaredError(), "bce": keras.losses.BinaryCrossentropy()}[config.loss]
    how = settings(config.epochs * steps)
    model.compile(optimizer=keras.optimizers.Adam(schedule(config, config.epochs * steps, model_config.depth),
                                                  epsilon=ADAM_EPSILON), loss=loss, **how)
    x_train = x_train.to(torch.float32)
    x_val = x_val.to(torch.float32)
    # the torch trainer's validation inputs (noise seed + 2) and batch-norm sample (seed + 3), so
    # both backends select and normalize on the same images
    x_val_in = _numpy(corrupt(x_val, config, torch.Generator().manual_seed(config.seed + 2)))
    bn = batch_norm_inputs(x_train, config)
    state = _State(history=[])
    if checkpoint_path is not None and Path(checkpoint_path).exists():
        state = _resume(checkpoint_path, model, model_config, config, how)
    data = EpochData(_numpy(x_train), config.batch_size, config)

    def save() -> None:
        if checkpoint_path is not None:
            _checkpoint(checkpoint_path, model, model_config, config, state, how)

    bars, bar = progress_bar(config.epochs, "train", state.epoch, shown(progress))
    epochs = _Epochs(config, config.lr or default_lr(model_config.depth), model_config, state, x_val_in, x_val,
                     None if bn is None else _numpy(bn), save, every, history_path, on_epoch, bars, bar)
    try:
        if state.epoch < config.epochs and not patience_exhausted(config, state.epoch, state.best_epoch):
            model.fit(data.dataset, epochs=config.epochs, initial_epoch=state.epoch, shuffle=False, verbose=0,
                      validation_data=(x_val_in, _numpy(x_val)), validation_batch_size=4096,
                      callbacks=[data.callback, epochs])
    finally:
        bars.close()
    if state.best_weights is not None:
        model.set_weights(state.best_weights)
    return TrainResult(model=KerasAutoencoder(model, model_config, {**how, **versions()}), history=state.history,
                       best_epoch=state.best_epoch, epochs_run=len(state.history), seconds=state.elapsed,
                       precision="fp32")
