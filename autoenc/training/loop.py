"""Training: one config dataclass and one loop, read top to bottom.

The training split lives in memory as one tensor on the device; each epoch draws a random
permutation and walks it in batches (no DataLoader). Loss per batch, as the protocol defines it:

    loss = reconstruction(model(input), clean) + l1 * mean_batch(sum_j |E_j|) + l2 * sum_W ||W||_F^2

The L2 term is applied through Adam's (coupled) `weight_decay = 2 * l2` on the dense weight
matrices only, which adds exactly its gradient 2 * l2 * W; biases and normalization parameters are
not decayed. After every epoch the batch-norm statistics are recomputed for the current weights
(`recompute_batch_norm`), then early stopping and the choice of the best epoch compare the same
objective on the validation split (`evaluate_loss`). For a denoiser the input is the clean batch
plus fresh Gaussian noise every batch.
"""
from __future__ import annotations

import copy
import json
import math
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from torch.optim.adam import adam as adam_update

from ..config import check_engine
from ..errors import ConfigError, TrainingError
from ..evaluation import noise
from ..evaluation.metrics import check_images
from ..files import atomic_write_text
from ..model import DenseAutoencoder, ModelConfig
from ..progress import bar as progress_bar
from ..progress import shown
from .checkpoints import load_checkpoint, save_checkpoint
from .device import (
    autocast,
    graph_forward,
    graph_step,
    prepare,
    resolve_precision,
    restores_cpu_settings,
    use_cuda_graphs,
)


@dataclass
class TrainConfig:
    """How to train. Every field has the default recipe's value (see docs/recipe.md).

    epochs: passes over the training split; batch_size: images per step; lr: peak learning rate
    of Adam (None: `default_lr` of the model's depth); schedule: "onecycle" (linear warm-up over
    `warmup` of the steps (None: `default_warmup` of the depth), then cosine decay
    to lr/1000), "cosine" (no warm-up) or "constant"; l2, l1: the protocol's penalties (>= 0);
    loss: "mse" or "bce"; patience: stop after this many epochs without a better validation loss
    (the training objective with its penalties, on the validation split) and restore the best
    weights (0 = never stop early; the best weights are still restored); patience_start: the
    fraction of the epochs after which early stopping starts counting (epochs before it never
    count against patience: at the schedule's high learning rates validation is noisy);
    bn_images: after every epoch, set the batch-norm statistics that validation and the saved
    model use to those of this many training inputs, a random sample fixed by the seed
    (`recompute_batch_norm`; 0 keeps PyTorch's running averages);
    seed: initialization, batch order and noise; device: "auto" (CUDA when available), "cpu",
    "cuda", ...; precision: "fp32", "bf16" (autocast) or "auto" (bf16 on a CPU that computes
    bf16 natively, fp32 elsewhere: `resolve_precision`); threads: CPU threads (None = torch's
    default); noise_var: train a denoiser with Gaussian noise of this variance sigma^2 on the
    [0, 1] scale, or a (low, high) variance range for a blind denoiser (sigma uniform in
    between); noise_clip: clip noisy inputs to [0, 1].
    """

    epochs: int = 100
    batch_size: int = 256
    lr: float | None = None
    schedule: str = "onecycle"
    warmup: float | None = None
    l2: float = 0.0
    l1: float = 0.0
    loss: str = "mse"
    patience: int = 10
    patience_start: float = 0.5
    bn_images: int = 4096
    seed: int = 0
    device: str = "auto"
    precision: str = "auto"
    threads: int | None = None
    noise_var: float | tuple[float, float] | None = None
    noise_clip: bool = True

    def __post_init__(self) -> None:
        if isinstance(self.noise_var, list):
            self.noise_var = tuple(self.noise_var)
        check_engine(self, "TrainConfig")
        if isinstance(self.noise_var, tuple):
            self.noise_var = tuple(float(v) for v in self.noise_var)
        elif self.noise_var is not None:
            self.noise_var = float(self.noise_var)

    def to_dict(self) -> dict:
        """A JSON-ready dict."""
        d = asdict(self)
        if isinstance(self.noise_var, tuple):
            d["noise_var"] = list(self.noise_var)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        """Rebuild from `to_dict` output; unknown keys are an error naming them."""
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ConfigError(f"training config has unknown keys {sorted(unknown)}; allowed: {sorted(known)}")
        return cls(**d)


