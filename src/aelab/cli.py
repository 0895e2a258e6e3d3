"""The `aelab` command line: data, train, evaluate, denoise, study, report.

Each command is a thin layer over the Python API of the module named for its stage.
"""
from __future__ import annotations

import json
import signal
import sys
from pathlib import Path

import click

import numpy as np

from . import data as data_mod
from . import noise, runs, training
from .model import PRESETS, ModelConfig
from .training import TrainConfig, budget_epochs
from .errors import AelabError

def _data_dir_given(ctx: click.Context, param: click.Parameter, value: Path | None) -> Path | None:
    """--data-dir as given on the command line; None when the folder came from AELAB_DATA_DIR, which
    aelab.data then reads itself, so that messages name the variable as the folder's source, not --data-dir."""
    if value is not None and ctx.get_parameter_source(param.name) is click.core.ParameterSource.ENVIRONMENT:
        return None
    return value


class _Folder(click.Path):
    """click.Path of a folder (file_okay=False) that refuses an empty value: Path("") is ".", so an
    `--out ""` (an unset shell variable) wrote a run's files into the current folder. A file given by the
    option's environment variable is named by the variable."""

    def __init__(self, **kwargs) -> None:
        super().__init__(file_okay=False, path_type=Path, **kwargs)

    def convert(self, value, param, ctx):
        if isinstance(value, str) and not value.strip():
            self.fail(f"{value!r} is empty; give a folder, e.g. runs/mine (\".\" for the current folder)", param, ctx)
        if ctx is not None and param is not None and Path(value).is_file() \
                and ctx.get_parameter_source(param.name) is click.core.ParameterSource.ENVIRONMENT:
            # named --data-dir, which the user had not given
            raise click.BadParameter(f"{value!r} is a file; set it to a folder or unset it", ctx,
                                     param_hint=param.envvar)
        return super().convert(value, param, ctx)


DATA_DIR = click.option(
    "--data-dir",
    type=_Folder(),
    default=None,
    envvar="AELAB_DATA_DIR",
    callback=_data_dir_given,
    help="Folder laid out as <dir>/<dataset>/<standard IDX file names> (env: AELAB_DATA_DIR).",
)


