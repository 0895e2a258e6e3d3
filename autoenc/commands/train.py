"""`autoenc train`: one dense autoencoder from the composed config, trained and scored in its own
run folder; with -m, a sweep of them and its results table.

    autoenc train model=deep5 latent=30
    autoenc train latent=100 noise=gaussian noise.var=0.09
    autoenc train -m latent=15,30,50,100 [hydra/launcher=joblib]

The folder is named from the config (outputs/<dataset>-<model>-L<latent>-...-s<seed>-<hash>), so
rerunning a command resumes its run from the last checkpoint, or reuses it when it is finished.
"""
from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import shutil
import sys
import traceback
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from .. import data
from ..config import TrainJob, check_job, conf_dir, cuda_graphs_mode, noise_spec, register_configs
from ..errors import AutoencError
from ..evaluation import noise
from ..files import atomic_write_json
from . import hydra_cli

log = logging.getLogger("autoenc")
FAILED = "failed.json"  # a run folder whose training raised: the error, for results tables


def dataset_of(job: TrainJob) -> str:
    """The engine's name of the job's dataset: mnist, fashion-mnist, or the path of your data."""
    return job.dataset.path if job.dataset.name == "custom" else job.dataset.name


def subset_of(job: TrainJob) -> dict[str, int]:
    """{split: first n images} of the job's dataset.*_images settings."""
    d = job.dataset
    return {k: v for k, v in (("train", d.train_images), ("val", d.val_images), ("test", d.test_images)) if v}


def joblib_threads(launcher) -> int | None:
    """CPU threads per job when joblib runs the jobs side by side: the cores shared among them
    (n_jobs -1: one job per core, one thread each); None for other launchers."""
    if launcher is None or "joblib" not in str(launcher.get("_target_", "")):
        return None
    cores, n_jobs = os.cpu_count() or 1, int(launcher.get("n_jobs") or -1)
    jobs = n_jobs if n_jobs > 0 else max(1, cores + 1 + n_jobs)
    return max(1, cores // min(jobs, cores))


def threads_of(job: TrainJob, launcher) -> int | None:
    """The job's CPU threads: trainer.threads, else joblib's share, else None (torch's choice)."""
    return job.trainer.threads if job.trainer.threads is not None else joblib_threads(launcher)


def run_name(job: dict, threads: int | None) -> str:
    """A run folder's name: what tells runs apart at a glance, and a hash of the whole config.

    job: the composed config as plain containers (no hydra node). E.g. mnist-deep5-L30-s0-3f2a1c,
    fashion-mnist-deep3-L15-l1_1e-05-s0-..., mnist-deep3-L100-noise0.09-s0-..."""
    d, r, n, t = job["dataset"], job["regularizer"], job["noise"], job["trainer"]
    m = job["model"]
    parts = [Path(d["path"]).stem if d.get("path") else d["name"], m["name"], f"L{job['latent']}"]
    parts += [f"dec{m['decoder_norm']}"] if m.get("decoder_norm") not in (None, m["norm"]) else []
    parts += ["unitcols"] if m.get("unit_code_columns") else []
    parts += [f"{k}_{r[k]:g}" for k in ("l2", "l1") if r[k]]
    if n["name"] == "gaussian":
        parts.append(f"noise{n['var']:g}")
    elif n["name"] == "blind":
        parts.append(f"blind{n['range'][0]:g}_{n['range'][1]:g}")
    parts += [t["name"]] if t["name"] != "default" else []
    parts += [job["backend"]] if job["backend"] != "torch" else []
    identity = {k: v for k, v in job.items() if k != "data_dir"}
    identity["trainer"] = {**t, "threads": threads}
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:6]
    return "-".join(parts + [f"s{job['seed']}", digest])


def _run_folder(*, _root_: DictConfig) -> str:
    """Resolver ${autoenc.run:}: the run folder's name for the config it is resolved in (a
    placeholder where only Hydra's own node is, as `--cfg hydra --resolve` prints it)."""
    plain = OmegaConf.to_container(_root_, resolve=False)
    launcher = plain.pop("hydra", {}).get("launcher")
    if "trainer" not in plain:
        return "<named from the job's config>"
    job = OmegaConf.to_container(OmegaConf.create(plain), resolve=True)
    threads = job["trainer"].get("threads")
    return run_name(job, threads if threads is not None else joblib_threads(launcher))