@dataclass
class TrainResult:
    """What `fit` returns: the trained model (best weights, eval mode), its per-epoch history
    (dicts with epoch, train_loss and val_loss: the objective with its penalties, averaged over the
    epoch's batches and over the validation split, val_psnr in dB, lr, train_seconds: the training
    steps, seconds: the whole epoch with validation), the best epoch
    (1-based), the epochs run, the training wall time in seconds, and the precision it trained
    in ("fp32" or "bf16", what "auto" resolved to)."""

    model: DenseAutoencoder
    history: list[dict]
    best_epoch: int
    epochs_run: int
    seconds: float
    precision: str = "fp32"


def default_lr(depth: int) -> float:
    """The recipe's peak learning rate: 1e-2 up to 3 dense layers per side, 3e-3 deeper (measured
    in docs/recipe.md: depth 5 at 1e-2 trails depth 3 by 0.4-1.5 dB)."""
    return 1e-2 if depth <= 3 else 3e-3


def default_warmup(depth: int) -> float:
    """The recipe's warm-up, as a fraction of the steps: 0.1 up to depth 3, 0.3 deeper (+0.6 dB
    for depth 5 at L=100 in docs/recipe.md)."""
    return 0.1 if depth <= 3 else 0.3


def learning_rate(config: TrainConfig, step: int, total_steps: int, peak: float | None = None,
                  depth: int = 3) -> float:
    """The learning rate at optimizer step `step` (0-based) of `total_steps`; peak and warm-up
    default to config.lr / config.warmup, else the recipe's value for a model of `depth`."""
    peak = (config.lr or default_lr(depth)) if peak is None else peak
    if config.schedule == "constant":
        return peak
    warmup = default_warmup(depth) if config.warmup is None else config.warmup
    warm = int(warmup * total_steps) if config.schedule == "onecycle" else 0
    if step < warm:
        return peak * (0.1 + 0.9 * step / warm)
    progress = (step - warm) / max(1, total_steps - warm)
    floor = peak / 1000
    return floor + (peak - floor) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def build_optimizer(model: DenseAutoencoder, config: TrainConfig, device: torch.device,
                    lr: float) -> torch.optim.Adam:
    """Adam (fused where the device supports it): L2 as weight decay 2*l2 on dense weights only."""
    weights = [m.weight for m in model.dense_layers()]
    ids = {id(w) for w in weights}
    others = [p for p in model.parameters() if id(p) not in ids]
    groups = [{"params": weights, "weight_decay": 2 * config.l2}, {"params": others, "weight_decay": 0.0}]
    return torch.optim.Adam(groups, lr=lr, fused=device.type in ("cpu", "cuda"))


def adam_step(optimizer: torch.optim.Adam, lr: float) -> None:
    """One step of `optimizer` (a torch.optim.Adam) at learning rate `lr` from the gradients of the
    last backward pass, which it then drops (sets to None): the same arithmetic on the same state
    tensors as setting every group's lr, optimizer.step() and optimizer.zero_grad(set_to_none=True).

    For fused Adam this calls the functional torch.optim.adam.adam on each group directly, without
    Optimizer.step's and zero_grad's per-step bookkeeping (hooks, state checks, profiler records):
    on 2 CPU cores the depth-3 preset's step and zero_grad took 603 us a step, this 425 us, 3-6% of
    the training step (docs/speed.md). The first step (state not yet created) and unfused Adam go
    through optimizer.step()."""
    groups = optimizer.param_groups
    for group in groups:
        group["lr"] = lr
    state = optimizer.state
    if not optimizer.defaults.get("fused") or any(p not in state for g in groups for p in g["params"]):
        optimizer.step()
    else:
        for group in groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            states = [state[p] for p in params]
            beta1, beta2 = group["betas"]
            adam_update(
                params, [p.grad for p in params], [s["exp_avg"] for s in states], [s["exp_avg_sq"] for s in states],
                [s["max_exp_avg_sq"] for s in states] if group["amsgrad"] else [], [s["step"] for s in states],
                fused=True, amsgrad=group["amsgrad"], beta1=beta1, beta2=beta2, lr=lr,
                weight_decay=group["weight_decay"], eps=group["eps"], maximize=group["maximize"],
                decoupled_weight_decay=group.get("decoupled_weight_decay", False))
    for group in groups:
        for p in group["params"]:
            p.grad = None


