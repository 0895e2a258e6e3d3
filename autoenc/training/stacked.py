"""Stacked training: several autoencoders of one architecture trained at once, one set of kernels
per step for all of them.

A GPU runs the small kernels of a depth-3 step in microseconds but launches them one at a time,
and worker processes sharing it take turns rather than overlap: 8 processes on an H100 finished
15 of the default study's 60 trials in 330 s, at most ~1,000 training steps per second, where a
120-s study needs ~8,000 (docs/speed.md). With the weights of K models stacked along a leading
dimension, one batched kernel does the work of K.

Each model keeps everything of its own `training.fit`: the initialization, batch order and noise
of its seed, its penalties (l1, l2) and noise level, the validation objective, the batch-norm
statistics, early stopping and the restored best epoch; even its data may differ (same number
of training images). Only the arithmetic is batched, so the numbers agree with K separate `fit`
calls up to rounding, not bit for bit. A model that stops early keeps being computed in the
stack (its results are frozen) until every model has stopped.

Models whose configurations differ only in the latent size share a stack too: the code layer's
weights and bias, and the next layer's weights, are zero-padded to the widest code. The padded
code units are 0 (every activation maps 0 to 0) and get exactly zero gradients (their outgoing
weights are 0, and so is the L1 term's gradient at 0), so they stay 0 under Adam and L2 and each
model computes what it would alone (`_padded`, `stack_envelope`).

Layout: activations are (K, features, batch). A dense layer is torch.baddbmm(b, W, h) (torch.bmm(W, h)
for the bias-free layers in front of batch norm; W with unit-norm columns for a `UnitColumnLinear`,
whose zero-padded columns stay zero) and batch norm is one F.batch_norm over (1, K * features,
batch), i.e. per model and feature over the batch, as nn.BatchNorm1d does for one model.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from ..model import DenseAutoencoder, ModelConfig, UnitColumnLinear, unit_columns
from ..progress import bar as progress_bar
from ..progress import shown
from .checkpoints import load_stack_checkpoint, save_stack_checkpoint
from .device import (
    autocast,
    graph_forward,
    graph_step,
    prepare,
    restores_cpu_settings,
    use_cuda_graphs,
)
from .loop import (
    TrainConfig,
    TrainingData,
    TrainResult,
    adam_step,
    check_inputs,
    checkpoint_interval,
    close_epoch,
    corrupt_weighted,
    default_lr,
    init_model,
    learning_rate,
    patience_exhausted,
    per_image_loss,
)

# TrainConfig fields every model of a stack shares (they fix the steps, the schedule and the
# arithmetic); seed, l1, l2, noise_var and noise_clip may differ from model to model.
STACK_FIELDS = ("epochs", "batch_size", "lr", "schedule", "warmup", "loss", "patience", "patience_start",
                "bn_images", "device", "precision", "threads")


class StackedAutoencoder(nn.Module):
    """K `DenseAutoencoder`s of one architecture as stacked parameters (copies of the models'
    current weights). forward: (K, D, batch) inputs in [0, 1] -> (codes (K, L, batch),
    reconstructions (K, D, batch) in [0, 1]), each model on its own slice, batch norm in training
    mode (batch statistics)."""

    def __init__(self, models: Sequence[DenseAutoencoder]) -> None:
        super().__init__()
        reason = unstackable(stack_envelope([m.config for m in models]))
        if reason:
            raise ConfigError(reason)
        self.weights, self.biases = nn.ParameterList(), nn.ParameterList()
        self.gammas, self.betas = nn.ParameterList(), nn.ParameterList()
        self.eps: list[float] = []
        # ("dense", (weight index, bias index or None, unit-norm columns)), ("norm", index) or ("act", module)
        self.plan: list[tuple[str, object]] = []
        self.code_step = len(models[0].encoder) - 1  # the encoder's last step gives the code
        for layers in zip(*(list(m.encoder) + list(m.decoder) for m in models)):
            first = layers[0]
            if isinstance(first, nn.Linear):
                self.weights.append(nn.Parameter(_padded([m.weight.detach() for m in layers])))
                bias = None
                if first.bias is not None:
                    self.biases.append(nn.Parameter(_padded([m.bias.detach() for m in layers]).unsqueeze(-1)))
                    bias = len(self.biases) - 1
                self.plan.append(("dense", (len(self.weights) - 1, bias, isinstance(first, UnitColumnLinear))))
            elif isinstance(first, nn.BatchNorm1d):
                self.gammas.append(nn.Parameter(_padded([m.weight.detach() for m in layers])))
                self.betas.append(nn.Parameter(_padded([m.bias.detach() for m in layers])))
                self.eps.append(first.eps)
                self.plan.append(("norm", len(self.gammas) - 1))
            else:  # an activation: stateless, the same for every model
                self.plan.append(("act", first))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(K, D, B) batches, one per model, features first, pixels in [0, 1] -> (codes (K, L, B),
        reconstructions (K, D, B) in [0, 1]); L: the stack's widest latent."""
        h, code = x, x
        for step, (kind, what) in enumerate(self.plan):
            if kind == "dense":
                w, b, unit = what
                weight = unit_columns(self.weights[w]) if unit else self.weights[w]
                h = torch.bmm(weight, h) if b is None else torch.baddbmm(self.biases[b], weight, h)
            elif kind == "norm":
                k, c, b = h.shape
                h = F.batch_norm(h.reshape(1, k * c, b), None, None, self.gammas[what].reshape(-1),
                                 self.betas[what].reshape(-1), training=True, eps=self.eps[what]).view(k, c, b)
            else:
                h = what(h)
            if step == self.code_step:
                code = h
        return code, h

    def weight_sq_norms(self) -> torch.Tensor:
        """(K,) sum over dense layers of each model's squared Frobenius weight norm (biases excluded)."""
        return sum(w.pow(2).sum((1, 2)) for w in self.weights)

    @torch.no_grad()
    def unstack_into(self, models: Sequence[DenseAutoencoder]) -> None:
        """Copy each model's slice of the stacked parameters (without the padding) into `models`
        (same order as built)."""
        def own(t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
            return t[tuple(slice(0, n) for n in like.shape)]

        for k, model in enumerate(models):
            dense = [m for m in model.modules() if isinstance(m, nn.Linear)]
            norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm1d)]
            for lin, w in zip(dense, self.weights):
                lin.weight.copy_(own(w[k], lin.weight))
            for lin, b in zip([m for m in dense if m.bias is not None], self.biases):
                lin.bias.copy_(own(b[k, :, 0], lin.bias))
            for bn, g, beta in zip(norms, self.gammas, self.betas):
                bn.weight.copy_(own(g[k], bn.weight))
                bn.bias.copy_(own(beta[k], bn.bias))


