"""Running a study: its trials on an executor, resumable, into one folder.

Each trial writes its run folder and `result.json` atomically under <out>/trials/<trial id>/;
the study then writes results.csv / results.json (a row per trial), denoising.csv /
denoising.json (a row per dataset x noise variance x method) and summary.json.
"""
from __future__ import annotations

import contextlib
import csv
import functools
import io
import json
import math
import signal
import sys
import time
from concurrent.futures import FIRST_COMPLETED, Future, wait
from pathlib import Path
from typing import Any

import yaml

from .. import data
from ..errors import ConfigError
from ..files import atomic_write_json, atomic_write_text
from ..progress import Bars
from ..training import resolve_device
from .executors import (
    cpu_workers,
    default_workers,
    drain,
    make_executor,
    signals_ignored,
)
from .environment import environment
from .planner import (
    StudyConfig,
    Trial,
    best_arm,
    by_priority,
    count_trials,
    is_number,
    on_gpu,
    plan,
    seeds_of,
    stack_groups,
)
from .trials import failed_result, finished_result, trial_dir


def _scan_finished(c: StudyConfig, out: Path) -> dict[str, dict]:
    """Results of trials finished in an earlier run (failed ones are retried)."""
    done: dict[str, dict] = {}
    while True:
        new = {t.id: r for t in plan(c, done) if t.id not in done
               and (r := finished_result(out, t.to_dict())) is not None and r.get("status") == "ok"}
        if not new:
            return done
        done.update(new)


def run_study(config: StudyConfig, out: str | Path, data_dir: str | Path | None = None,
              executor: str = "local", workers: int | None = None, progress: bool | None = None,
              runtime: dict | None = None, **executor_options) -> dict:
    """Run (or resume) a study into folder `out` and return its summary (see `collect`).

    Finished trials are skipped; an interrupted trial resumes from its checkpoint. Ready trials
    take free workers in `by_priority` order, so those that others wait for go first. executor:
    "local" (this machine: `workers` trials side by side, default from the config; on a GPU the
    CPU-only trials run in a second pool at the lowest priority, `executors.cpu_workers`) or "ray"
    (executor_options: address, cpus_per_trial, gpus_per_trial, max_retries). runtime: how the
    trainings run, not what they compute ({checkpoint_seconds, cuda_graphs}, as `fit` takes them). Writes
    study.yaml, results.csv/json, denoising.csv/json and summary.json (the report is
    `report.write_report`'s).
    Ctrl-C stops the workers and re-raises KeyboardInterrupt; rerun to resume. A dataset that
    cannot be found (or downloaded) raises DataError before any trial starts (with Ray on an
    existing cluster, `address` given, the workers' own data is not checked here). A second
    study into a folder that one is running in is refused (`study_lock`)."""
    out = Path(out)
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    try:
        with study_lock(out):
            return _run_study(config, out, data_dir, executor, workers, progress, runtime or {}, executor_options)
    except BaseException:
        # refused before any trial (a --device without a GPU, missing data): no half-made study folder is left
        if created and {p.name for p in out.iterdir()} <= {".lock", "study.yaml"}:
            for p in out.iterdir():
                p.unlink()
            out.rmdir()
        raise