def reconstruction_loss(x_hat: torch.Tensor, x: torch.Tensor, kind: str,
                        weights: torch.Tensor | None = None) -> torch.Tensor:
    """Mean over pixels and batch of the squared error ("mse") or binary cross-entropy ("bce");
    with per-image `weights` (N,), the weighted mean over images of each image's pixel mean."""
    if weights is None:
        if kind == "bce":
            return F.binary_cross_entropy(x_hat.float(), x)
        return F.mse_loss(x_hat.float(), x)
    return (weights * per_image_loss(x_hat, x, kind)).mean()


def per_image_loss(x_hat: torch.Tensor, x: torch.Tensor, kind: str) -> torch.Tensor:
    """Each image's mean over its pixels (dimension 1: (N, D) -> (N,), or (K, D, N) -> (K, N) for
    a stack) of the squared error ("mse") or binary cross-entropy ("bce"), computed in float32."""
    if kind == "bce":
        return F.binary_cross_entropy(x_hat.float(), x, reduction="none").mean(1)
    return (x_hat.float() - x).pow(2).mean(1)


def corrupt(x: torch.Tensor, config: TrainConfig, generator: torch.Generator) -> torch.Tensor:
    """The denoiser's input for clean batch x: fresh noise per the config (x itself if none)."""
    return corrupt_weighted(x, config, generator)[0]


# A blind denoiser's per-image loss is weighted by 1 / (BALANCE_MSE + sigma^2), normalised to mean 1
# over the batch. The squared error of a good denoiser grows roughly like a + b * sigma^2 (about
# a/b = 0.06 on MNIST, 0.17 on Fashion-MNIST); without the weight the high-noise images dominate
# the gradient and the blind model gives up quality at low noise (docs/recipe.md, "Denoisers").
BALANCE_MSE = 0.1


def corrupt_weighted(x: torch.Tensor, config: TrainConfig,
                     generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(noisy input, per-image loss weights or None) for clean batch x under config.noise_var.

    A single variance (or none) gives weights None (a plain mean); a (lo, hi) range draws one
    sigma per image and weights image i by 1 / (BALANCE_MSE + sigma_i^2), mean 1 over the batch."""
    if config.noise_var is None:
        return x, None
    if not isinstance(config.noise_var, (tuple, list)):
        return noise.apply_noise(x, config.noise_var, generator, clip=config.noise_clip), None
    sigmas = noise.sample_sigmas(len(x), tuple(config.noise_var), generator)
    weights = 1.0 / (BALANCE_MSE + sigmas.pow(2))
    return noise.apply_noise_sigmas(x, sigmas, generator, clip=config.noise_clip), weights / weights.mean()


@torch.no_grad()
def evaluate_loss(model: DenseAutoencoder, x_in: torch.Tensor, x: torch.Tensor, config: TrainConfig,
                  batch: int = 4096, precision: str | None = None) -> tuple[float, float]:
    """(objective, psnr) of model(x_in) against clean x: the training loss as the protocol
    defines it, averaged over the images (reconstruction + config.l1 * mean(sum_j |E_j|) +
    config.l2 * sum_W ||W||_F^2; the reconstruction loss alone for a config without penalties),
    and the mean per-image PSNR (dB) of the reconstructions clipped to [0, 1]. Early stopping
    compares this objective, as Keras's val_loss does: selecting a penalized model by its
    reconstruction alone would pick the least regularized epoch. precision: "fp32" or "bf16" as
    the training runs (None: config.precision resolved on this machine)."""
    model.eval()
    precision = precision or resolve_precision(config.precision, x.device)
    loss, psnr_sum = 0.0, 0.0
    for i in range(0, len(x), batch):
        with autocast(x.device, precision):
            code = model.encoder(x_in[i:i + batch])
            out = model.decoder(code)
        out = out.float()
        target = x[i:i + batch]
        loss += float(reconstruction_loss(out, target, config.loss)) * len(target)
        if config.l1:
            loss += config.l1 * float(code.float().abs().sum())
        mse = (out.clamp(0, 1) - target).pow(2).mean(1)
        psnr_sum += float(torch.where(mse > 0, -10 * torch.log10(mse.clamp_min(1e-30)), 100.0).sum())
    if config.l2:
        loss += config.l2 * float(model.weight_sq_norm()) * len(x)
    return loss / len(x), psnr_sum / len(x)


@torch.no_grad()
def recompute_batch_norm(model: DenseAutoencoder, x_in: torch.Tensor, precision: str = "fp32") -> None:
    """Set every batch-norm layer's running mean and variance to the statistics of the inputs
    x_in ((N, D) pixels in [0, 1], N >= 2; noisy ones for a denoiser), in one train-mode pass
    under `precision` ("fp32" or "bf16"). PyTorch's running averages (momentum 0.1 over the last
    batches, taken while the weights moved) lag behind weights that move fast: with l1 = 1e-4
    the validation psnr swung between 12 and 24 dB from epoch to epoch where these statistics give
    a steady rise (docs/recipe.md). Leaves the model's mode as it was; no batch norm, no change."""
    norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm1d)]
    if not norms or len(x_in) < 2:
        return
    was_training = model.training
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # a cumulative average: after one pass, exactly this pass's statistics
    model.train()
    with autocast(x_in.device, precision):
        model(x_in)
    for m, momentum in zip(norms, momenta):
        m.momentum = momentum
    model.train(was_training)