def _padded(tensors: Sequence[torch.Tensor]) -> torch.Tensor:
    """The tensors (all of one rank) stacked along a new first dimension, each zero-padded at the
    end of every dimension to the largest size there."""
    shape = [max(sizes) for sizes in zip(*(t.shape for t in tensors))]
    out = tensors[0].new_zeros(len(tensors), *shape)
    for k, t in enumerate(tensors):
        out[(k, *(slice(0, n) for n in t.shape))] = t
    return out


def stack_envelope(model_configs: Sequence[ModelConfig]) -> ModelConfig:
    """The architecture a stack of `model_configs` trains: theirs, with the widest latent.
    ConfigError when they differ in anything but the latent size (naming the field and both values)."""
    first = model_configs[0].to_dict()
    for i, mc in enumerate(model_configs[1:], start=1):
        for name, value in mc.to_dict().items():
            if name != "latent" and value != first[name]:
                raise ConfigError(f"stacked models may differ only in their latent size, but model 0 has {name}="
                                  f"{first[name]!r} and model {i} has {value!r}; train them in separate stacks")
    return ModelConfig.from_dict({**first, "latent": max(mc.latent for mc in model_configs)})


@dataclass
class _Member:
    """One model of a stack and the state its own `fit` would keep."""

    config: TrainConfig
    model: DenseAutoencoder
    data: TrainingData
    history: list[dict] = field(default_factory=list)
    best: dict = field(default_factory=lambda: {"loss": math.inf, "epoch": 0, "state": None})
    active: bool = True


def unstackable(model_config: ModelConfig, config: TrainConfig | None = None) -> str | None:
    """Why models of `model_config` trained under `config` cannot be stacked (a message that says
    what to do instead), or None when they can: layer norm is not stacked, and batch norm needs
    bn_images > 0 (the stack normalizes with batch statistics only; the models' statistics come
    from `close_epoch`'s recomputation, which bn_images=0 turns off)."""
    norms = {model_config.norm, model_config.decoder_normalization}
    if "layer" in norms:
        return ("stacked training supports norm and decoder_norm 'batch' or 'none', not 'layer'; "
                "train layer-norm models one at a time with fit")
    if config is not None and "batch" in norms and not config.bn_images:
        return ("stacked models with batch norm need training bn_images > 0 (e.g. 4096): their batch-norm "
                "statistics are recomputed after every epoch")
    return None


