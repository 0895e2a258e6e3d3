"""Run folders and checkpoints, always written atomically (temp file, fsync, rename).

A run folder holds:
    config.json         everything needed to rebuild the model and repeat the training
    model.safetensors   the trained weights (never pickled)
    history.jsonl       one JSON line per epoch
    metrics.json        the evaluation (written by `aelab evaluate` / the study)
    checkpoint.safetensors  the training state while a run is in progress (removed at the end)
"""
from __future__ import annotations

import glob
import json
import os
import socket
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from .errors import ConfigError
from .model import DenseAutoencoder, ModelConfig
from .training import TrainConfig

CONFIG, WEIGHTS, HISTORY, METRICS, CHECKPOINT = (
    "config.json", "model.safetensors", "history.jsonl", "metrics.json", "checkpoint.safetensors")
# The layout of weights and checkpoints; files of another format are refused with what to do.
# 2: no bias in the dense layers in front of batch norm (1: with one).
FORMAT = "2"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _temp_beside(path: Path) -> tuple[int, str]:
    """A temp file next to `path`, with the permissions a plain open() would give (mkstemp: 0600),
    named for this host and process: ".NAME.HOST-PID.XXXX.tmp". Temp files of `path` that a process
    of this host left when it was killed mid-write (a stack's checkpoint is 236 MB) are removed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    owner = f"{socket.gethostname()}-"
    for stale in path.parent.glob(f".{glob.escape(path.name)}.{glob.escape(owner)}*.tmp"):
        pid = stale.name[len(path.name) + len(owner) + 2:].split(".", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            stale.unlink(missing_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{owner}{os.getpid()}.", suffix=".tmp")
    os.chmod(tmp, 0o666 & ~_umask())
    return fd, tmp


def _alive(pid: int) -> bool:
    """Whether process `pid` of this host exists."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's
        return True
    return True


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write `data` to `path` so that readers see the old file or the new one, never a part."""
    fd, tmp = _temp_beside(Path(path))
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    """Atomically write a UTF-8 text file."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, obj) -> None:
    """Atomically write `obj` as indented JSON."""
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def atomic_save_tensors(path: str | Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> None:
    """Atomically write tensors to a .safetensors file (CPU copies; metadata is str -> str)."""
    fd, tmp = _temp_beside(Path(path))
    os.close(fd)
    try:
        save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, tmp, metadata=metadata)
        os.chmod(tmp, 0o666 & ~_umask())  # safetensors recreates the file as 0600
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@dataclass
class Run:
    """A loaded run folder: its path, config dict, model (eval mode, CPU), history and metrics."""

    path: Path
    config: dict
    model: DenseAutoencoder
    history: list[dict] = field(default_factory=list)
    metrics: dict = field(default_factory=dict)

    @property
    def model_config(self) -> ModelConfig:
        """The architecture the run trained."""
        return self.model.config

    @property
    def train_config(self) -> TrainConfig:
        """The training config the run trained with (config.json's "train")."""
        return TrainConfig.from_dict(self.config["train"])


def save_run(path: str | Path, model: DenseAutoencoder, config: dict, history: list[dict]) -> Path:
    """Write config.json, model.safetensors and history.jsonl of a finished training into `path`.

    `config` must hold "model" (ModelConfig.to_dict()) and "train" (TrainConfig.to_dict()); other
    keys (dataset, image_shape, seconds, ...) are kept as they are. Returns the folder.
    """
    path = Path(path)
    atomic_save_tensors(path / WEIGHTS, model.state_dict(), metadata={"format": "pt", "aelab": FORMAT})
    atomic_write_text(path / HISTORY, "".join(json.dumps(r) + "\n" for r in history))
    atomic_write_json(path / CONFIG, config)  # last: a folder with config.json is complete
    return path


