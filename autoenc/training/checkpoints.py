"""Checkpoints of a training in progress: the whole state (weights, Adam's moments, RNG states,
history, best weights) in one safetensors file, written atomically, so an interrupted training
resumes with the same numbers. A checkpoint of another config or device type is refused."""
from __future__ import annotations

import json

import torch
from safetensors import safe_open
from safetensors.torch import load_file

from ..errors import ConfigError
from ..files import atomic_save_tensors
from ..model import FORMAT, ModelConfig


def _optimizer_tensors(optimizer: torch.optim.Optimizer) -> dict[str, torch.Tensor]:
    """The optimizer's per-parameter state as flat tensors named opt.<index>.<name>."""
    return {f"opt.{i}.{k}": v if torch.is_tensor(v) else torch.tensor(v)
            for i, state in optimizer.state_dict()["state"].items() for k, v in state.items()}


def _load_optimizer(optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], device) -> None:
    opt_state = optimizer.state_dict()
    state: dict = {}
    for key, value in tensors.items():
        if key.startswith("opt."):
            _, idx, name = key.split(".", 2)
            state.setdefault(int(idx), {})[name] = value if name == "step" else value.to(device)
    opt_state["state"] = state
    optimizer.load_state_dict(opt_state)


def read_checkpoint(path, model: dict | list, train: dict | list, device_type: str,
                    backend: str = "torch") -> tuple[dict, dict[str, torch.Tensor]]:
    """The checkpoint's metadata and tensors; ConfigError when the file is corrupt (a copy cut
    short, a full disk) or its format, its backend ("torch", "keras"), its configuration (model
    and training configs, as dicts) or its device type ("cpu", "cuda") differ."""
    try:
        with safe_open(str(path), framework="pt") as fh:
            meta = json.loads(fh.metadata()["autoenc"])
        tensors = load_file(path)
    except Exception as exc:  # safetensors raises several types for corrupt files
        raise ConfigError(f"{path} is not a readable checkpoint ({exc}); delete it to start the training "
                          f"afresh") from exc
    if meta.get("backend", "torch") != backend:
        raise ConfigError(f"{path} was written by a training with backend={meta.get('backend', 'torch')}; this one "
                          f"trains with backend={backend}: delete it to start afresh")
    meta = _check_meta(path, meta, model, train)
    if meta.get("device", device_type) != device_type:  # its RNG states and numbers are the other device's
        raise ConfigError(f"{path} was written by a training on {meta['device']}; this one trains on {device_type}: "
                          f"resume it on a machine with {meta['device']} (device: auto picks it there), or "
                          f"delete it to start afresh here")
    return meta, tensors


def _check_meta(path, meta: dict, model: dict | list, train: dict | list) -> dict:
    if meta.get("format") != FORMAT:
        raise ConfigError(f"{path} has checkpoint format {meta.get('format')!r}, this autoenc reads {FORMAT!r}; "
                          f"delete it to start afresh")
    if meta["model"] != model or meta["train"] != train:
        differ = "; ".join(_differences(meta["model"], model, "model") + _differences(meta["train"], train, "train"))
        raise ConfigError(f"{path} was written by a run with another configuration ({differ}); rerun with the "
                          f"settings it was written with to resume, or delete it to start afresh")
    return meta


def _differences(saved: dict | list, now: dict | list, what: str) -> list[str]:
    """The fields in which config dicts (or lists of them, a stack's) differ, as "train epochs 40
    (checkpoint: 50)"; [] when they are equal."""
    if isinstance(saved, list) or isinstance(now, list):
        if not (isinstance(saved, list) and isinstance(now, list) and len(saved) == len(now)):
            return [] if saved == now else [f"{what}: another stack"]
        return [d for k, (a, b) in enumerate(zip(saved, now)) for d in _differences(a, b, f"{what} of model {k + 1}")]
    return [f"{what} {key} {now.get(key)!r} (checkpoint: {saved.get(key)!r})"
            for key in sorted(set(saved) | set(now)) if saved.get(key) != now.get(key)]


def _prefixed(tensors: dict[str, torch.Tensor], prefix: str, device=None) -> dict[str, torch.Tensor]:
    return {k[len(prefix):]: v if device is None else v.to(device) for k, v in tensors.items() if k.startswith(prefix)}


