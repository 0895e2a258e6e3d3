"""What one study trial does: train and evaluate an autoencoder, fit PCA, or run the classical
denoisers at one noise variance. Each writes <study>/trials/<id>/result.json atomically, last.

`run_trial` is self-contained (a trial dict in, a result dict out), so any worker can run it: the
main process, a local worker process, or a Ray worker.
"""
from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

import numpy as np
import torch

from .. import data
from ..evaluation import baselines, evaluate, image_metrics, noise, psnr, reconstruct
from ..evaluation.denoising import score_levels
from ..figures import grid_indices, image_grid
from ..files import atomic_write_json
from ..model import ModelConfig
from ..runs import finish_run, finished_run, read_run, run_config, train_run
from ..training import TrainConfig, resolve_device
from ..training.loop import default_lr, default_warmup
from ..training.device import restores_cpu_settings
from ..training.stacked import fit_stacked

RESULT = "result.json"
TRAIN_EVAL_IMAGES = 10_000  # training images scored for the train/test gap


def trial_dir(study_dir: str | Path, trial_id: str) -> Path:
    """The folder of one trial inside a study folder."""
    return Path(study_dir) / "trials" / trial_id


def finished_result(study_dir: str | Path, trial: dict) -> dict | None:
    """The stored result of `trial` if it finished (ok or failed) with the same spec, else None."""
    path = trial_dir(study_dir, trial["id"]) / RESULT
    if not path.is_file():
        return None
    try:
        result = json.loads(path.read_text())
    except json.JSONDecodeError:
        return None
    return result if isinstance(result, dict) and result.get("trial") == identity(trial) else None


def identity(trial: dict) -> dict:
    """What a trial computes (a `plan.Trial.to_dict()`): the job without its "runtime"."""
    return {k: v for k, v in trial.items() if k != "runtime"}


def _split(dataset: str, split: str, context: dict, data_dir) -> tuple[torch.Tensor, torch.Tensor | None]:
    x, y = data.load(dataset, split, data_dir)
    n = context["subset"].get(split)
    return (x[:n], None if y is None else y[:n]) if n else (x, y)


def runtime(trial: dict) -> dict:
    """How a trial's training runs, not what it computes (so not part of its id): the job's
    "runtime" {checkpoint_seconds, cuda_graphs}, as `fit` takes them."""
    return {k: v for k, v in trial.get("runtime", {}).items() if k in ("checkpoint_seconds", "cuda_graphs")}


@restores_cpu_settings  # the trial's thread count: run inline, in the study's own process, it stays there
def run_trial(trial: dict, study_dir: str | Path, data_dir: str | Path | None = None, events=None,
              progress: bool | None = False) -> dict:
    """Run one trial (a `study.Trial.to_dict()`) and return its result row.

    The result is also written to <study_dir>/trials/<id>/result.json (atomically, last), so a
    finished trial is never run again. events: an optional queue; per-epoch progress messages
    (trial id, epoch, epochs, val psnr) are put there. Errors propagate to the caller."""
    done = finished_result(study_dir, trial)
    if done is not None and done.get("status") == "ok":
        return done
    folder = trial_dir(study_dir, trial["id"])
    folder.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(trial["spec"]["context"]["threads"])
    t0, started = time.perf_counter(), time.time()
    trained = None
    if trial["kind"] == "ae":
        spec, ctx = trial["spec"], trial["spec"]["context"]
        if spec.get("backend") == "keras":  # TensorFlow's threads, before its first operation in this process
            from ..training import keras_backend

            keras_backend.set_threads(ctx["threads"])
        tc = TrainConfig.from_dict(spec["train"])
        run = train_run(trial["dataset"], ModelConfig.from_dict(spec["model"]), tc, folder / "run", data_dir,
                        progress=progress, evaluate_on=None, subset=ctx["subset"],
                        on_epoch=_progress(events, trial["id"], tc.epochs), backend=spec.get("backend", "torch"),
                        **runtime(trial))
        trained = time.time()
        row = _autoencoder(trial, folder, run, data_dir)
    elif trial["kind"] == "pca":
        row = _pca(trial, data_dir)
    elif trial["kind"] == "baselines":
        row = _baselines(trial, data_dir)
    else:
        raise ValueError(f"unknown trial kind {trial['kind']!r}")
    return _finish(trial, folder, row, time.perf_counter() - t0, started, trained)