def batch_norm_inputs(x_train: torch.Tensor, config: TrainConfig) -> torch.Tensor | None:
    """The fixed inputs `fit` recomputes the batch-norm statistics from after every epoch:
    config.bn_images training images (pixels in [0, 1], on x_train's device) drawn at random with
    a generator seeded by config.seed (the file order is not a fair sample), noisy as the
    denoiser's training inputs are; None when config.bn_images is 0."""
    if not config.bn_images:
        return None
    gen = torch.Generator(device=x_train.device).manual_seed(config.seed + 3)
    sample = torch.randperm(len(x_train), generator=gen, device=x_train.device)[:config.bn_images]
    return corrupt(x_train.index_select(0, sample), config, gen)


class Autoencode(torch.nn.Module):
    """One batch through the autoencoder, as the training step needs it: (code E, reconstruction)."""

    def __init__(self, model: DenseAutoencoder) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        code = self.model.encoder(x)
        return code, self.model.decoder(code)


CHECKPOINT_SECONDS = 30.0


def checkpoint_interval(seconds: float | None = None) -> float:
    """Seconds between two checkpoints of a training (`fit`, `stacked.fit_stacked`): `seconds`,
    else CHECKPOINT_SECONDS (30; config: trainer.checkpoint_seconds, study.checkpoint_seconds);
    0 saves after every epoch, inf never. A checkpoint is the whole training state (weights,
    Adam's two moments, the best weights: 30 MB for the depth-5 preset, 236 MB for a stack of
    eight), written with fsync. An interrupted training resumes from its last checkpoint, so it
    redoes at most this many seconds of work, and ends with the same numbers."""
    if seconds is None:
        return CHECKPOINT_SECONDS
    if not isinstance(seconds, (int, float)) or isinstance(seconds, bool) or math.isnan(seconds) or seconds < 0:
        raise ConfigError(f"checkpoint_seconds={seconds!r} is not allowed: the seconds between checkpoints, a number "
                          f">= 0 (e.g. 30; 0: after every epoch)")
    return float(seconds)


