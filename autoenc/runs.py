"""Run folders: one trained model and everything about it, read and written atomically.

A run folder holds:
    config.json         everything needed to rebuild the model and repeat the training
    model.safetensors   the trained weights (never pickled); model.keras for a backend=keras run
    history.jsonl       one JSON line per epoch
    metrics.json        the evaluation (written by `autoenc evaluate` / the study)
    checkpoint.safetensors  the training state while a run is in progress (removed at the end)

`train_run` is the pipeline of one run: data -> model -> training -> evaluation -> folder.
"""
from __future__ import annotations

import json
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from safetensors import safe_open
from safetensors.torch import load_file

from . import data
from .errors import ConfigError
from .evaluation import baselines, evaluate, noise, reconstruct
from .evaluation.denoising import format_table, images_cell, progress_line, score_levels
from .figures import grid_indices, image_grid, plot_training_curves
from .files import atomic_save_tensors, atomic_write_json, atomic_write_text
from .model import FORMAT, DenseAutoencoder, ModelConfig
from .progress import bar as progress_bar
from .training import TrainConfig, checkpoint_epochs, fit

CONFIG, WEIGHTS, HISTORY, METRICS, CHECKPOINT = (
    "config.json", "model.safetensors", "history.jsonl", "metrics.json", "checkpoint.safetensors")
KERAS_MODEL = "model.keras"  # a backend=keras run's model, in its place


def weights_file(config: dict) -> str:
    """The file a run folder keeps its model in: model.safetensors (torch), or model.keras for a
    run whose config.json says "backend": "keras"."""
    return KERAS_MODEL if config.get("backend") == "keras" else WEIGHTS


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
    if config.get("backend") == "keras":
        model.save(path / KERAS_MODEL)  # a keras_backend.KerasAutoencoder
    else:
        atomic_save_tensors(path / WEIGHTS, model.state_dict(), metadata={"format": "pt", "autoenc": FORMAT})
    atomic_write_text(path / HISTORY, "".join(json.dumps(r) + "\n" for r in history))
    atomic_write_json(path / CONFIG, config)  # last: a folder with config.json is complete
    return path


def read_run(path: str | Path) -> Run:
    """Load a run folder written by `save_run` (no unpickling: JSON and safetensors only)."""
    path = Path(path)
    weights = WEIGHTS
    if (path / CONFIG).is_file():
        try:
            weights = weights_file(json.loads((path / CONFIG).read_text()))
        except (json.JSONDecodeError, AttributeError):
            pass  # refused below, naming the file
    if not (path / CONFIG).is_file() or not (path / weights).is_file():
        raise ConfigError(f"{path} is not a finished run folder: it needs {CONFIG} and {weights} "
                          f"({_folder_kind(path)})")
    try:
        config = json.loads((path / CONFIG).read_text())
        model_config = ModelConfig.from_dict(config["model"])
        TrainConfig.from_dict(config["train"])
        _check_run_config(config, model_config)
    except (json.JSONDecodeError, KeyError, TypeError, ConfigError) as exc:
        what = f"no {exc}" if isinstance(exc, KeyError) else str(exc)
        raise ConfigError(f"{path / CONFIG} is not a valid run config ({what}); {_retrain(path)}") from exc
    if weights == KERAS_MODEL:
        from .training import keras_backend  # imports Keras: only for a Keras run

        try:
            model = keras_backend.load(path / KERAS_MODEL, model_config)
        except ConfigError as exc:
            raise ConfigError(f"{exc}; {_retrain(path)}") from exc
    else:
        model = _torch_model(path, model_config)
    return Run(path=path, config=config, model=model, history=_history(path), metrics=_metrics(path))


def _torch_model(path: Path, model_config: ModelConfig) -> DenseAutoencoder:
    """The torch model of run folder `path` (model.safetensors), in eval mode on the CPU."""
    model = DenseAutoencoder(model_config)
    try:
        with safe_open(str(path / WEIGHTS), framework="pt") as fh:
            written = (fh.metadata() or {}).get("autoenc")
        if written == FORMAT:
            model.load_state_dict(load_file(path / WEIGHTS))
    except Exception as exc:  # safetensors raises several types for corrupt files
        raise ConfigError(f"{path / WEIGHTS} does not match {path / CONFIG} or is corrupt ({exc}); "
                          f"{_retrain(path)}") from exc
    if written != FORMAT:
        raise ConfigError(f"{path / WEIGHTS} has weights format {written!r}, this autoenc reads {FORMAT!r} "
                          f"(see FORMAT in autoenc/model.py); {_retrain(path)}")
    return model.eval()