class _Group(click.Group):
    """Prints aelab's own errors as one clear line (exit status 2) instead of a traceback, and so a
    file system's refusal of a path (read-only, not a folder, disk full) with the path."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except AelabError as exc:
            click.secho(f"error: {exc}", fg="red", err=True)
            ctx.exit(2)
        except OSError as exc:
            if exc.filename is None:  # not about a path: a bug or the machine, keep the traceback
                raise
            click.secho(f"error: cannot use {exc.filename}: {exc.strerror or exc}; check that the path (--out, "
                        f"--data-dir) is a folder you may write to and the disk has space, then rerun "
                        f"(finished work is kept)", fg="red", err=True)
            ctx.exit(2)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="aelab")
def main() -> None:
    """aelab: deep dense autoencoders on MNIST-family images."""


@main.group()
def data() -> None:
    """Find, verify and download the datasets."""


@data.command("check")
@DATA_DIR
def data_check(data_dir: Path | None) -> None:
    """Print where each dataset was found, whether its files verify, and its counts."""
    report, ok = data_mod.check(data_dir)
    click.echo(report)
    if not ok:
        sys.exit(1)


@data.command("fetch")
@click.argument("datasets", nargs=-1)
@click.option("--dest", type=_Folder(), default=None,
              help="Where to store the files (default: the user cache, ~/.cache/aelab).")
def data_fetch(datasets: tuple[str, ...], dest: Path | None) -> None:
    """Download DATASETS (default: all known) from the official mirrors and verify them."""
    for name in datasets or data_mod.KNOWN_DATASETS:
        path = data_mod.fetch(name, dest=dest)
        click.echo(f"{name}: {path}")


def _widths(ctx: click.Context, param: click.Parameter, text: str | None) -> tuple[int, ...] | None:
    """--widths as a tuple of ints (None when not given); an empty or malformed list is refused, naming --widths."""
    if text is None:
        return None
    try:
        return tuple(int(w) for w in text.replace(" ", "").split(","))
    except ValueError:
        raise click.BadParameter(f"{text!r}: give hidden widths as whole numbers, e.g. 512,256,128") from None


@main.command()
@click.option("--dataset", default="mnist", show_default=True,
              help="mnist, fashion-mnist, or a path to your own data (folder of IDX files, .npz).")
@click.option("--depth", type=click.Choice(["3", "5"]), default="3", show_default=True,
              help="The protocol's preset: dense layers per side, the latent layer included.")
@click.option("--widths", default=None, callback=_widths,
              help="Explicit hidden widths instead of --depth, e.g. 512,256,128,64.")
@click.option("--latent", type=int, default=30, show_default=True, help="Latent size L.")
@click.option("--activation", default=ModelConfig.activation, show_default=True)
@click.option("--latent-activation", default=ModelConfig.latent_activation, show_default=True)
@click.option("--norm", default=ModelConfig.norm, show_default=True, help="batch, layer or none.")
@click.option("--l2", type=float, default=0.0, show_default=True, help="L2 weight penalty strength.")
@click.option("--l1", type=float, default=0.0, show_default=True, help="L1 penalty on the code.")
@click.option("--epochs", type=int, default=TrainConfig.epochs, show_default=True)
@click.option("--budget-seconds", type=float, default=None,
              help="Short-budget recipe: pick the epochs that fit this many seconds of training here (a rerun into "
                   "the same --out keeps the epochs picked first, so it resumes).")
@click.option("--batch-size", type=int, default=TrainConfig.batch_size, show_default=True)
@click.option("--lr", type=float, default=None, help="Peak learning rate (default: 1e-2 for depth 3, 3e-3 deeper).")
@click.option("--schedule", default=TrainConfig.schedule, show_default=True)
@click.option("--loss", default=TrainConfig.loss, show_default=True, help="mse or bce.")
@click.option("--patience", type=int, default=TrainConfig.patience, show_default=True,
              help="Early stopping patience in epochs (0: train all epochs, keep the best).")
@click.option("--patience-start", type=float, default=TrainConfig.patience_start, show_default=True,
              help="Fraction of the epochs after which early stopping starts counting.")
@click.option("--bn-images", type=int, default=TrainConfig.bn_images, show_default=True,
              help="Training inputs the batch-norm statistics are recomputed from after each epoch "
                   "(0: PyTorch's running averages).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda, cuda:1, ...")
@click.option("--precision", default=TrainConfig.precision, show_default=True,
              help="fp32, bf16 (autocast) or auto: bf16 on a CPU with native bf16, else fp32.")
@click.option("--threads", type=int, default=None, help="CPU threads (default: torch's choice).")
@click.option("--noise-var", default=None,
              help="Train a denoiser: noise variance sigma^2 (e.g. 0.09) or a range 0.01:0.25 (blind).")
@click.option("--no-noise-clip", is_flag=True, help="Do not clip noisy inputs to [0, 1].")
@click.option("--out", type=_Folder(), default=None,
              help="Run folder (default: runs/<dataset>-d<depth>-L<latent>...).")
@DATA_DIR
@click.option("--quiet", is_flag=True, help="No progress bar (nor, without a terminal, a line per epoch).")
def train(dataset, depth, widths, latent, activation, latent_activation, norm, l2, l1, epochs, budget_seconds,
          batch_size, lr, schedule, loss, patience, patience_start, bn_images, seed, device, precision, threads,
          noise_var, no_noise_clip, out, data_dir, quiet) -> None:
    """Train one autoencoder (or a denoiser with --noise-var) and score it on the test split: on clean
    inputs, and a denoiser also on the fixed noisy test images at the noise it trained on (its variance, or
    the protocol's levels 0.01, 0.04, 0.09, 0.16, 0.25 inside a blind range).

    \f
    Both kinds of denoiser are scored the same way: the clean-input line is the reconstruction score every
    autoencoder gets (and the study's psnr column), the noisy-input lines are `aelab denoise`'s scores
    (`denoise.score_levels`, noise seed 0) at the levels it trained for. (Before, a per-level denoiser printed
    its noisy-input score and a blind one its clean-input score, under the same words.) metrics.json is what
    `aelab evaluate RUN` writes: a per-level denoiser's at its variance, a blind one's on clean inputs (a range
    is no single variance); its noise_var says which (null: clean inputs).
    """
    if widths and click.get_current_context().get_parameter_source("depth") is click.core.ParameterSource.COMMANDLINE:
        # --widths replaces the preset: --depth 5 beside it was dropped without a word
        raise click.UsageError("give --depth (a preset) or --widths (explicit hidden widths), not both")
    hidden = widths or PRESETS[int(depth)]
    model_config = ModelConfig(input_dim=int(np.prod(data_mod.image_shape(dataset, data_dir))), widths=hidden,
                               latent=latent, activation=activation, latent_activation=latent_activation, norm=norm)
    nv = noise.parse_noise_var(noise_var, accept=("variance", "range")) if noise_var is not None else None
    if (hint := noise.sigma_hint(nv)) is not None:
        click.secho(hint, fg="yellow", err=True)
    train_config = TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, schedule=schedule, l2=l2, l1=l1,
                               loss=loss, patience=patience, patience_start=patience_start, bn_images=bn_images,
                               seed=seed, device=device, precision=precision, threads=threads, noise_var=nv,
                               noise_clip=not no_noise_clip)
    if out is None:
        name = Path(dataset).stem if Path(dataset).exists() else dataset
        tag = f"w{'-'.join(map(str, hidden))}" if widths else f"d{depth}"
        out = Path("runs") / f"{name}-{tag}-L{latent}{_reg_tag(l2, l1, nv)}-s{seed}"
    if budget_seconds is not None:
        # the rerun of an interrupted or finished run keeps the epochs measured when it started: measured
        # again (timing varies), they would make another configuration, which could not resume
        earlier = runs.recorded_epochs(out)
        if earlier is not None:
            train_config.epochs = earlier
            click.echo(f"--budget-seconds {budget_seconds:g}: {earlier} epochs, as measured when {out} was started")
        else:
            n_train = len(data_mod.load(dataset, "train", data_dir)[0])
            train_config.epochs = budget_epochs(model_config, train_config, n_train, budget_seconds)
            click.echo(f"--budget-seconds {budget_seconds:g}: {train_config.epochs} epochs fit on this machine")
    def log_epoch(row: dict, model) -> None:  # to a file or pipe: a line per epoch instead of the bar
        click.echo(_epoch_line(row, train_config.epochs, nv), err=True)

    log = not quiet and not sys.stderr.isatty()
    try:
        run = runs.train_run(dataset, model_config, train_config, out, data_dir,
                             progress=None if not quiet else False, on_epoch=log_epoch if log else None)
    except KeyboardInterrupt:  # as `aelab study` does: say how to resume, exit status 130 (not click's "Aborted!", 1)
        click.secho(f"\ninterrupted: rerun the same command to resume from the last checkpoint in {out} "
                    f"(saved every {training.checkpoint_interval():g} s)", fg="yellow", err=True)
        sys.exit(130)
    scores = _train_scores(run, nv, data_dir)
    click.echo(f"{out}: best epoch {run.config['best_epoch']}/{run.config['epochs_run']}, "
               f"{run.config['train_seconds']:.1f} s; {_score_text(*scores[0])}")
    for spec, m in scores[1:]:
        click.echo(f"  denoising: {_score_text(spec, m)}")


def _train_scores(run: runs.Run, nv, data_dir: Path | None) -> list[tuple[float | None, dict]]:
    """(noise variance sigma^2, or None for clean inputs; metrics with psnr and psnr_dataset in dB, ssim) of a
    trained run on the test split: the clean inputs first, then for a denoiser each level it trained for
    (`denoise.trained_levels`) on the protocol's fixed noisy test images (seed 0, as metrics.json's)."""
    m = run.metrics
    if nv is None:
        return [(None, m)]
    from .denoise import score_levels, trained_levels
    from .evaluation import image_metrics, reconstruct

    shape = tuple(run.config["image_shape"])
    x_test = data_mod.load(run.config["dataset"], "test", data_dir)[0][:run.config.get("subset", {}).get("test")]
    clean = m if m.get("noise_var") is None else image_metrics(reconstruct(run.model, x_test), x_test, shape)
    return [(None, clean)] + [(s["noise_var"], s) for s in score_levels(run.model, x_test, trained_levels(nv), shape)]


def _score_text(spec, m: dict) -> str:
    """One score as a line: "test psnr 20.10 dB on noisy inputs sigma^2=0.09 (sigma=0.3), psnr_dataset 19.54 dB,
    ssim 0.8302" (dB on the [0, 1] scale; spec: the noise variance sigma^2, None for clean inputs)."""
    return (f"test psnr {m['psnr']:.2f} dB on {noise.inputs_label(spec)}, psnr_dataset {m['psnr_dataset']:.2f} dB, "
            f"ssim {m['ssim']:.4f}")


def _epoch_line(row: dict, epochs: int, nv=None) -> str:
    """One epoch of `fit`'s history: "epoch 3/100: train loss 0.01234, val psnr 22.40 dB, 1.3 s"; for a
    denoiser (nv: its variance or blind range) the val psnr says it is on noisy inputs of that noise."""
    on = "" if nv is None else f" on {noise.inputs_label(nv)}"
    return (f"epoch {row['epoch']}/{epochs}: train loss {row['train_loss']:.5f}, "
            f"val psnr {row['val_psnr']:.2f} dB{on}, {row['seconds']:.1f} s")


def _reg_tag(l2: float, l1: float, nv) -> str:
    tag = (f"-l2_{l2:g}" if l2 else "") + (f"-l1_{l1:g}" if l1 else "")
    if nv is not None:
        tag += f"-n{nv[0]:g}_{nv[1]:g}" if isinstance(nv, tuple) else f"-n{nv:g}"
    return tag


@main.command("evaluate")
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--split", type=click.Choice(["train", "val", "test"]), default="test", show_default=True)
@click.option("--noise-var", type=float, default=None,
              help="Score as a denoiser of the fixed test noise of this variance sigma^2, e.g. 0.09; 0 scores "
                   "clean inputs (default: a per-level denoiser's own variance; clean inputs otherwise).")
@DATA_DIR
def evaluate_cmd(run_dir: Path, split: str, noise_var: float | None, data_dir: Path | None) -> None:
    """Evaluate RUN_DIR: writes metrics.json and grid.png (16 fixed images above their outputs).

    A run trained on a subset (a study's trial, subset.test) is scored on the split's first images
    as its study scored it."""
    m = runs.evaluate_run(run_dir, split, data_dir, noise_var=noise_var)
    subset = json.loads((run_dir / runs.CONFIG).read_text()).get("subset", {}).get(split)  # read (and checked) above
    on = f"{split} (its first {m['n_images']:,} images: the run's subset)" if subset else split
    click.echo(f"{run_dir} on {on}, {noise.inputs_label(m['noise_var'])}: psnr {m['psnr']:.2f} dB, "
               f"psnr_dataset {m['psnr_dataset']:.2f} dB, "
               f"ssim {m['ssim']:.4f}, mse {m['mse']:.5f}; code: {m['code']['zero_fraction']:.1%} entries "
               f"|E|<1e-3, {m['code']['dead_units']} units never active")
    click.echo(f"wrote {run_dir / 'metrics.json'} and {run_dir / 'grid.png'}")


@main.command()
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--noise-var", "noise_vars", default="0.01,0.04,0.09,0.16,0.25", show_default=True,
              help="Noise variances sigma^2 to evaluate at, comma-separated.")