@contextlib.contextmanager
def study_lock(out: Path):
    """Hold study folder `out` for this process while the block runs: a second study into the same
    folder (it would train the same trials twice, side by side) is refused with a ConfigError naming
    the process that holds it. The lock is an flock on out/.lock, so it ends with its process, even
    a killed one; on a system without fcntl there is none."""
    try:
        import fcntl
    except ImportError:  # not POSIX
        yield
        return
    import os
    import socket

    fh = open(out / ".lock", "a+")
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        fh.seek(0)
        holder = fh.read().strip() or "a process that did not say which"
        fh.close()
        raise ConfigError(f"another study is running in {out} ({holder}): wait for it to end or stop it (a second "
                          f"one would train the same trials twice), then rerun to resume; or give another folder (hydra.run.dir=...)")
    try:
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()} on {socket.gethostname()}, since {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
        fh.flush()
        yield
    finally:
        fh.close()


def _run_study(config: StudyConfig, out: Path, data_dir: str | Path | None, executor: str, workers: int | None,
               progress: bool | None, runtime: dict, executor_options: dict) -> dict:
    """run_study's work, in the study folder `out` that this process holds (study_lock)."""
    atomic_write_text(out / "study.yaml", yaml.safe_dump(config.to_dict(), sort_keys=False))
    show = sys.stderr.isatty() if progress is None else progress
    log = progress is None and not show  # output to a file or pipe: a line per finished trial instead of bars
    gpu = on_gpu(config)
    if workers is None:
        workers = default_workers(config.threads, gpu) if config.workers == "auto" else config.workers
    side = cpu_workers(config.threads, gpu) if executor == "local" else 0
    done = _scan_finished(config, out)
    total = count_trials(config)
    if len(done) < total and (executor == "local" or not executor_options.get("address")):
        for dataset in config.datasets:  # missing data fails here, once, not in every trial
            data.ensure(dataset, data_dir)
    previous = _read_summary(out)
    earlier = previous.get("wall_seconds_total", 0.0)  # wall time of the earlier runs
    pool = make_executor(executor, out, Path(data_dir) if data_dir else None, workers, config.threads,
                         show, cpu_workers=side, **executor_options)
    bars = Bars(show)
    bar = bars.add(f"study {config.name}", total, len(done))
    trial_bars: dict[str, Any] = {}
    running: dict[Future, list[Trial]] = {}
    t0 = time.perf_counter()
    # results.csv, denoising.csv and summary.json from the trials in `done` so far; the summary
    # holds the start of the last run that ran trials, a Unix time (the origin of the report's
    # timeline): this one's unless every trial had finished before
    started = time.time() if len(done) < total else previous.get("started_at")
    ran_on = environment(str(resolve_device(config.device))) if len(done) < total else previous.get("environment")
    write = functools.partial(collect, config, out, done, earlier_seconds=earlier, started_at=started,
                              ran_on=ran_on)
    if not (out / "summary.json").is_file():  # the report's trial count, before the first trial ends
        write()
    changed = False  # results came in since results.csv was last written
    stopped = True  # until the loop below ends: Ctrl-C, SIGTERM or an error stopped this run
    try:
        while True:
            busy = {t.id for group in running.values() for t in group}
            for group in by_priority(stack_groups(plan(config, done))):
                if any(t.id not in done for t in group) and not any(t.id in busy for t in group):
                    jobs = [{**t.to_dict(), "runtime": runtime} for t in group]
                    job = jobs if len(jobs) > 1 else jobs[0]
                    if not pool.has_slot(job):
                        continue  # it waits for a worker: a trial released meanwhile may go first
                    if changed and not running:  # no other trial runs (inline: this one runs now)
                        write()  # so no one waits: results first
                        changed = False
                    future = pool.submit(job)
                    running[future] = group
                    if future.done():  # it ran as it was submitted (inline): plan again before the next
                        break
            if changed:  # while other trials run: after the free workers got their next ones
                write()  # results.csv stays current
                changed = False
            if not running:
                break
            finished, _ = wait(list(running), timeout=0.5, return_when=FIRST_COMPLETED)
            for trial_id, epoch, epochs, val_psnr in drain(pool.events):
                if show and trial_id not in trial_bars:
                    trial_bars[trial_id] = bars.add(trial_id[:40], epochs)
                if trial_id in trial_bars:
                    bars.update(trial_bars[trial_id], completed=epoch, info=f"val psnr {val_psnr:.2f} dB")
            for fut in finished:
                group = running.pop(fut)
                try:
                    rows = fut.result()
                    rows = rows if isinstance(rows, list) else [rows]
                except Exception as exc:  # a trial that failed on every attempt: record it, go on
                    rows = [failed_result(t.to_dict(), f"{type(exc).__name__}: {exc}",
                                          attempts=getattr(exc, "attempts", 1)) for t in group]
                    for t, row in zip(group, rows):
                        atomic_write_json(trial_dir(out, t.id) / "result.json", row)
                for t, row in zip(group, rows):
                    bars.update(bar, advance=t.id not in done)
                    done[t.id] = row
                    if log:
                        print(trial_line(len(done), total, row), file=sys.stderr, flush=True)
                    if t.id in trial_bars:
                        bars.remove(trial_bars.pop(t.id))
            changed = changed or bool(finished)
        stopped = False
    finally:  # also on Ctrl-C: stop the workers; finished trials are on disk
        # a second Ctrl-C (an impatient user, or `timeout`, which signals the process and then its
        # group) must not cut the stop short: workers left running, a traceback, a lost summary
        with signals_ignored(signal.SIGINT, signal.SIGTERM) if stopped else contextlib.nullcontext():
            pool.shutdown()
            if stopped:  # this run's time still counts in the study's total wall time
                write(wall_seconds=time.perf_counter() - t0)
            elif changed:
                write()
        bars.close()
    summary = write(wall_seconds=time.perf_counter() - t0)
    return summary


def error_headline(row: dict) -> str:
    """The first line of a failed trial's error (its result row's "error"), "unknown error" if none."""
    lines = str(row.get("error") or "").strip().splitlines()
    return lines[0] if lines else "unknown error"


def trial_line(n_done: int, total: int, row: dict) -> str:
    """One line on a finished trial (its result row), for a study whose output is not a terminal:
    "[n_done/total] id ok: psnr 24.10 dB, 41.2 s" (psnr: test, mean per-image, dB, of the outputs of
    clean inputs; seconds: the trial's wall time), or the first line of a failed trial's error.

    A denoiser's psnr is labelled "(clean inputs)" and followed by its denoising psnr on the fixed
    noisy test images: at its own variance, "psnr 20.07 dB (clean inputs), denoising psnr 23.40 dB
    at sigma^2=0.04", or for a blind one the lowest and highest over the evaluation levels in its
    range, and those levels, "denoising psnr 17.90-26.10 dB at sigma^2 0.01-0.25" (one level: as a
    per-level denoiser's). A baselines trial of one method
    shows that method's denoising psnr, "denoising psnr 18.20 dB at sigma^2=0.04" (with "on the
    fixed subset of N test images" for a subset-only method such as bm3d)."""
    head = f"[{n_done}/{total}] {row['id']}"
    if row.get("status") != "ok":
        return f"{head} failed: {error_headline(row)}"

    nv, parts = row.get("noise_var"), []
    if "rows" in row:  # a baselines trial holds its methods' rows, each scored on noisy inputs of noise_var
        scored = [r for r in row.get("rows") or [] if is_number(r.get("psnr"))]
        if len(scored) == 1 and is_number(nv):
            r = scored[0]
            on = f" on the fixed subset of {r.get('n_images', 0):,} test images" if r.get("subset") else ""
            parts.append(f"denoising psnr {r['psnr']:.2f} dB at sigma^2={nv:g}{on}")
    elif is_number(row.get("psnr")):
        if nv is None:
            parts.append(f"psnr {row['psnr']:.2f} dB")
        else:
            parts.append(f"psnr {row['psnr']:.2f} dB (clean inputs)")
            levels = [d for d in row.get("denoising") or [] if is_number(d.get("psnr")) and is_number(d.get("noise_var"))]
            if isinstance(nv, (list, tuple)) and len(nv) == 2:
                inside = [d for d in levels if nv[0] <= d["noise_var"] <= nv[1]]
                if len(inside) == 1:
                    parts.append(f"denoising psnr {inside[0]['psnr']:.2f} dB at sigma^2={inside[0]['noise_var']:g}")
                elif inside:
                    psnrs, variances = [d["psnr"] for d in inside], [d["noise_var"] for d in inside]
                    parts.append(f"denoising psnr {min(psnrs):.2f}-{max(psnrs):.2f} dB "
                                 f"at sigma^2 {min(variances):g}-{max(variances):g}")
            else:
                own = [d["psnr"] for d in levels if d["noise_var"] == nv]
                if own:
                    parts.append(f"denoising psnr {own[0]:.2f} dB at sigma^2={nv:g}")
    parts.append(f"{row.get('wall_seconds', 0):.1f} s")
    return f"{head} ok: {', '.join(parts)}"


RESULT_COLUMNS = [
    "id", "phase", "kind", "dataset", "depth", "widths", "latent", "l2", "l1", "noise_var", "seed",
    "psnr", "psnr_dataset", "ssim", "val_psnr", "train_psnr", "noisy_psnr", "code_hoyer", "code_small_fraction",
    "code_dead_units", "code_mean_abs", "code_zero_fraction", "epochs", "epochs_run", "best_epoch",
    "activation", "latent_activation", "norm", "decoder_norm", "unit_code_columns", "init", "schedule", "lr",
    "warmup", "batch_size", "loss",
    "precision", "seconds", "parameters", "per_class_psnr", "status", "error",
]


DENOISING_COLUMNS = [
    "dataset", "noise_var", "sigma", "method", "seed", "detail", "psnr", "psnr_dataset", "ssim", "n_images",
    "subset_psnr", "subset_psnr_dataset", "subset_ssim", "subset_images", "seconds",
]


TIMING_COLUMNS = ("seconds", "wall_seconds")  # the only columns that differ between identical runs


def _csv(rows: list[dict], columns: list[str]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: (json.dumps(v) if isinstance(v, (list, dict)) else v) for k, v in row.items()})
    return buf.getvalue()