def check_stack(model_configs: Sequence[ModelConfig],
                jobs: Sequence[tuple[torch.Tensor, torch.Tensor, TrainConfig]]) -> ModelConfig:
    """Refuse jobs that cannot share a stack: none at all, not one model config per job, models
    that differ in more than the latent size, batch norm without bn_images, a TrainConfig field
    of STACK_FIELDS that differs (named, with both values), or training splits of different
    sizes. Returns the stack's architecture (`stack_envelope`)."""
    if not jobs:
        raise ConfigError("fit_stacked needs at least one (x_train, x_val, TrainConfig) job")
    if len(model_configs) != len(jobs):
        raise ConfigError(f"fit_stacked got {len(model_configs)} model configs for {len(jobs)} jobs; "
                          "give one ModelConfig for all or one per job")
    envelope = stack_envelope(model_configs)
    first = jobs[0][2]
    reason = unstackable(envelope, first)
    if reason:
        raise ConfigError(reason)
    for i, (x_train, _, config) in enumerate(jobs[1:], start=1):
        for name in STACK_FIELDS:
            if getattr(config, name) != getattr(first, name):
                raise ConfigError(f"stacked models must share training {name}: job 0 has {getattr(first, name)!r}, "
                                  f"job {i} has {getattr(config, name)!r}; train them in separate stacks")
        if len(x_train) != len(jobs[0][0]):
            raise ConfigError(f"stacked models need training splits of one size: job 0 has {len(jobs[0][0])} "
                              f"images, job {i} has {len(x_train)}")
    return envelope