@restores_cpu_settings
def run_stack(trials: list[dict], study_dir: str | Path, data_dir: str | Path | None = None, events=None,
              progress: bool | None = False) -> list[dict]:
    """Run autoencoder trials of one architecture and schedule (a group of `study.stack_groups`)
    as one stacked training (`stacked.fit_stacked`), then evaluate each as `run_trial` does.

    Returns their result rows in order (a finished trial's as stored). The group always trains
    whole and in this order, even when some of its trials finished earlier: a model's numbers
    depend (by rounding) on its place in the stack. Trials whose training splits differ in size
    train in separate stacks, in order. An interrupted group resumes from
    <first trial>/stack_checkpoint.safetensors."""

    done = [finished_result(study_dir, t) for t in trials]
    if all(d is not None and d.get("status") == "ok" for d in done):
        return done
    torch.set_num_threads(trials[0]["spec"]["context"]["threads"])
    t0, started = time.perf_counter(), time.time()
    folders = [trial_dir(study_dir, t["id"]) for t in trials]
    models = [ModelConfig.from_dict(t["spec"]["model"]) for t in trials]  # they may differ in latent size
    configs = [TrainConfig.from_dict(t["spec"]["train"]) for t in trials]
    run_configs = [run_config(t["dataset"], mc, c, data_dir, t["spec"]["context"]["subset"])
                   for t, mc, c in zip(trials, models, configs)]
    runs = [finished_run(f / "run", rc) for f, rc in zip(folders, run_configs)]
    if any(r is None for r in runs):
        jobs = [(_split(t["dataset"], "train", t["spec"]["context"], data_dir)[0],
                 _split(t["dataset"], "val", t["spec"]["context"], data_dir)[0], c) for t, c in zip(trials, configs)]
        for size in dict.fromkeys(len(x) for x, _, _ in jobs):  # one stack per training-split size, in order
            part = [i for i, (x, _, _) in enumerate(jobs) if len(x) == size]
            folders[part[0]].mkdir(parents=True, exist_ok=True)
            checkpoint = folders[part[0]] / "stack_checkpoint.safetensors"
            report = [_progress(events, trials[i]["id"], configs[i].epochs) for i in part]
            results = fit_stacked([models[i] for i in part], [jobs[i] for i in part], progress=progress,
                                  checkpoint_path=checkpoint, **runtime(trials[part[0]]),
                                  on_epoch=lambda k, row, model: report[k](row, model))
            for i, result in zip(part, results):
                finish_run(folders[i] / "run", run_configs[i], result)
                runs[i] = read_run(folders[i] / "run")
            checkpoint.unlink(missing_ok=True)
    share, trained = (time.perf_counter() - t0) / len(trials), time.time()  # the stack's time, shared by its models
    rows = []
    for trial, folder, run, previous in zip(trials, folders, runs, done):
        if previous is not None and previous.get("status") == "ok":
            rows.append(previous)
            continue
        t1 = time.perf_counter()
        rows.append(_finish(trial, folder, {**_autoencoder(trial, folder, run, data_dir), "stacked": len(trials)},
                            share + time.perf_counter() - t1, started, trained))
    return rows


def _progress(events, trial_id: str, epochs: int):
    def on_epoch(row: dict, model) -> None:
        if events is not None:
            events.put((trial_id, row["epoch"], epochs, row["val_psnr"]))
    return on_epoch