def _denoising_rows(c: StudyConfig, done: dict[str, dict], ordered: list[dict]) -> list[dict]:
    """One row per dataset x evaluation variance x method (x training seed for the autoencoders):
    the classical baselines, the per-level and blind denoising autoencoders, and the best plain
    autoencoder (the grid arm validation chose) fed noisy images."""
    if c.denoising is None:
        return []
    rows = []
    for dataset in c.datasets:
        mine = [r for r in ordered if r["dataset"] == dataset and r.get("status") == "ok"]
        best_plain = best_arm([r for r in mine if r["phase"] == "grid"] or [None]) or []
        for var in c.denoising.variances:
            def add(method: str, detail: str, score: dict | None, seconds=None, seed=None) -> None:
                if score is not None:
                    rows.append({"dataset": dataset, "noise_var": var, "sigma": round(math.sqrt(var), 4),
                                 "method": method, "seed": seed, "detail": detail, "seconds": seconds,
                                 **{k: score.get(k) for k in ("psnr", "psnr_dataset", "ssim", "n_images",
                                                              "subset_psnr", "subset_psnr_dataset", "subset_ssim",
                                                              "subset_images")}})

            for r in mine:
                if r["kind"] == "baselines" and r["noise_var"] == var:
                    for b in r["rows"]:
                        add(b["method"], b.get("detail", ""), _baseline_score(b), b.get("seconds"))
            for r in mine:
                if r["kind"] != "ae" or r["noise_var"] is None:
                    continue
                blind = isinstance(r["noise_var"], list)
                if not blind and r["noise_var"] != var:
                    continue
                score = next((s for s in r["denoising"] if s["noise_var"] == var), None)
                arch = f"widths {r['widths']}, L={r['latent']}"
                detail = f"blind σ² {r['noise_var'][0]:g}..{r['noise_var'][1]:g}; {arch}" if blind else arch
                add("dae-blind" if blind else "dae", detail, score, r["seconds"], r.get("seed"))
            for r in best_plain:
                score = next((s for s in r["denoising"] if s["noise_var"] == var), None)
                add("ae", f"best plain autoencoder (depth {r['depth']}, L={r['latent']})", score, None, r.get("seed"))
    return rows