@click.option("--baselines", "methods", default="noisy,linear", show_default=True,
              help="Classical denoisers to compare on the same noisy images (comma list of noisy, gaussian, median, "
                   "nlm, wavelet, tv, bm3d, pca, linear; or 'all', or 'none').")
@click.option("--subset", type=click.IntRange(min=1), default=1000, show_default=True,
              help="Test images the slow baselines (bm3d) run on; every method is also scored on them "
                   "(subset_psnr).")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True, help="Seed of the fixed test noise.")
@DATA_DIR
@click.option("--quiet", is_flag=True, help="No progress bar (nor, without a terminal, a line per level and method).")
def denoise(run_dir: Path, noise_vars: str, methods: str, subset: int, seed: int, data_dir: Path | None,
            quiet: bool) -> None:
    """Evaluate RUN_DIR as a denoiser at each noise level, next to classical baselines.

    Writes denoise.md / denoise.json (the table) and denoise_<var>.png (clean, noisy, denoised)."""
    from .denoise import denoise_run

    variances = noise.parse_noise_var(noise_vars, accept=("variance", "list"))
    variances = variances if isinstance(variances, list) else [variances]
    if (hint := noise.sigma_hint(variances)) is not None:
        click.secho(hint, fg="yellow", err=True)
    names = [] if methods == "none" else None if methods == "all" else [m.strip() for m in methods.split(",")]
    if names is not None and not all(names):  # "" or "noisy,,linear": an empty item dropped ran no baseline
        empty = "is empty" if not methods.strip() else "has an empty item"
        raise click.BadParameter(f"{methods!r} {empty}; give a comma list such as noisy,linear, 'all' or 'none'",
                                 param_hint="'--baselines'")
    table = denoise_run(run_dir, variances, methods=names, subset=subset, seed=seed, data_dir=data_dir,
                        progress=False if quiet else None)
    click.echo(table)
    click.echo(f"wrote {run_dir / 'denoise.md'}, {run_dir / 'denoise.json'} and a grid per level")