def _history(path: Path) -> list[dict]:
    """A run folder's history.jsonl ([] when there is none)."""
    if not (path / HISTORY).is_file():
        return []
    try:
        return [json.loads(line) for line in (path / HISTORY).read_text().splitlines() if line.strip()]
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path / HISTORY} is not one JSON object per line ({exc}); delete it (the "
                          f"per-epoch history: the model does not need it) or {_retrain(path)}") from exc


def _metrics(path: Path) -> dict:
    """A run folder's metrics.json: the evaluation, rewritten by `autoenc evaluate` ({} when it is
    missing or unreadable: not yet written)."""
    try:
        metrics = json.loads((path / METRICS).read_text()) if (path / METRICS).is_file() else {}
    except json.JSONDecodeError:
        metrics = {}
    return metrics if isinstance(metrics, dict) else {}


def _retrain(path: Path) -> str:
    """How to train a run folder's model again: delete the folder, rerun what made it."""
    return (f"delete {path} and rerun the command that trained it (`autoenc train` with the same options, or the "
            f"study, which retrains a trial whose run folder is gone)")


def _folder_kind(path: Path) -> str:
    """What to do with a folder that is not a run folder, by what it holds: a study's, one of its
    trials', or anything else."""
    if (path / "study.yaml").is_file() or (path / "summary.json").is_file():
        return (f"it is a study folder: its autoencoders' run folders are {path / 'trials' / '<trial id>' / 'run'}, "
                f"and `autoenc report {path}` rebuilds its report")
    if (path / "run" / CONFIG).is_file():
        return f"it is a study trial's folder: its run folder is {path / 'run'}"
    if (path / "result.json").is_file():
        return "it is a study trial without a model (PCA or the classical baselines): its result.json holds its scores"
    return f"train one with `autoenc train hydra.run.dir={path}`"


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


def run_config(dataset: str, model_config: ModelConfig, train_config: TrainConfig,
               data_dir: str | Path | None = None, subset: dict[str, int] | None = None,
               backend: str = "torch") -> dict:
    """What a run folder's config.json records before training: dataset, image shape, model and
    training configs, the subset used, if any, for your own data its absolute path and its
    `data.fingerprint`, and for backend "keras" "backend": "keras" (a torch run records none)."""

    config = {
        "dataset": dataset,
        "image_shape": list(data.image_shape(dataset, data_dir)),
        "model": model_config.to_dict(),
        "train": train_config.to_dict(),
    }
    if backend == "keras":
        config["backend"] = "keras"
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
    weights = weights_file(config)
    if {k: existing.get(k) for k in config} == config and (out / weights).is_file():
        return read_run(out)
    differ = ", ".join("data_sha256 (the data at this path changed)" if k == "data_sha256" else k
                       for k in [*config, *(["backend"] if "backend" in existing and "backend" not in config else [])]
                       if existing.get(k) != config.get(k))
    if not differ:
        raise ConfigError(f"{out} holds {CONFIG} but no {weights}; delete the folder to train it again")
    raise ConfigError(f"{out} already holds a run with another configuration (it differs in {differ}); "
                      f"choose another folder (hydra.run.dir=...) or delete it")


def recorded_epochs(out: str | Path) -> int | None:
    """The epoch budget of the run in folder `out`: its config.json's, else its checkpoint's (an
    interrupted training); None when it holds neither, or they cannot be read."""
    out = Path(out)
    try:
        if (out / CONFIG).is_file():
            epochs = json.loads((out / CONFIG).read_text())["train"]["epochs"]
        elif (out / CHECKPOINT).is_file():
            epochs = checkpoint_epochs(out / CHECKPOINT)
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
    if config.get("backend") == "keras":
        config["keras"] = result.model.trained_with  # XLA or not, steps per call, versions
    save_run(out, result.model.cpu(), config, result.history)
    (out / CHECKPOINT).unlink(missing_ok=True)