def read_run(path: str | Path) -> Run:
    """Load a run folder written by `save_run` (no unpickling: JSON and safetensors only)."""
    path = Path(path)
    if not (path / CONFIG).is_file() or not (path / WEIGHTS).is_file():
        raise ConfigError(f"{path} is not a finished run folder: it needs {CONFIG} and {WEIGHTS} "
                          f"({_folder_kind(path)})")
    try:
        config = json.loads((path / CONFIG).read_text())
        model = DenseAutoencoder(ModelConfig.from_dict(config["model"]))
        TrainConfig.from_dict(config["train"])
        _check_run_config(config, model.config)
    except (json.JSONDecodeError, KeyError, TypeError, ConfigError) as exc:
        what = f"no {exc}" if isinstance(exc, KeyError) else str(exc)
        raise ConfigError(f"{path / CONFIG} is not a valid run config ({what}); {_retrain(path)}") from exc
    try:
        with safe_open(str(path / WEIGHTS), framework="pt") as fh:
            written = (fh.metadata() or {}).get("aelab")
        if written == FORMAT:
            model.load_state_dict(load_file(path / WEIGHTS))
    except Exception as exc:  # safetensors raises several types for corrupt files
        raise ConfigError(f"{path / WEIGHTS} does not match {path / CONFIG} or is corrupt ({exc}); "
                          f"{_retrain(path)}") from exc
    if written != FORMAT:
        raise ConfigError(f"{path / WEIGHTS} has weights format {written!r}, this aelab reads {FORMAT!r} "
                          f"(see FORMAT in aelab/runs.py); {_retrain(path)}")
    model.eval()
    history = []
    if (path / HISTORY).is_file():
        try:
            history = [json.loads(line) for line in (path / HISTORY).read_text().splitlines() if line.strip()]
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{path / HISTORY} is not one JSON object per line ({exc}); delete it (the "
                              f"per-epoch history: the model does not need it) or {_retrain(path)}") from exc
    try:  # the evaluation, rewritten by `aelab evaluate`: unreadable counts as not yet written
        metrics = json.loads((path / METRICS).read_text()) if (path / METRICS).is_file() else {}
    except json.JSONDecodeError:
        metrics = {}
    metrics = metrics if isinstance(metrics, dict) else {}
    return Run(path=path, config=config, model=model, history=history, metrics=metrics)


def _retrain(path: Path) -> str:
    """How to train a run folder's model again: delete the folder, rerun what made it."""
    return (f"delete {path} and rerun the command that trained it (`aelab train` with the same options, or the "
            f"study, which retrains a trial whose run folder is gone)")


def _folder_kind(path: Path) -> str:
    """What to do with a folder that is not a run folder, by what it holds: a study's, one of its
    trials', or anything else."""
    if (path / "study.yaml").is_file() or (path / "summary.json").is_file():
        return (f"it is a study folder: its autoencoders' run folders are {path / 'trials' / '<trial id>' / 'run'}, "
                f"and `aelab report {path}` rebuilds its report")
    if (path / "run" / CONFIG).is_file():
        return f"it is a study trial's folder: its run folder is {path / 'run'}"
    if (path / "result.json").is_file():
        return "it is a study trial without a model (PCA or the classical baselines): its result.json holds its scores"
    return f"train one with `aelab train --out {path}`"


def _check_run_config(config: dict, model_config: ModelConfig) -> None:
    """ConfigError unless a run config's dataset is a name or path and its image_shape two whole
    numbers of pixels, (height, width), with the model's input size as their product."""
    if not isinstance(config["dataset"], str):
        raise ConfigError(f"dataset={config['dataset']!r}: must be a dataset name or path")
    shape = config["image_shape"]
    if not (isinstance(shape, list) and len(shape) == 2
            and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in shape)
            and shape[0] * shape[1] == model_config.input_dim):
        raise ConfigError(f"image_shape={shape!r}: must be [height, width] in pixels with height x width = "
                          f"the model's input_dim {model_config.input_dim}")


def load_run(path: str | Path) -> DenseAutoencoder:
    """The trained model of a run folder, in eval mode on the CPU."""
    return read_run(path).model


# ---- checkpoints: the whole training state, so an interrupted training resumes exactly ----

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


def _read_checkpoint(path, model: dict | list, train: dict | list,
                     device_type: str) -> tuple[dict, dict[str, torch.Tensor]]:
    """The checkpoint's metadata and tensors; ConfigError when the file is corrupt (a copy cut
    short, a full disk) or its format, its configuration (model and training configs, as dicts)
    or its device type ("cpu", "cuda") differ."""
    try:
        with safe_open(str(path), framework="pt") as fh:
            meta = json.loads(fh.metadata()["aelab"])
        tensors = load_file(path)
    except Exception as exc:  # safetensors raises several types for corrupt files
        raise ConfigError(f"{path} is not a readable checkpoint ({exc}); delete it to start the training "
                          f"afresh") from exc
    meta = _check_meta(path, meta, model, train)
    if meta.get("device", device_type) != device_type:  # its RNG states and numbers are the other device's
        raise ConfigError(f"{path} was written by a training on {meta['device']}; this one trains on {device_type}: "
                          f"resume it on a machine with {meta['device']} (device: auto picks it there), or "
                          f"delete it to start afresh here")
    return meta, tensors