@restores_cpu_settings
def fit_stacked(model_config: ModelConfig | Sequence[ModelConfig],
                jobs: Sequence[tuple[torch.Tensor, torch.Tensor, TrainConfig]],
                progress: bool | None = None,
                on_epoch: Callable[[int, dict, DenseAutoencoder], None] | None = None,
                cuda_graphs: bool | None = None, checkpoint_path: str | Path | None = None,
                checkpoint_seconds: float | None = None) -> list[TrainResult]:
    """Train one autoencoder of `model_config` per job (x_train, x_val, config), all at once;
    model_config may also be one ModelConfig per job, differing only in the latent size.

    x_train, x_val: (N, D) pixels in [0, 1] as for `fit` (every job the same N for training);
    the configs must agree on STACK_FIELDS (`check_stack`). on_epoch(k, row, model) is called
    after each epoch of job k with its history row and its model (unstacked, train mode). Returns
    one TrainResult per job, in order, as `fit` would (best weights, eval mode); each history's
    train_seconds and seconds, and each result's seconds, are those of the whole stack.
    cuda_graphs: replay each full batch's stacked forward and backward (True) or its whole step
    ("step", when no job adds input noise) as CUDA graphs, as in `fit`.
    checkpoint_path: save the whole stack's training state there (atomically) after an epoch when
    checkpoint_seconds have passed since the last save (`training.checkpoint_interval`: default
    30 s, 0 every epoch) and resume from it when it exists, so an interrupted stack ends with the
    numbers of an uninterrupted one (the same jobs in the same order).
    """
    configs = [model_config] * len(jobs) if isinstance(model_config, ModelConfig) else list(model_config)
    model_config = check_stack(configs, jobs)  # the stack's architecture: the widest latent
    every = checkpoint_interval(checkpoint_seconds)
    for mc, (x_train, x_val, c) in zip(configs, jobs):
        check_inputs(mc, x_train, x_val, c.batch_size)
    config = jobs[0][2]
    device, precision = prepare(config.device, config.threads, config.precision)
    graphs = use_cuda_graphs(cuda_graphs, device)
    members = [_Member(c, init_model(mc, c.seed, device), TrainingData.build(x, v, c, device))
               for mc, (x, v, c) in zip(configs, jobs)]
    stack = StackedAutoencoder([m.model for m in members]).to(device)
    peak_lr = config.lr or default_lr(model_config.depth)
    optimizer = torch.optim.Adam(stack.parameters(), lr=peak_lr, fused=device.type in ("cpu", "cuda"))
    l1 = torch.tensor([m.config.l1 for m in members], device=device)
    l2 = torch.tensor([m.config.l2 for m in members], device=device)
    any_l1, any_l2 = any(m.config.l1 for m in members), any(m.config.l2 for m in members)
    weighted = any(isinstance(m.config.noise_var, tuple) for m in members)  # a blind denoiser weights images

    start_epoch, elapsed = 0, 0.0
    if checkpoint_path is not None and Path(checkpoint_path).exists():
        start_epoch, elapsed, started_in = load_stack_checkpoint(checkpoint_path, stack, optimizer, members)
        precision = started_in or precision  # as fit: go on in the precision it began in

    n, batch = len(members[0].data.x_train), config.batch_size
    eager = stack.forward  # kept for the epoch's last, smaller batch when the full ones replay graphs
    full = eager
    if graphs == "step" and any(m.config.noise_var is not None for m in members):
        graphs = True  # fresh noise every step: only the forward and backward passes are graphed
    loss_sums = torch.zeros(len(members), device=device)

    def train_step(index: torch.Tensor, lr: float | torch.Tensor) -> None:  # index: (models, batch) rows
        cleans, inputs, weights = [], [], []
        for k, m in enumerate(members):  # each model's own batch and noise, as in its fit
            clean = m.data.x_train.index_select(0, index[k])
            noisy, w = corrupt_weighted(clean, m.config, m.data.noise_gen)
            cleans.append(clean)
            inputs.append(noisy)
            if weighted:
                weights.append(torch.ones(len(clean), device=device) if w is None else w)
        clean = torch.stack(cleans).transpose(1, 2)  # (K, D, batch)
        x_in = torch.stack(inputs).transpose(1, 2).contiguous()
        with autocast(device, precision, cache=not graphs):
            code, out = (full if clean.shape[2] == batch else eager)(x_in)
        per_image = per_image_loss(out, clean, config.loss)  # (K, batch)
        objective = (torch.stack(weights) * per_image if weighted else per_image).mean(1)
        if any_l1:
            objective = objective + l1 * code.float().abs().sum(1).mean(1)
        total = objective.sum()
        if any_l2:
            total = total + (l2 * stack.weight_sq_norms()).sum()
        total.backward()
        adam_step(optimizer, lr)
        loss_sums.add_(objective.detach() * clean.shape[2])

    replay = None  # a graph of the whole step, for the full batches
    if graphs and n >= batch:
        if graphs == "step":
            index = torch.arange(batch, device=device).expand(len(members), batch)
            replay = graph_step(train_step, index, stack, optimizer, extra=[loss_sums])
        else:
            full = graph_forward(stack, torch.zeros(len(members), model_config.input_dim, batch, device=device),
                                 precision)
    steps_per_epoch = math.ceil(n / batch)
    total_steps = config.epochs * steps_per_epoch
    bars, bar = progress_bar(config.epochs, f"train x{len(members)}", start_epoch, shown(progress))
    step = start_epoch * steps_per_epoch
    saved_at = time.perf_counter()
    for epoch in range(start_epoch, config.epochs):
        for m in members:
            if m.active and patience_exhausted(config, epoch, m.best["epoch"]):
                m.active = False
        if not any(m.active for m in members):
            break
        t0 = time.perf_counter()
        perms = torch.stack([torch.randperm(n, device=device, generator=m.data.batch_gen) for m in members])
        loss_sums.zero_()
        for i in range(0, n, batch):
            lr = learning_rate(config, step, total_steps, peak_lr, model_config.depth)
            index = perms[:, i:i + batch]
            (replay if replay is not None and index.shape[1] == batch else train_step)(index, lr)
            step += 1
        train_seconds = time.perf_counter() - t0
        stack.unstack_into([m.model for m in members])
        means = (loss_sums / n).tolist()
        for k, m in enumerate(members):
            if not m.active:
                continue
            m.model.train()
            row = close_epoch(m.model, m.config, m.data, precision, means[k], epoch, lr, peak_lr, m.best)
            m.history.append(row)
        seconds = time.perf_counter() - t0
        elapsed += seconds
        for k, m in enumerate(members):
            if m.active:
                m.history[-1].update(train_seconds=round(train_seconds, 4), seconds=round(seconds, 4))
                if on_epoch is not None:
                    on_epoch(k, m.history[-1], m.model)
        if checkpoint_path is not None and time.perf_counter() - saved_at >= every:
            save_stack_checkpoint(checkpoint_path, stack, optimizer, members, epoch + 1, elapsed, precision)
            saved_at = time.perf_counter()
        bars.update(bar, advance=1)
    bars.close()
    results = []
    for m in members:
        if m.best["state"] is not None:
            m.model.load_state_dict(m.best["state"])
        m.model.eval()
        results.append(TrainResult(model=m.model, history=m.history, best_epoch=m.best["epoch"],
                                   epochs_run=len(m.history), seconds=elapsed, precision=precision))
    return results