def _sweep_folder(*, _root_: DictConfig) -> str:
    """Resolver ${autoenc.sweep:}: the sweep folder's name (under multirun/) for the command's
    overrides, as `hydra_cli.sweep_folder` names it."""
    overrides = OmegaConf.select(_root_, "hydra.overrides.task", default=None) or []
    return hydra_cli.sweep_folder(list(overrides)).removeprefix("multirun/")


for _name, _resolver in (("autoenc.run", _run_folder), ("autoenc.sweep", _sweep_folder)):
    if not OmegaConf.has_resolver(_name):
        OmegaConf.register_new_resolver(_name, _resolver)
register_configs()


def train(job: TrainJob, out: Path, threads: int | None = None, progress: bool | None = None) -> dict:
    """Train `job` into run folder `out` (resuming its checkpoint, or reusing a finished run)
    and score it on the test split; returns its metrics (psnr in dB, ...), as metrics.json holds.
    job.backend: torch or keras (the same configs, run folder and scores; model.keras for Keras)."""
    from ..model import ModelConfig
    from ..runs import METRICS, train_run
    from ..training import TrainConfig

    dataset, t = dataset_of(job), job.trainer
    shape = data.image_shape(dataset, job.data_dir)
    model = ModelConfig(input_dim=math.prod(shape), widths=tuple(job.model.widths), latent=job.latent,
                        activation=job.model.activation, latent_activation=job.model.latent_activation,
                        norm=job.model.norm, decoder_norm=job.model.decoder_norm,
                        unit_code_columns=job.model.unit_code_columns, init=job.model.init)
    config = TrainConfig(epochs=t.epochs, batch_size=t.batch_size, lr=t.lr, schedule=t.schedule, warmup=t.warmup,
                         l2=job.regularizer.l2, l1=job.regularizer.l1, loss=t.loss, patience=t.patience,
                         patience_start=t.patience_start, bn_images=t.bn_images, seed=job.seed, device=job.device,
                         precision=t.precision, threads=threads, noise_var=noise_spec(job.noise),
                         noise_clip=job.noise.clip)
    if t.budget_seconds is not None:
        config.epochs = _budget(out, model, config, t.budget_seconds, dataset, job)
    reused = (out / METRICS).is_file()
    log.info("%s %s: %s, L=%d, %s%s%s", "reusing the finished run" if reused else "training", out, dataset,
             job.latent, job.model.name, f", {noise.inputs_label(config.noise_var)}" if config.noise_var else "",
             ", Keras" if job.backend == "keras" else "")
    run = train_run(dataset, model, config, out, job.data_dir, progress=progress, subset=subset_of(job),
                    on_epoch=lambda row, model: log.debug(_epoch_line(row, config.epochs)),
                    checkpoint_seconds=t.checkpoint_seconds, cuda_graphs=cuda_graphs_mode(t.cuda_graphs),
                    backend=job.backend)
    metrics = run.metrics
    if config.noise_var is not None and "denoising" not in metrics:
        metrics = {**metrics, "denoising": _levels(run, job)}
        atomic_write_json(out / METRICS, metrics)
    return metrics


def _budget(out: Path, model, config, seconds: float, dataset: str, job: TrainJob) -> int:
    """The epochs trainer.budget_seconds buys: as measured when `out` was started (a rerun keeps
    them, so it resumes the same run), else measured now."""
    from ..runs import recorded_epochs
    from ..training import budget_epochs

    earlier = recorded_epochs(out)
    if earlier is not None:
        return earlier
    n_train = len(data.load(dataset, "train", job.data_dir)[0][:job.dataset.train_images])
    epochs = budget_epochs(model, config, n_train, seconds)
    log.info("trainer.budget_seconds=%g: %d epochs fit on this machine", seconds, epochs)
    return epochs


