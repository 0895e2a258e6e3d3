"""`autoenc study`: the whole lab (grid, regularization, denoising, baselines) from the composed
config, resumable, then its report.

    autoenc study                         the lab (conf/study/lab.yaml) into outputs/lab/
    autoenc study study=quick             the lab in miniature, about 2 minutes on 2 cores
    autoenc study study.seed=1 executor=ray ray.address=auto

Ctrl-C or SIGTERM stops it with the finished trials kept; the same command resumes it.
"""
from __future__ import annotations

import logging
import shutil
import signal
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from .. import data
from ..config import StudyJob, check_study_job, conf_dir, cuda_graphs_mode, register_configs
from ..errors import AutoencError
from . import hydra_cli

log = logging.getLogger("autoenc")
register_configs()


class Terminated(KeyboardInterrupt):
    """SIGTERM (e.g. a batch scheduler's time limit) during a study: stops it as Ctrl-C does."""


def _ignore_stops() -> None:
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.SIG_IGN)


def _stop_once(signum, frame) -> None:
    """SIGINT / SIGTERM: ignore both from now on (a second one cannot cut the stop short), then
    stop the study (KeyboardInterrupt, or Terminated)."""
    _ignore_stops()
    raise Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()


def failure_reasons(failed: list[dict], shown: int = 3) -> str:
    """A study's failed trials: each distinct error's first line, how many trials it stopped and
    one of them, the most frequent first (at most `shown` errors)."""
    from ..study.runner import error_headline

    by_error: dict[str, list[str]] = {}
    for f in failed:
        by_error.setdefault(error_headline(f), []).append(f["id"])
    ranked = sorted(by_error.items(), key=lambda item: -len(item[1]))
    lines = [f"  {len(ids)} x {error}  (e.g. {ids[0]})" for error, ids in ranked[:shown]]
    if len(ranked) > shown:
        lines.append(f"  ... and {len(ranked) - shown} other errors")
    lines.append("the whole messages: the 'error' column of results.csv and the report's failed trials; fix the "
                 "cause and rerun the same command (finished trials are kept)")
    return "failed trials:\n" + "\n".join(lines)


@hydra.main(version_base=None, config_path=conf_dir(), config_name="study")
def task(cfg: DictConfig) -> None:
    """Hydra's task: run (or resume) the study into its folder, then write its report."""
    from ..report.sections import write_report
    from ..study.runner import run_study

    job = hydra_cli.to_schema(cfg, StudyJob, check_study_job)
    out = Path(HydraConfig.get().runtime.output_dir)
    options = {}
    if job.executor == "ray":
        options = {"address": job.ray.address, "cpus_per_trial": job.ray.cpus_per_trial,
                   "gpus_per_trial": job.ray.gpus_per_trial}
    previous = {signum: signal.signal(signum, _stop_once) for signum in (signal.SIGINT, signal.SIGTERM)}
    stopped = False
    try:
        summary = run_study(job.study, out, data_dir=job.data_dir, executor=job.executor, workers=job.workers,
                            runtime={"checkpoint_seconds": job.checkpoint_seconds,
                                     "cuda_graphs": cuda_graphs_mode(job.cuda_graphs)}, **options)
        write_report(out)
    except KeyboardInterrupt as exc:
        stopped = True
        _ignore_stops()
        how = "terminated (SIGTERM)" if isinstance(exc, Terminated) else "interrupted"
        print(f"\n{how}: finished trials are saved in {out}; rerun the same command to resume", file=sys.stderr)
        sys.exit(143 if isinstance(exc, Terminated) else 130)
    except AutoencError as exc:
        log.error("error: %s", exc)
        made = hydra_cli.RUN_DIR_EXISTED == [False]
        if made and out.is_dir() and {p.name for p in out.iterdir()} <= {".hydra", "study.log", ".lock", "study.yaml"}:
            shutil.rmtree(out, ignore_errors=True)  # refused before any trial: no half-made study folder
        sys.exit(2)
    finally:
        if not stopped:  # the process goes on (a test, a caller of main()): its own handlers back
            for signum, handler in previous.items():
                signal.signal(signum, handler)
    failed = summary["failed"]
    log.info("%s: %d/%d trials%s%s", out, summary["trials_done"], summary["trials_total"],
             f", {len(failed)} failed" if failed else "",
             f" in {summary['wall_seconds']:.0f} s" if "wall_seconds" in summary else "")
    log.info("results: %s  report: %s", out / "results.csv", out / "report.html")
    if failed:
        print(failure_reasons(failed), file=sys.stderr)
        sys.exit(1)


def _data_there(job: StudyJob) -> None:
    """Refuse a study whose data cannot be found (or downloaded), or whose backend is not installed,
    before Hydra makes its folder (on an existing Ray cluster the workers' data and packages are theirs)."""
    if job.executor == "local" or not job.ray.address:
        for dataset in job.study.datasets:
            data.ensure(dataset, job.data_dir)
        if job.study.backend == "keras":
            from ..training import keras_backend  # noqa: F401 - a ConfigError saying what to install


def main(args: list[str]) -> int:
    """`autoenc study [overrides and Hydra flags]`; returns the exit status."""
    return hydra_cli.run(task, "study", args, StudyJob, check_study_job, precheck=_data_there)