def _finish(trial: dict, folder: Path, row: dict, seconds: float, started: float,
            trained: float | None = None) -> dict:
    """Complete a trial's result row and write it to <folder>/result.json (atomically).

    seconds: the trial's own wall time (a stacked trial: its share of the stack's training plus
    its evaluation). The timeline of where it ran, as Unix times in seconds: started_at (the trial,
    or its stack, began in this worker), trained_at (an autoencoder's training ended; its stack's
    for a stacked one), finished_at (now), and the worker ("host:pid")."""
    row.update({"id": trial["id"], "kind": trial["kind"], "phase": trial["phase"], "dataset": trial["dataset"],
                "status": "ok", "wall_seconds": round(seconds, 3), "started_at": round(started, 3),
                "trained_at": None if trained is None else round(trained, 3), "finished_at": round(time.time(), 3),
                "worker": f"{socket.gethostname()}:{os.getpid()}", "trial": identity(trial)})
    atomic_write_json(folder / RESULT, row)
    return row


def failed_result(trial: dict, error: str, attempts: int = 1) -> dict:
    """The result row of a trial that failed on every attempt."""
    return {"id": trial["id"], "kind": trial["kind"], "phase": trial["phase"], "dataset": trial["dataset"],
            "status": "failed", "error": error, "attempts": attempts, "trial": identity(trial)}


def _autoencoder(trial: dict, folder: Path, run, data_dir) -> dict:
    """Evaluate a trained autoencoder trial (its `runs.Run`): the result row's numbers."""
    spec, ctx, dataset = trial["spec"], trial["spec"]["context"], trial["dataset"]
    mc, tc = ModelConfig.from_dict(spec["model"]), TrainConfig.from_dict(spec["train"])
    # scored where it trained: a run folder loads on the CPU, where one core took 20 s per model
    # (forward passes over 90,000 images and SSIM) while the GPU waited for the next stack
    model, shape = run.model.to(resolve_device(tc.device)), tuple(run.config["image_shape"])
    x_test, y_test = _split(dataset, "test", ctx, data_dir)
    x_val, _ = _split(dataset, "val", ctx, data_dir)
    x_train, _ = _split(dataset, "train", ctx, data_dir)
    x_train = x_train[:TRAIN_EVAL_IMAGES]
    m = evaluate(model, x_test, y_test, shape, class_names=data.class_names(dataset))
    robust = noise.noisy_test_set(x_test, ctx["robustness_var"], seed=ctx["seed"])

    def scored(inputs: torch.Tensor, clean: torch.Tensor) -> float:  # psnr, computed on the model's device
        return psnr(reconstruct(model, inputs, keep_on_device=True), clean)

    code = reconstruct(model, x_test[:1000], return_code=True)[1]
    np.save(folder / "code_values.npy", code.numpy().astype(np.float32), allow_pickle=False)
    idx = grid_indices(len(x_test))
    image_grid([x_test[idx], reconstruct(model, x_test[idx])], shape, folder / "grid.png",
               ["original", "reconstruction"],
               title=f"{dataset} depth {mc.depth}, L={mc.latent}: psnr {m['psnr']:.2f} dB")
    den = score_levels(model, x_test, ctx["eval_variances"], shape, seed=ctx["seed"],
                       subset=ctx["baseline_subset"], grid_dir=folder if tc.noise_var is not None else None,
                       title=f"{dataset} denoiser")
    nv = tc.noise_var
    row = {
        "depth": mc.depth, "widths": list(mc.widths), "latent": mc.latent, "l2": tc.l2, "l1": tc.l1,
        "noise_var": list(nv) if isinstance(nv, tuple) else nv,
        "psnr": m["psnr"], "psnr_dataset": m["psnr_dataset"], "ssim": m["ssim"], "mse": m["mse"],
        "val_psnr": scored(x_val, x_val),
        "train_psnr": scored(x_train, x_train),
        "noisy_psnr": scored(robust, x_test),
        "code_hoyer": m["code"]["hoyer"], "code_small_fraction": m["code"]["small_fraction"],
        "code_dead_units": m["code"]["dead_units"], "code_mean_abs": m["code"]["mean_abs"],
        "code_zero_fraction": m["code"]["zero_fraction"],
        "epochs": tc.epochs, "epochs_run": run.config["epochs_run"], "best_epoch": run.config["best_epoch"],
        **{k: getattr(mc, k) for k in ("activation", "latent_activation", "norm", "init", "unit_code_columns")},
        "decoder_norm": mc.decoder_normalization,
        **{k: getattr(tc, k) for k in ("schedule", "batch_size", "loss")},
        "lr": tc.lr or default_lr(mc.depth),  # the peak learning rate, the recipe's by depth when not set
        "warmup": (default_warmup(mc.depth) if tc.warmup is None else tc.warmup) if tc.schedule == "onecycle" else 0.0,
        "seconds": run.config["train_seconds"], "parameters": run.config["parameters"], "seed": tc.seed,
        "precision": run.config["precision"], "per_class_psnr": m.get("per_class_psnr", {}), "denoising": den,
        "run_dir": "run",
    }
    if nv is not None:  # a denoiser: its own task is denoising; select on noisy validation images
        levels = ctx["eval_variances"] if isinstance(nv, tuple) else [nv]
        row["val_psnr"] = float(np.mean([scored(noise.noisy_validation_set(x_val, v, ctx["seed"]), x_val)
                                         for v in levels]))
    return row