@main.command()
@click.argument("study_file", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--preset", type=click.Choice(["default", "quick"]), default=None,
              help="A built-in study instead of STUDY_FILE (default: the whole lab; quick: under 2 minutes on 2 "
                   "cores).")
@click.option("--out", type=_Folder(), default=None,
              help="Study folder (default: runs/<study name>). Rerun the same command to resume.")
@DATA_DIR
@click.option("--executor", type=click.Choice(["local", "ray"]), default="local", show_default=True)
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Trials side by side, with the local executor (default: the study's 'workers').")
@click.option("--address", default=None, help="Ray cluster address (with --executor ray; default: start one).")
@click.option("--cpus-per-trial", type=float, default=None, help="Ray: CPUs per trial (default: the study's threads).")
@click.option("--gpus-per-trial", type=float, default=0, show_default=True, help="Ray: GPUs per trial.")
@click.option("--device", default=None, help="Override the study's device (auto, cpu, cuda).")
@click.option("--stack", type=int, default=None,
              help="Override the study's 'stack': train up to this many same-architecture trials at once (for a GPU).")
@click.option("--quiet", is_flag=True, help="No progress bars.")
def study(study_file, preset, out, data_dir, executor, workers, address, cpus_per_trial, gpus_per_trial, device,
          stack, quiet) -> None:
    """Run a study (STUDY_FILE, --preset, or the default lab) and write its results and report."""
    from . import study as study_mod

    if study_file is not None and preset is not None:
        raise click.UsageError("give a STUDY_FILE or --preset, not both")
    ctx = click.get_current_context()
    ray_only = [f"--{name.replace('_', '-')}" for name in ("address", "cpus_per_trial", "gpus_per_trial")
                if ctx.get_parameter_source(name) is click.core.ParameterSource.COMMANDLINE]
    if ray_only and executor != "ray":  # the local executor has no use for them: say so, not ignore them
        verb = "apply" if len(ray_only) > 1 else "applies"
        raise click.UsageError(f"{', '.join(ray_only)} only {verb} with --executor ray (docs/ray.md); the local "
                               f"executor runs --workers trials side by side and trains on the study's device")
    if executor == "ray" and workers is not None:  # Ray places trials by their resources: it was ignored
        raise click.UsageError("--workers applies to the local executor only; with --executor ray as many trials "
                               "run side by side as the cluster has CPUs for: give --cpus-per-trial N to reserve N "
                               "CPUs per trial, so fewer run at once (docs/ray.md)")
    config = study_mod.load_study(study_file) if study_file else study_mod.preset(preset or "default")
    if device is not None or stack is not None:
        config.device = config.device if device is None else device
        config.stack = config.stack if stack is None else stack
        study_mod._validate(config)
    out = out or Path("runs") / config.name
    options = {}
    if executor == "ray":
        options = {"address": address, "cpus_per_trial": cpus_per_trial, "gpus_per_trial": gpus_per_trial}
    # Ctrl-C, or a scheduler's SIGTERM: the first one stops the study (workers stopped, finished
    # trials kept); from then on both are ignored, so a second one (an impatient Ctrl-C, or
    # `timeout`, which signals the process and then its group) cannot cut the stop short
    previous = {signal.SIGINT: signal.signal(signal.SIGINT, _stop_once),
                signal.SIGTERM: signal.signal(signal.SIGTERM, _stop_once)}
    stopped = False
    try:
        summary = study_mod.run_study(config, out, data_dir=data_dir, executor=executor, workers=workers,
                                      progress=False if quiet else None, **options)
    except KeyboardInterrupt as exc:
        stopped = True
        _ignore_stops()
        how = "terminated (SIGTERM)" if isinstance(exc, _Terminated) else "interrupted"
        click.secho(f"\n{how}: finished trials are saved in {out}; rerun the same command to resume",
                    fg="yellow", err=True)
        sys.exit(143 if isinstance(exc, _Terminated) else 130)
    finally:
        if not stopped:  # the process goes on (a test, a caller of main()): its own handlers back
            for signum, handler in previous.items():
                signal.signal(signum, handler)
    failed = summary["failed"]
    click.echo(f"{out}: {summary['trials_done']}/{summary['trials_total']} trials"
               + (f", {len(failed)} failed" if failed else "")
               + (f" in {summary['wall_seconds']:.0f} s" if "wall_seconds" in summary else ""))
    click.echo(f"results: {out / 'results.csv'}  report: {out / 'report.html'}")
    if failed:
        click.secho(_failure_reasons(failed), fg="red", err=True)
        sys.exit(1)


class _Terminated(KeyboardInterrupt):
    """SIGTERM (e.g. a batch scheduler's time limit) during a study: stops it the way Ctrl-C does."""


def _ignore_stops() -> None:
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.SIG_IGN)