def train_run(dataset: str, model_config: ModelConfig, train_config: TrainConfig, out: str | Path,
              data_dir: str | Path | None = None, progress: bool | None = None,
              evaluate_on: str | None = "test", subset: dict[str, int] | None = None,
              on_epoch=None, checkpoint_seconds: float | None = None, cuda_graphs: bool | str | None = None,
              backend: str = "torch") -> Run:
    """Train one autoencoder on `dataset`'s train split (early stopping on val) into run folder
    `out`, then evaluate it on `evaluate_on` (metrics.json and grid.png; None skips that).
    subset: use only the first n images of a split, e.g. {"train": 6000, "val": 1000}.
    on_epoch: called with each epoch's history row. backend: "torch" (`training.fit`) or "keras"
    (`training.keras_backend.fit`, which saves model.keras; cuda_graphs does not apply).

    An interrupted call resumes from out/checkpoint.safetensors and gives the same result; a
    folder that already holds a finished run with the same config is returned as it is, evaluated
    again when its metrics.json is missing (a call stopped between training and evaluation) or is
    not of `evaluate_on` with the default noise (`autoenc evaluate --split/--noise-var` rewrote it).
    Returns the loaded `Run`.
    """

    out = Path(out)
    config = run_config(dataset, model_config, train_config, data_dir, subset, backend)
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
        if backend == "keras":
            from .training import keras_backend

            result = keras_backend.fit(model_config, x_train, x_val, train_config, history_path=out / HISTORY,
                                       progress=progress, checkpoint_path=out / CHECKPOINT, on_epoch=on_epoch,
                                       checkpoint_seconds=checkpoint_seconds)
        else:
            result = fit(model_config, x_train, x_val, train_config, history_path=out / HISTORY,
                         progress=progress, checkpoint_path=out / CHECKPOINT, on_epoch=on_epoch,
                         checkpoint_seconds=checkpoint_seconds, cuda_graphs=cuda_graphs)
    except BaseException:
        if created and not any(out.iterdir()):  # refused before the first epoch (a --device without a GPU, a bad
            out.rmdir()                         # AUTOENC_CHECKPOINT_SECONDS): no empty run folder is left behind
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
    subset and `autoenc denoise` use them; metrics' "n_images" says how many.
    noise_var: score the model as a denoiser of the protocol's fixed test noise of this variance
    (sigma^2 on the [0, 1] scale); by default the denoiser's training variance is used for a
    denoiser, none for a plain autoencoder; 0 scores clean inputs. Returns the metrics dict (PSNR in dB).
    """

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
               **evaluate(run.model, x, y, shape, x_in=x_in, class_names=data.class_names(dataset)),
               **training_summary(run)}
    idx = grid_indices(len(x))
    inputs = x[idx] if x_in is None else x_in[idx]
    rows, labels = [x[idx]], ["original"]
    if x_in is not None:
        rows.append(inputs)
        labels.append(f"noisy σ²={noise_var:g}")
    rows.append(reconstruct(run.model, inputs))
    labels.append("output")
    image_grid(rows, shape, Path(path) / "grid.png", labels,
               title=f"{dataset} {split}: psnr {metrics['psnr']:.2f} dB")
    if run.history:
        epochs = [h["epoch"] for h in run.history]
        plot_training_curves({"validation": (epochs, [h["val_psnr"] for h in run.history])}, Path(path) / "curves.png",
                             title=f"{Path(path).name}: best epoch {run.config.get('best_epoch')}")
    atomic_write_json(Path(path) / METRICS, metrics)  # last: its presence means the run is scored
    return metrics


def training_summary(run: Run) -> dict:
    """What a run's training came to: val_psnr (dB, of the best epoch, on the validation inputs
    it selected on), best_epoch, epochs_run, train_seconds, parameters, device, precision."""
    best = run.config.get("best_epoch")
    rows = [h for h in run.history if h.get("epoch") == best]
    return {"val_psnr": rows[0]["val_psnr"] if rows else None,
            **{k: run.config.get(k) for k in ("best_epoch", "epochs_run", "train_seconds", "parameters", "device",
                                               "precision")}}


def denoise_run(run_dir: str | Path, variances: list[float], methods: list[str] | None = None, subset: int = 1000,
                seed: int = 0, data_dir: str | Path | None = None, progress: bool | None = None) -> str:
    """Evaluate the model of a run folder as a denoiser at each variance, beside the classical
    `methods` (None: all; [] none), on the test split of its dataset. Writes denoise.json, denoise.md
    and denoise_<var>.png into the run folder; returns the Markdown table.

    Every row is scored on the protocol's fixed noisy test images of its noise variance sigma^2
    (`noise.noisy_test_set`, seed `seed`) against the clean ones: psnr and psnr_dataset (dB on the
    [0, 1] scale) and ssim on the whole test split, except for a method that runs on the fixed
    subset of `subset` test images only (bm3d, about 30 ms per image: its row says "(subset)");
    subset_psnr (and subset_psnr_dataset, subset_ssim): every row, this model's included, on that
    same fixed subset (`baselines.subset_indices`), the number to compare with a subset-only row.
    progress: a bar over the (level, method) scores (default: only when stderr is a terminal;
    otherwise a line per finished one on stderr); False: silent. With every baseline and 5 levels
    this takes minutes (bm3d most of them).
    """
    run = read_run(run_dir)
    dataset, shape = run.config["dataset"], tuple(run.config["image_shape"])
    subset_cfg = run.config.get("subset", {})
    x_train, _ = data.load(dataset, "train", data_dir)
    x_val, _ = data.load(dataset, "val", data_dir)
    x_test, _ = data.load(dataset, "test", data_dir)
    x_train, x_val, x_test = (x_train[:subset_cfg.get("train")], x_val[:subset_cfg.get("val")],
                              x_test[:subset_cfg.get("test")])
    subset = min(subset, len(x_test))
    names = list(baselines.METHODS if methods is None else methods)
    unknown = [m for m in names if m not in baselines.METHOD_INFO]
    if unknown:  # before any scoring, not minutes into it
        raise ConfigError(f"unknown baseline {', '.join(map(repr, unknown))}; "
                          f"choose from {', '.join(baselines.METHODS)}")
    show = sys.stderr.isatty() if progress is None else progress
    log = progress is None and not show  # to a file or pipe: a line per finished score instead of the bar
    total = len(variances) * (1 + len(names))
    bars, bar = progress_bar(total, "denoise", 0, show)
    clock = {"t": time.perf_counter(), "done": 0}

    def finished(row: dict, next_method: str | None) -> None:
        bars.update(bar, advance=1)
        clock["done"] += 1
        if next_method is not None:
            bars.update(bar, info=f"σ²={row['noise_var']:g} {next_method}")
        if log:
            now = time.perf_counter()
            print(progress_line(clock["done"], total, row, now - clock["t"]), file=sys.stderr, flush=True)
            clock["t"] = now

    rows = []
    pca = baselines.denoising_pca(x_train) if "pca" in names else None  # once, not once per level
    try:
        for var in variances:
            bars.update(bar, info=f"σ²={var:g} this model")
            score = score_levels(run.model, x_test, [var], shape, seed=seed, subset=subset, grid_dir=Path(run_dir),
                                 title=Path(run_dir).name)[0]
            rows.append({"method": "this model", "detail": Path(run_dir).name, "subset": False, **score})
            finished(rows[-1], names[0] if names else None)
            if not names:
                continue

            def on_result(b: baselines.BaselineResult, var=var) -> None:
                rows.append({"noise_var": var, "sigma": math.sqrt(var), **b.to_dict()})
                later = names[names.index(b.method) + 1:]
                finished(rows[-1], later[0] if later else None)

            baselines.denoising_baselines(x_train, x_val, x_test, var, shape, seed=seed, methods=names,
                                          subset=subset, on_result=on_result, pca=pca)
    finally:
        bars.close()
    atomic_write_json(Path(run_dir) / "denoise.json", rows)
    cols = ["noise_var", "sigma", "method", "detail", "images", "psnr", "psnr_dataset", "ssim", "subset_psnr"]
    shown = [{**r, "images": images_cell(r)} for r in rows]
    on_subset = (f"; subset_psnr: every row on the same fixed subset of {subset:,} test images, to compare with "
                 f"the (subset) rows" if subset else "")
    table = (f"Denoising on the {dataset} test split: each row's output against the clean images, from the fixed "
             f"noisy test images of its noise_var (sigma^2); psnr (mean per-image PSNR), psnr_dataset (dB) and "
             f"ssim on the test images in 'images' (the whole split, or only the fixed subset the slow baselines "
             f"run on, marked (subset)){on_subset}\n\n" + format_table(shown, cols))
    atomic_write_text(Path(run_dir) / "denoise.md", table + "\n")
    return table