def _levels(run, job: TrainJob) -> list[dict]:
    """A denoiser's scores on the protocol's fixed noisy test images at the levels it trained for
    (`denoising.trained_levels`), with a clean / noisy / denoised grid per level."""
    from ..evaluation.denoising import score_levels, trained_levels

    x = data.load(run.config["dataset"], "test", job.data_dir)[0][:job.dataset.test_images]
    levels = trained_levels(noise_spec(job.noise))
    return score_levels(run.model, x, levels, tuple(run.config["image_shape"]), grid_dir=run.path,
                        title=run.path.name)


def _epoch_line(row: dict, epochs: int) -> str:
    return (f"epoch {row['epoch']}/{epochs}: train loss {row['train_loss']:.5f}, val psnr {row['val_psnr']:.2f} dB, "
            f"{row['seconds']:.1f} s")


def score_lines(metrics: dict) -> list[str]:
    """What a finished run prints: test psnr on clean inputs (a per-level denoiser: on its noisy
    inputs), then a denoiser's psnr at each trained level."""
    lines = [f"test psnr {metrics['psnr']:.2f} dB on {noise.inputs_label(metrics.get('noise_var'))}, psnr_dataset "
             f"{metrics['psnr_dataset']:.2f} dB, ssim {metrics['ssim']:.4f}; best epoch {metrics.get('best_epoch')}/"
             f"{metrics.get('epochs_run')}, {metrics.get('train_seconds') or 0:.1f} s"]
    lines += [f"  denoising: test psnr {d['psnr']:.2f} dB on {noise.inputs_label(d['noise_var'])}, psnr_dataset "
              f"{d['psnr_dataset']:.2f} dB, ssim {d['ssim']:.4f}" for d in metrics.get("denoising", [])]
    return lines


@hydra.main(version_base=None, config_path=conf_dir(), config_name="train")
def task(cfg: DictConfig) -> float | None:
    """Hydra's task: one job. Returns its test psnr (dB), or None when it failed in a sweep."""
    hc = HydraConfig.get()
    job = hydra_cli.to_schema(cfg, TrainJob, check_job)
    out = Path(hc.runtime.output_dir)
    sweep = hc.mode == RunMode.MULTIRUN
    (out / FAILED).unlink(missing_ok=True)
    try:
        metrics = train(job, out, threads_of(job, hc.launcher), progress=None if not sweep else False)
    except KeyboardInterrupt:
        if sweep:
            raise
        print(f"\ninterrupted: rerun the same command to resume from the last checkpoint in {out}", file=sys.stderr)
        sys.exit(130)
    except Exception as exc:  # noqa: BLE001 - a sweep records the failure and goes on
        if sweep:
            atomic_write_json(out / FAILED, {"error": f"{type(exc).__name__}: {exc}",
                                             "traceback": traceback.format_exc()})
            log.error("failed: %s: %s (the other jobs go on)", type(exc).__name__, exc)
            return None
        if not isinstance(exc, AutoencError):
            raise
        log.error("error: %s", exc)
        _remove_if_empty(out)
        sys.exit(2)
    for line in score_lines(metrics):
        log.info(line)
    return metrics["psnr"]


def _remove_if_empty(out: Path) -> None:
    """Remove a run folder a refused run left with nothing but Hydra's files in it."""
    made = hydra_cli.RUN_DIR_EXISTED == [False]
    if made and out.is_dir() and {p.name for p in out.iterdir()} <= {".hydra", "train.log"}:
        shutil.rmtree(out, ignore_errors=True)


def _data_there(job: TrainJob) -> None:
    """Refuse a job whose data cannot be found (or downloaded), or whose backend is not installed,
    before Hydra makes its folder."""
    data.ensure(dataset_of(job), job.data_dir)
    if job.backend == "keras":
        from ..training import keras_backend  # noqa: F401 - a ConfigError saying what to install


def main(args: list[str]) -> int:
    """`autoenc train [overrides and Hydra flags]`; returns the exit status (1 when a job of a
    sweep failed: the others finished, results.csv names it)."""
    from .sweeps import FAILED_JOBS

    FAILED_JOBS.clear()
    code = hydra_cli.run(task, "train", args, TrainJob, check_job, precheck=_data_there)
    return 1 if code == 0 and FAILED_JOBS else code