def save_checkpoint(path, model, optimizer, batch_gen, noise_gen, model_config: ModelConfig,
                    train_config, epoch: int, elapsed: float, history: list[dict], best: dict,
                    precision: str | None = None) -> None:
    """Atomically save model, Adam state, RNG states, history and best weights after `epoch`, and
    the device type and resolved precision ("fp32" or "bf16") the training runs in."""
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    if best["state"] is not None:
        tensors.update({f"best.{k}": v for k, v in best["state"].items()})
    tensors.update(_optimizer_tensors(optimizer))
    tensors["rng.batch"] = batch_gen.get_state()
    tensors["rng.noise"] = noise_gen.get_state()
    meta = {"format": FORMAT, "epoch": epoch, "elapsed": elapsed, "history": history, "best_loss": best["loss"],
            "best_epoch": best["epoch"], "model": model_config.to_dict(), "train": train_config.to_dict(),
            "device": next(model.parameters()).device.type, "precision": precision}
    atomic_save_tensors(path, tensors, metadata={"autoenc": json.dumps(meta)})


def load_checkpoint(path, model, optimizer, batch_gen, noise_gen, model_config: ModelConfig,
                    train_config):
    """Restore what `save_checkpoint` wrote; returns (epoch, elapsed, history, best, precision),
    precision: the one the training ran in ("fp32", "bf16"; None in an older checkpoint), which
    the resumed training keeps ("auto" may resolve otherwise on this machine).

    Refuses a checkpoint made with another model or training config, or on another type of
    device (it would not resume the same run)."""
    device = next(model.parameters()).device
    meta, tensors = read_checkpoint(path, model_config.to_dict(), train_config.to_dict(), device.type)
    model.load_state_dict(_prefixed(tensors, "model."))
    _load_optimizer(optimizer, tensors, device)
    batch_gen.set_state(tensors["rng.batch"])
    noise_gen.set_state(tensors["rng.noise"])
    best = {"loss": meta["best_loss"], "epoch": meta["best_epoch"],
            "state": _prefixed(tensors, "best.", device) or None}
    return meta["epoch"], meta["elapsed"], meta["history"], best, meta.get("precision")


def save_stack_checkpoint(path, stack: torch.nn.Module, optimizer, members: list, epoch: int,
                          elapsed: float, precision: str | None = None) -> None:
    """Atomically save a stacked training (`stacked.fit_stacked`) after `epoch`: the stacked
    parameters, Adam state, and per model its weights and batch-norm statistics, RNG states,
    history, best weights and whether it still trains; and, as `save_checkpoint`, the device type
    and precision."""
    tensors = {f"stack.{k}": v for k, v in stack.state_dict().items()}
    tensors.update(_optimizer_tensors(optimizer))
    for k, m in enumerate(members):
        tensors.update({f"m{k}.model.{name}": v for name, v in m.model.state_dict().items()})
        if m.best["state"] is not None:
            tensors.update({f"m{k}.best.{name}": v for name, v in m.best["state"].items()})
        tensors[f"m{k}.rng.batch"] = m.data.batch_gen.get_state()
        tensors[f"m{k}.rng.noise"] = m.data.noise_gen.get_state()
    meta = {"format": FORMAT, "epoch": epoch, "elapsed": elapsed, "model": [m.model.config.to_dict() for m in members],
            "train": [m.config.to_dict() for m in members],
            "members": [{"history": m.history, "best_loss": m.best["loss"], "best_epoch": m.best["epoch"],
                         "active": m.active} for m in members],
            "device": next(stack.parameters()).device.type, "precision": precision}
    atomic_save_tensors(path, tensors, metadata={"autoenc": json.dumps(meta)})


def load_stack_checkpoint(path, stack: torch.nn.Module, optimizer, members: list) -> tuple[int, float, str | None]:
    """Restore what `save_stack_checkpoint` wrote into `stack`, `optimizer` and `members` (in
    place); returns (epochs done, elapsed seconds, precision as in `load_checkpoint`). Refuses a
    checkpoint of other models or training configs, in another order, or of another device type."""
    device = next(stack.parameters()).device
    meta, tensors = read_checkpoint(path, [m.model.config.to_dict() for m in members],
                                     [m.config.to_dict() for m in members], device.type)
    stack.load_state_dict(_prefixed(tensors, "stack."))
    _load_optimizer(optimizer, tensors, device)
    for k, (m, saved) in enumerate(zip(members, meta["members"])):
        m.model.load_state_dict(_prefixed(tensors, f"m{k}.model."))
        m.data.batch_gen.set_state(tensors[f"m{k}.rng.batch"])
        m.data.noise_gen.set_state(tensors[f"m{k}.rng.noise"])
        m.history, m.active = saved["history"], saved["active"]
        m.best = {"loss": saved["best_loss"], "epoch": saved["best_epoch"],
                  "state": _prefixed(tensors, f"m{k}.best.", device) or None}
    return meta["epoch"], meta["elapsed"], meta.get("precision")


def checkpoint_epochs(path) -> int:
    """The epoch budget (train config "epochs") recorded in checkpoint `path`; raises on a damaged file."""
    with safe_open(str(path), framework="pt") as fh:
        return json.loads(fh.metadata()["autoenc"])["train"]["epochs"]