def _stop_once(signum, frame) -> None:
    """The study command's SIGINT / SIGTERM handler: ignore both from now on, then stop the study
    (KeyboardInterrupt, or _Terminated for SIGTERM). Ignoring first leaves no moment in which a
    second signal could interrupt the stop."""
    _ignore_stops()
    raise _Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()


def _failure_reasons(failed: list[dict], shown: int = 3) -> str:
    """What went wrong in a study's failed trials: each distinct error's first line, how many
    trials it stopped and one of them, the most frequent first (at most `shown` errors)."""
    from .study import error_headline

    by_error: dict[str, list[str]] = {}
    for f in failed:
        by_error.setdefault(error_headline(f), []).append(f["id"])
    ranked = sorted(by_error.items(), key=lambda item: -len(item[1]))
    lines = [f"  {len(ids)} x {error}  (e.g. {ids[0]})" for error, ids in ranked[:shown]]
    if len(ranked) > shown:
        lines.append(f"  ... and {len(ranked) - shown} other errors")
    lines.append("the whole messages: the 'error' column of results.csv and the report's failed trials; "
                 "fix the cause and rerun the same command (finished trials are kept)")
    return "failed trials:\n" + "\n".join(lines)


@main.command()
@click.argument("study_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
def report(study_dir: Path) -> None:
    """Write STUDY_DIR/report.html (self-contained) and report.md from a study's results."""
    from .report import write_report

    html, md = write_report(study_dir)
    click.echo(f"wrote {html} and {md}")


if __name__ == "__main__":  # pragma: no cover
    main()