def _check_meta(path, meta: dict, model: dict | list, train: dict | list) -> dict:
    if meta.get("format") != FORMAT:
        raise ConfigError(f"{path} has checkpoint format {meta.get('format')!r}, this aelab reads {FORMAT!r}; "
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
                    train_config: TrainConfig, epoch: int, elapsed: float, history: list[dict], best: dict,
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
    atomic_save_tensors(path, tensors, metadata={"aelab": json.dumps(meta)})


def load_checkpoint(path, model, optimizer, batch_gen, noise_gen, model_config: ModelConfig,
                    train_config: TrainConfig):
    """Restore what `save_checkpoint` wrote; returns (epoch, elapsed, history, best, precision),
    precision: the one the training ran in ("fp32", "bf16"; None in an older checkpoint), which
    the resumed training keeps ("auto" may resolve otherwise on this machine).

    Refuses a checkpoint made with another model or training config, or on another type of
    device (it would not resume the same run)."""
    device = next(model.parameters()).device
    meta, tensors = _read_checkpoint(path, model_config.to_dict(), train_config.to_dict(), device.type)
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
    atomic_save_tensors(path, tensors, metadata={"aelab": json.dumps(meta)})


def load_stack_checkpoint(path, stack: torch.nn.Module, optimizer, members: list) -> tuple[int, float, str | None]:
    """Restore what `save_stack_checkpoint` wrote into `stack`, `optimizer` and `members` (in
    place); returns (epochs done, elapsed seconds, precision as in `load_checkpoint`). Refuses a
    checkpoint of other models or training configs, in another order, or of another device type."""
    device = next(stack.parameters()).device
    meta, tensors = _read_checkpoint(path, [m.model.config.to_dict() for m in members],
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


# ---- the pipeline of one run: data -> model -> training -> evaluation ----

def run_config(dataset: str, model_config: ModelConfig, train_config: TrainConfig,
               data_dir: str | Path | None = None, subset: dict[str, int] | None = None) -> dict:
    """What a run folder's config.json records before training: dataset, image shape, model and
    training configs, the subset used, if any, and for your own data its absolute path and its
    `data.fingerprint`."""
    from . import data

    config = {
        "dataset": dataset,
        "image_shape": list(data.image_shape(dataset, data_dir)),
        "model": model_config.to_dict(),
        "train": train_config.to_dict(),
    }
    if subset:
        config["subset"] = dict(sorted(subset.items()))
    if (fingerprint := data.fingerprint(dataset, data_dir)) is not None:  # your own data: where, and what it held
        config["dataset"] = str(Path(dataset).expanduser().resolve())  # evaluate works from any folder
        config["data_sha256"] = fingerprint
    return config


def finished_run(out: str | Path, config: dict) -> Run | None:
    """The finished run in folder `out` if it was made with `config` (`run_config`), None when
    there is none; ConfigError when the folder holds a run with another configuration."""
    out = Path(out)
    if not (out / CONFIG).is_file():
        return None
    try:
        existing = json.loads((out / CONFIG).read_text())
    except json.JSONDecodeError as exc:
        existing = None
        reason = str(exc)
    if not isinstance(existing, dict):
        raise ConfigError(f"{out / CONFIG} is not a valid run config "
                          f"({reason if existing is None else 'not a JSON object'}); delete the folder to train "
                          f"the run again")
    if {k: existing.get(k) for k in config} == config and (out / WEIGHTS).is_file():
        return read_run(out)
    differ = ", ".join("data_sha256 (the data at this path changed)" if k == "data_sha256" else k
                       for k in config if existing.get(k) != config[k])
    if not differ:
        raise ConfigError(f"{out} holds {CONFIG} but no {WEIGHTS}; delete the folder to train it again")
    raise ConfigError(f"{out} already holds a run with another configuration (it differs in {differ}); "
                      f"choose another --out or delete the folder")


def recorded_epochs(out: str | Path) -> int | None:
    """The epoch budget of the run in folder `out`: its config.json's, else its checkpoint's (an
    interrupted training); None when it holds neither, or they cannot be read."""
    out = Path(out)
    try:
        if (out / CONFIG).is_file():
            epochs = json.loads((out / CONFIG).read_text())["train"]["epochs"]
        elif (out / CHECKPOINT).is_file():
            with safe_open(str(out / CHECKPOINT), framework="pt") as fh:
                epochs = json.loads(fh.metadata()["aelab"])["train"]["epochs"]
        else:
            return None
    except Exception:  # damaged: the training itself says so, naming the file
        return None
    return epochs if isinstance(epochs, int) and not isinstance(epochs, bool) else None


def finish_run(out: str | Path, config: dict, result) -> None:
    """Save a finished training (`training.TrainResult`) into run folder `out` with its
    `run_config` and results (best and run epochs, training seconds, parameters, device,
    precision), and remove the folder's checkpoint."""
    out = Path(out)
    config = {**config, "best_epoch": result.best_epoch, "epochs_run": result.epochs_run,
              "train_seconds": round(result.seconds, 3), "parameters": result.model.num_parameters(),
              "device": str(next(result.model.parameters()).device), "precision": result.precision}
    save_run(out, result.model.cpu(), config, result.history)
    (out / CHECKPOINT).unlink(missing_ok=True)


def train_run(dataset: str, model_config: ModelConfig, train_config: TrainConfig, out: str | Path,
              data_dir: str | Path | None = None, progress: bool | None = None,
              evaluate_on: str | None = "test", subset: dict[str, int] | None = None,
              on_epoch=None) -> Run:
    """Train one autoencoder on `dataset`'s train split (early stopping on val) into run folder
    `out`, then evaluate it on `evaluate_on` (metrics.json and grid.png; None skips that).
    subset: use only the first n images of a split, e.g. {"train": 6000, "val": 1000}.
    on_epoch: called with each epoch's history row.

    An interrupted call resumes from out/checkpoint.safetensors and gives the same result; a
    folder that already holds a finished run with the same config is returned as it is, evaluated
    again when its metrics.json is missing (a call stopped between training and evaluation) or is
    not of `evaluate_on` with the default noise (`aelab evaluate --split/--noise-var` rewrote it).
    Returns the loaded `Run`.
    """
    from . import data
    from .training import fit

    out = Path(out)
    config = run_config(dataset, model_config, train_config, data_dir, subset)
    done = finished_run(out, config)
    if done is not None:
        wanted = {"split": evaluate_on, "noise_var": default_noise_var(done.config)}
        if evaluate_on is None or {k: done.metrics.get(k) for k in wanted} == wanted:
            return done
        evaluate_run(out, split=evaluate_on, data_dir=data_dir)
        return read_run(out)
    x_train, _ = data.load(dataset, "train", data_dir)
    x_val, _ = data.load(dataset, "val", data_dir)
    subset = subset or {}
    x_train, x_val = x_train[:subset.get("train")], x_val[:subset.get("val")]
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    try:
        result = fit(model_config, x_train, x_val, train_config, history_path=out / HISTORY,
                     progress=progress, checkpoint_path=out / CHECKPOINT, on_epoch=on_epoch)
    except BaseException:
        if created and not any(out.iterdir()):  # refused before the first epoch (a --device without a GPU, a bad
            out.rmdir()                         # AELAB_CHECKPOINT_SECONDS): no empty run folder is left behind
        raise
    finish_run(out, config, result)
    if evaluate_on is not None:
        evaluate_run(out, split=evaluate_on, data_dir=data_dir)
    return read_run(out)


def default_noise_var(config: dict) -> float | None:
    """The noise variance (sigma^2) a run is scored at by default: a per-level denoiser's training
    variance, None (clean inputs) for a plain autoencoder or a blind denoiser (a range)."""
    train_noise = TrainConfig.from_dict(config["train"]).noise_var  # as checked: "0.09" -> 0.09
    return None if isinstance(train_noise, tuple) else train_noise


def evaluate_run(path: str | Path, split: str = "test", data_dir: str | Path | None = None,
                 noise_var: float | None = None, seed: int = 0) -> dict:
    """Evaluate a run folder on a split of its dataset and write metrics.json and grid.png.

    A run trained on a subset (config.json's "subset", e.g. a study trial's {"test": 1000}) is
    scored on the first n images of the split when the subset names it, as the study, `train_run`'s
    subset and `aelab denoise` use them; metrics' "n_images" says how many.
    noise_var: score the model as a denoiser of the protocol's fixed test noise of this variance
    (sigma^2 on the [0, 1] scale); by default the denoiser's training variance is used for a
    denoiser, none for a plain autoencoder; 0 scores clean inputs. Returns the metrics dict (PSNR in dB).
    """
    from . import data, noise
    from .evaluation import evaluate
    from .figures import grid_indices, image_grid

    run = read_run(path)
    dataset = run.config["dataset"]
    shape = tuple(run.config["image_shape"])
    x, y = data.load(dataset, split, data_dir)
    n = run.config.get("subset", {}).get(split)
    x, y = x[:n], None if y is None else y[:n]
    if noise_var is None:
        noise_var = default_noise_var(run.config)
    elif noise.check_variance(noise_var, name="noise_var") == 0:
        noise_var = None  # 0: clean inputs (a per-level denoiser's default is its own variance)
    x_in = None if noise_var is None else noise.noisy_test_set(x, noise_var, seed=seed)
    metrics = {"split": split, "dataset": dataset, "noise_var": noise_var,
               **evaluate(run.model, x, y, shape, x_in=x_in, class_names=data.class_names(dataset))}
    atomic_write_json(Path(path) / METRICS, metrics)
    idx = grid_indices(len(x))
    from .evaluation import reconstruct
    inputs = x[idx] if x_in is None else x_in[idx]
    rows, labels = [x[idx]], ["original"]
    if x_in is not None:
        rows.append(inputs)
        labels.append(f"noisy σ²={noise_var:g}")
    rows.append(reconstruct(run.model, inputs))
    labels.append("output")
    image_grid(rows, shape, Path(path) / "grid.png", labels,
               title=f"{dataset} {split}: psnr {metrics['psnr']:.2f} dB")
    return metrics