def _pca(trial: dict, data_dir) -> dict:
    ctx, dataset, k = trial["spec"]["context"], trial["dataset"], trial["spec"]["k"]
    shape = data.image_shape(dataset, data_dir)
    x_train, _ = _split(dataset, "train", ctx, data_dir)
    x_val, _ = _split(dataset, "val", ctx, data_dir)
    x_test, y_test = _split(dataset, "test", ctx, data_dir)
    t0 = time.perf_counter()
    pca = baselines.fit_pca(x_train, k)
    seconds = time.perf_counter() - t0
    m = image_metrics(pca.reconstruct(x_test), x_test, shape, y_test, data.class_names(dataset))
    robust = noise.noisy_test_set(x_test, ctx["robustness_var"], seed=ctx["seed"])
    d = x_train.shape[1]
    return {
        "depth": None, "widths": [], "latent": k, "l2": 0.0, "l1": 0.0, "noise_var": None,
        "psnr": m["psnr"], "psnr_dataset": m["psnr_dataset"], "ssim": m["ssim"], "mse": m["mse"],
        "val_psnr": psnr(pca.reconstruct(x_val), x_val),
        "train_psnr": psnr(pca.reconstruct(x_train[:TRAIN_EVAL_IMAGES]), x_train[:TRAIN_EVAL_IMAGES]),
        "noisy_psnr": psnr(pca.reconstruct(robust), x_test),
        "seconds": round(seconds, 3), "parameters": k * d + d, "seed": ctx["seed"],
        "per_class_psnr": m.get("per_class_psnr", {}),
    }


def _baselines(trial: dict, data_dir) -> dict:
    spec, ctx, dataset = trial["spec"], trial["spec"]["context"], trial["dataset"]
    shape = data.image_shape(dataset, data_dir)
    x_train, _ = _split(dataset, "train", ctx, data_dir)
    x_val, _ = _split(dataset, "val", ctx, data_dir)
    x_test, _ = _split(dataset, "test", ctx, data_dir)
    results = baselines.denoising_baselines(x_train, x_val, x_test, spec["noise_var"], shape, seed=ctx["seed"],
                                            methods=spec["methods"], subset=ctx["baseline_subset"])
    return {"noise_var": spec["noise_var"], "rows": [r.to_dict() for r in results]}