def check_inputs(model_config: ModelConfig, x_train: torch.Tensor, x_val: torch.Tensor,
                 batch_size: int | None = None) -> None:
    """Refuse training data that does not fit the model: float (N>0, D) train and (N>0, D) val
    tensors of pixels in [0, 1], D = model_config.input_dim (ConfigError naming the tensor, the
    problem and the fix, `evaluation.check_images`); with batch norm, a training split that
    `batch_size` images per step would leave with a last batch of one image (batch norm cannot
    train on one: PyTorch's ValueError at the end of the first epoch)."""
    d = model_config.input_dim
    for name, x in (("x_train", x_train), ("x_val", x_val)):
        if isinstance(x, torch.Tensor) and x.ndim == 2 and x.shape[1] != d:
            raise ConfigError(f"{name} has shape {tuple(x.shape)} but the model takes {d} pixels per image; build it "
                              f"for {x.shape[1]}-pixel images, e.g. ModelConfig.preset(depth, latent, "
                              f"input_dim={x.shape[1]})")
        check_images(x, name, d)
    for name, x in (("x_train", x_train), ("x_val", x_val)):
        if len(x) == 0:
            raise ConfigError(f"{name} has shape {tuple(x.shape)}; expected (N>0, {d}): "
                              f"{'training' if name == 'x_train' else 'validation'} needs images")
    n = len(x_train)
    if model_config.norm == "batch" and batch_size is not None and (batch_size == 1 or n % batch_size == 1):
        if n == 1:
            raise ConfigError("x_train holds one image, which batch norm cannot train on; give at least 2 "
                              "(or norm layer or none)")
        start = max(2, batch_size + 1)
        other = next(b for b in range(start, start + n + 1) if n % b != 1)
        last = "batches" if batch_size == 1 else "a last batch"
        raise ConfigError(f"{n} training images in batches of {batch_size} leave {last} of one image, which batch "
                          f"norm cannot train on; choose another batch size, e.g. {other} (trainer.batch_size, "
                          f"TrainConfig.batch_size)")