def _baseline_score(b: dict) -> dict:
    """A baseline result as a denoising-table score: a method run on the fixed subset only has
    subset_* numbers (psnr, psnr_dataset and ssim empty: it has none on the whole split)."""
    if b.get("subset"):
        return {"subset_psnr": b["psnr"], "subset_psnr_dataset": b["psnr_dataset"], "subset_ssim": b.get("ssim"),
                "subset_images": b["n_images"], "note": b.get("note", "")}
    return b


def _read_summary(out: Path) -> dict:
    """The summary.json of an earlier run of the study in `out` ({} when there is none, or it is
    damaged: it holds only what this run rewrites, and the earlier runs' wall time)."""
    try:
        summary = json.loads((out / "summary.json").read_text())
    except (OSError, ValueError):
        return {}
    return summary if isinstance(summary, dict) else {}


def collect(c: StudyConfig, out: str | Path, done: dict[str, dict] | None = None,
            wall_seconds: float | None = None, earlier_seconds: float = 0.0, started_at: float | None = None,
            ran_on: dict | None = None) -> dict:
    """Write results.csv/json (a row per trial), denoising.csv/json and summary.json from the
    finished trials of study `c` in `out`; returns the summary dict (rows, denoising, choices:
    per dataset and phase the arm validation chose, by its mean validation psnr over the seeds).
    wall_seconds: this run's wall time once it ended; earlier_seconds: the earlier runs' total;
    started_at: the start of the latest run that ran trials (Unix time, s; the origin of the
    report's timeline); ran_on: what ran it (`environment.environment`), kept as "environment"."""
    out = Path(out)
    done = _scan_finished(c, out) if done is None else done
    ordered = []
    for t in plan(c, done):
        r = done.get(t.id) or finished_result(out, t.to_dict())
        if r is not None:
            ordered.append(r)
    rows = [{k: v for k, v in r.items() if k != "trial"} for r in ordered if r["kind"] in ("ae", "pca")]
    failed = [{"id": r["id"], "phase": r["phase"], "dataset": r["dataset"], "error": r.get("error", ""),
               "attempts": r.get("attempts", 1)} for r in ordered if r.get("status") != "ok"]
    rows += [{k: v for k, v in r.items() if k != "trial"} for r in ordered
             if r["kind"] == "baselines" and r.get("status") != "ok"]
    denoising = _denoising_rows(c, done, ordered)
    choices = {}
    for dataset in c.datasets:
        mine = [r for r in ordered if r["dataset"] == dataset and r.get("status") == "ok" and r["kind"] == "ae"]
        pick = {}
        for phase in ("grid", "l2", "l1"):
            best = best_arm([r for r in mine if r["phase"] == phase] or [None])
            if best is not None:
                pick[phase] = {"id": best[0]["id"], "ids": [r["id"] for r in best], "depth": best[0]["depth"],
                               "latent": best[0]["latent"], "l2": best[0]["l2"], "l1": best[0]["l1"],
                               "val_psnr": sum(r["val_psnr"] for r in best) / len(best)}
        choices[dataset] = pick
    summary = {"study": c.to_dict(), "seeds": seeds_of(c), "trials_total": count_trials(c),
               "trials_done": len(ordered), "failed": failed, "choices": choices, "rows": rows,
               "denoising": denoising}
    if ran_on is not None:
        summary["environment"] = ran_on
    if started_at is not None:
        summary["started_at"] = round(started_at, 3)
    if wall_seconds is not None:  # this run's wall time, and the total over the runs that ended
        summary["wall_seconds"] = round(wall_seconds, 1)
        summary["wall_seconds_total"] = round(earlier_seconds + wall_seconds, 1)
    elif earlier_seconds:  # summaries written while a run goes on keep the earlier total
        summary["wall_seconds_total"] = round(earlier_seconds, 1)
    atomic_write_text(out / "results.csv", _csv(rows, RESULT_COLUMNS))
    atomic_write_json(out / "results.json", rows)
    atomic_write_text(out / "denoising.csv", _csv(denoising, DENOISING_COLUMNS))
    atomic_write_json(out / "denoising.json", denoising)
    atomic_write_json(out / "summary.json", {k: v for k, v in summary.items() if k not in ("rows", "denoising")})
    return summary