def init_model(model_config: ModelConfig, seed: int, device: torch.device) -> DenseAutoencoder:
    """A new autoencoder initialized from `seed` (without touching the global random state), on `device`."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = DenseAutoencoder(model_config)
    return model.to(device)


@dataclass
class TrainingData:
    """One training run's data on its device: the splits, the generators of the batch order
    (seed) and of the training noise (seed + 1), the fixed noisy validation inputs (seed + 2) and
    the batch-norm sample (`batch_norm_inputs`, seed + 3; None without)."""

    x_train: torch.Tensor
    x_val: torch.Tensor
    batch_gen: torch.Generator
    noise_gen: torch.Generator
    x_val_in: torch.Tensor
    bn_in: torch.Tensor | None

    @classmethod
    def build(cls, x_train: torch.Tensor, x_val: torch.Tensor, config: TrainConfig,
              device: torch.device) -> "TrainingData":
        """Move (N, D) pixel tensors in [0, 1] to `device` and seed everything from config.seed."""
        x_train = x_train.to(device, torch.float32).contiguous()
        x_val = x_val.to(device, torch.float32)
        # validation noise is fixed, so validation losses are comparable across epochs
        x_val_in = corrupt(x_val, config, torch.Generator(device=device).manual_seed(config.seed + 2))
        return cls(x_train, x_val, torch.Generator(device=device).manual_seed(config.seed),
                   torch.Generator(device=device).manual_seed(config.seed + 1), x_val_in,
                   batch_norm_inputs(x_train, config))


def close_epoch(model: DenseAutoencoder, config: TrainConfig, data: TrainingData, precision: str,
                train_loss: float, epoch: int, lr: float, peak_lr: float, best: dict) -> dict:
    """End epoch `epoch` (0-based) of a training run: add the L2 term to the epoch's mean training
    loss (TrainingError when it is not finite, naming a lower learning rate), recompute the
    batch-norm statistics, score the validation objective and psnr (dB), and keep the weights in
    `best` (updated in place) when they are the best so far. Returns the history row."""
    if config.l2:
        with torch.no_grad():
            train_loss += config.l2 * float(model.weight_sq_norm())
    if not math.isfinite(train_loss):
        raise TrainingError(
            f"the training loss became {train_loss} in epoch {epoch + 1}; lower the learning rate "
            f"(now lr={peak_lr:g}, e.g. trainer.lr={peak_lr / 10:g}) or the regularization strengths")
    if data.bn_in is not None:
        recompute_batch_norm(model, data.bn_in, precision)
    val_loss, val_psnr = evaluate_loss(model, data.x_val_in, data.x_val, config, precision=precision)
    if val_loss < best["loss"]:
        best.update(loss=val_loss, epoch=epoch + 1, state=copy.deepcopy(model.state_dict()))
    return {"epoch": epoch + 1, "train_loss": train_loss, "val_loss": val_loss, "val_psnr": val_psnr, "lr": lr}


def patience_exhausted(config: TrainConfig, epoch: int, best_epoch: int) -> bool:
    """Whether early stopping ends a run before epoch `epoch` (0-based): config.patience epochs
    have passed since the best epoch (1-based, 0 for none), counting only from the
    config.patience_start fraction of the epochs; never with patience 0."""
    counting_from = int(config.patience_start * config.epochs)
    return bool(config.patience) and epoch - max(best_epoch, counting_from) >= config.patience


@restores_cpu_settings
def fit(model_config: ModelConfig, x_train: torch.Tensor, x_val: torch.Tensor, config: TrainConfig,
        history_path: str | Path | None = None, progress: bool | None = None,
        checkpoint_path: str | Path | None = None,
        on_epoch: Callable[[dict, DenseAutoencoder], None] | None = None,
        cuda_graphs: bool | None = None, checkpoint_seconds: float | None = None) -> TrainResult:
    """Train a new autoencoder and return it with its history.

    x_train, x_val: (N, D) float tensors with pixels in [0, 1] (the protocol's train and val
    splits). history_path: (re)write the history there after every epoch, one JSON line per
    epoch. progress: show a bar (default: only when stderr is a terminal). checkpoint_path: save
    the full training state there (atomically) after an epoch when checkpoint_seconds have passed
    since the last save (`checkpoint_interval`: default 30 s, 0 every epoch), and resume from it
    when it exists, so an interrupted run ends with the same numbers as an uninterrupted one. on_epoch:
    called after each epoch with the history row and the model (in train mode; call model.eval()
    before using it, fit restores train mode). cuda_graphs: on a CUDA device, replay each full
    batch's forward and backward as CUDA graphs (True, `graph_forward`) or its whole step ("step",
    `graph_step`, without input noise); None: `use_cuda_graphs` (True on CUDA unless the
    environment variable AUTOENC_CUDA_GRAPHS says 0 or step). The same kernels, so the same numbers
    (checked on CUDA by the tests; "step" to float32 rounding of the learning rate).
    """
    check_inputs(model_config, x_train, x_val, config.batch_size)
    every = checkpoint_interval(checkpoint_seconds)
    device, precision = prepare(config.device, config.threads, config.precision)
    graphs = use_cuda_graphs(cuda_graphs, device)
    model = init_model(model_config, config.seed, device)
    peak_lr = config.lr or default_lr(model_config.depth)
    optimizer = build_optimizer(model, config, device, peak_lr)
    data = TrainingData.build(x_train, x_val, config, device)
    x_train, batch_gen, noise_gen = data.x_train, data.batch_gen, data.noise_gen

    n = len(x_train)
    steps_per_epoch = math.ceil(n / config.batch_size)
    total_steps = config.epochs * steps_per_epoch
    history: list[dict] = []
    best = {"loss": math.inf, "epoch": 0, "state": None}
    start_epoch, elapsed = 0, 0.0
    if checkpoint_path is not None and Path(checkpoint_path).exists():
        start_epoch, elapsed, history, best, started_in = load_checkpoint(
            checkpoint_path, model, optimizer, batch_gen, noise_gen, model_config, config)
        precision = started_in or precision  # "auto" may resolve otherwise on this machine: go on as it began

    autoencode = Autoencode(model)
    eager = full_batch = autoencode.forward  # eager: kept for the epoch's last, smaller batch
    if graphs == "step" and config.noise_var is not None:
        graphs = True  # fresh noise every step: only the forward and backward passes are graphed
    loss_sum = torch.zeros((), device=device)

    def train_step(index: torch.Tensor, lr: float | torch.Tensor) -> None:  # on the images x_train[index]
        clean = x_train.index_select(0, index)
        inputs, weights = corrupt_weighted(clean, config, noise_gen)
        with autocast(device, precision, cache=not graphs):
            code, out = (full_batch if len(clean) == config.batch_size else eager)(inputs)
        loss = reconstruction_loss(out, clean, config.loss, weights)
        if config.l1:
            loss = loss + config.l1 * code.float().abs().sum(1).mean()
        loss.backward()
        adam_step(optimizer, lr)
        loss_sum.add_(loss.detach() * len(clean))

    replay = None  # a graph of the whole step, for the full batches
    if graphs and n >= config.batch_size:  # after a resume: the graphs capture the loaded tensors
        if graphs == "step":
            replay = graph_step(train_step, torch.arange(config.batch_size, device=device), model, optimizer,
                                extra=[loss_sum])
        else:
            full_batch = graph_forward(autoencode, x_train[:config.batch_size].clone(), precision)

    bars, bar = progress_bar(config.epochs, "train", start_epoch, shown(progress))
    step = start_epoch * steps_per_epoch
    saved_at = time.perf_counter()
    for epoch in range(start_epoch, config.epochs):
        if patience_exhausted(config, epoch, best["epoch"]):
            break
        t0 = time.perf_counter()
        model.train()
        perm = torch.randperm(n, device=device, generator=batch_gen)
        loss_sum.zero_()
        for i in range(0, n, config.batch_size):
            lr = learning_rate(config, step, total_steps, peak_lr, model_config.depth)
            index = perm[i:i + config.batch_size]
            (replay if replay is not None and len(index) == config.batch_size else train_step)(index, lr)
            step += 1
        train_seconds = time.perf_counter() - t0
        row = close_epoch(model, config, data, precision, float(loss_sum) / n, epoch, lr, peak_lr, best)
        seconds = time.perf_counter() - t0
        row.update(train_seconds=round(train_seconds, 4), seconds=round(seconds, 4))
        elapsed += seconds
        history.append(row)
        if history_path is not None:
            atomic_write_text(history_path, "".join(json.dumps(r) + "\n" for r in history))
        if checkpoint_path is not None and time.perf_counter() - saved_at >= every:
            save_checkpoint(checkpoint_path, model, optimizer, batch_gen, noise_gen, model_config, config,
                            epoch + 1, elapsed, history, best, precision)
            saved_at = time.perf_counter()
        if on_epoch is not None:
            on_epoch(row, model)
        bars.update(bar, advance=1, info=f"loss {row['train_loss']:.4g}, val psnr {row['val_psnr']:.2f} dB")
    bars.close()
    if best["state"] is not None:
        model.load_state_dict(best["state"])
    model.eval()
    return TrainResult(model=model, history=history, best_epoch=best["epoch"], epochs_run=len(history),
                       seconds=elapsed, precision=precision)


@restores_cpu_settings
def budget_epochs(model_config: ModelConfig, config: TrainConfig, n_train: int, seconds: float,
                  probe_steps: int = 30) -> int:
    """How many epochs of `config` fit in `seconds` of training on n_train images on this machine.

    Times `probe_steps` training steps of a throw-away model (after a few warm-up steps) and
    divides; the answer is then a plain epoch count, so the run it configures is reproducible.
    Leaves torch's global random state as it was. Returns at least 1."""
    if not (seconds > 0 and math.isfinite(seconds)):  # inf: an OverflowError in int(seconds / per_epoch)
        raise ConfigError(f"budget seconds={seconds!r}: must be a finite number of seconds > 0, e.g. 60")
    device, precision = prepare(config.device, config.threads, config.precision)
    model = init_model(model_config, 0, device)  # seeded, as the rest: the caller's random state stays
    lr = config.lr or default_lr(model_config.depth)
    optimizer = build_optimizer(model, config, device, lr)
    gen = torch.Generator(device=device).manual_seed(0)
    x = torch.rand(config.batch_size, model_config.input_dim, device=device, generator=gen)
    for i in range(probe_steps + 5):
        if i == 5:
            if device.type == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
        with autocast(device, precision):
            out = model(corrupt(x, config, gen))
        loss = reconstruction_loss(out, x, config.loss)
        loss.backward()
        adam_step(optimizer, lr)
    if device.type == "cuda":
        torch.cuda.synchronize()
    per_step = (time.perf_counter() - t0) / probe_steps
    per_epoch = per_step * math.ceil(n_train / config.batch_size) * 1.05  # + validation
    return max(1, int(seconds / per_epoch))
