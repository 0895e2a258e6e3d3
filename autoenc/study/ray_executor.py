"""Run study trials as Ray tasks: on a Ray instance started here, or on an existing Ray cluster.

Each trial is one Ray core task running `trials.run_trial` on some worker (a stack of trials:
one task running `trials.run_stack`); `submit` returns a `concurrent.futures.Future` of its
result row, as the local executors do. Everything a trial writes goes to the study folder, so
that folder must be storage the driver and every Ray node share (the same absolute path
everywhere). Ray retries a trial whose worker died (killed, out of memory, node lost) and one that
raised; a retried trial resumes from its last checkpoint, and a finished trial is never run
again. See docs/ray.md.
"""
from __future__ import annotations

import contextlib
import logging
import math
import os
import signal
import socket
import threading
from concurrent.futures import Future
from pathlib import Path

from ..errors import ConfigError
from .trials import run_stack, run_trial

INSTALL_HINT = "executor=ray needs Ray: pip install 'autoenc[ray]'"


def _import_ray():
    try:
        import ray
    except ImportError:
        raise ConfigError(INSTALL_HINT) from None
    return ray


def run_on_worker(trial: dict | list[dict], study_dir: str, data_dir: str | None) -> dict | list[dict]:
    """What each Ray task runs: `run_trial(trial, study_dir, data_dir)` (returns its result row),
    or `run_stack` for a list of trials (returns their rows), after checking that the study
    folder is visible on this node (ConfigError if it is not)."""
    if not Path(study_dir).is_dir():
        raise ConfigError(f"the study folder {study_dir} does not exist on Ray node {socket.gethostname()}: "
                          "put the study folder (hydra.run.dir) on storage that the driver and every Ray node share, at the same path")
    return (run_stack if isinstance(trial, list) else run_trial)(trial, study_dir, data_dir)


def trial_error(exc: BaseException, attempts: int) -> BaseException:
    """The exception to give the study for a Ray task that failed on every one of `attempts`
    attempts: the trial's own exception (unwrapped from RayTaskError) or, when its worker died, a
    RuntimeError saying so; either with an `attempts` attribute. Other errors pass unchanged."""
    from ray import exceptions as rx

    if isinstance(exc, rx.RayTaskError):
        err = exc.cause
        if not isinstance(err, Exception) or isinstance(err, rx.RayError):  # e.g. a cause Ray could not pickle
            err = RuntimeError(_last_line(str(err if isinstance(err, Exception) else exc)))
    elif isinstance(exc, (rx.WorkerCrashedError, rx.NodeDiedError, rx.OutOfMemoryError,
                          rx.LocalRayletDiedError, rx.ObjectLostError)):
        err = RuntimeError(f"the Ray worker running this trial died on every attempt "
                           f"({type(exc).__name__}: {_first_line(str(exc))})")
    else:
        return exc
    err.attempts = attempts
    return err


def _first_line(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), "")


def _last_line(text: str) -> str:
    return next((line.strip() for line in reversed(text.splitlines()) if line.strip()), "")


def _connect(ray, address: str, source: str, options: dict) -> None:
    """`ray.init(address=address)`, or a ConfigError naming the address (`source`: the flag or the
    variable it came from) and the fix: when nothing listens at its host:port (checked first: Ray
    would retry for about 13 minutes, Ray Client for 30 s), when it is malformed or when `auto`
    finds no cluster on this machine."""
    fix = (f"start it (`ray start --head --port=6379`) or give the right {source} (auto, host:6379 or "
           f"ray://host:10001; docs/ray.md), or {'leave it out' if source.startswith('--') else 'unset it'} "
           f"to start a local Ray instance")
    host, _, port = address.split("://")[-1].rpartition(":")
    if address != "auto" and host and port.isdigit():  # a malformed address: ray.init's ValueError below
        try:
            socket.create_connection((host.strip("[]"), int(port)), timeout=10).close()
        except OSError as exc:
            raise ConfigError(f"no Ray cluster answers at {source} {address} "
                              f"({exc.strerror or type(exc).__name__}): {fix}") from None
    try:
        ray.init(address=address, **options)
    except (ConnectionError, ValueError, RuntimeError) as exc:
        detail, root = _first_line(str(exc)), exc
        while root.__cause__ is not None:  # Ray's "Failed to connect" hides why, e.g. a missing auth token
            root = root.__cause__
        if root is not exc:
            detail += f"; {_last_line(str(root))}"
        raise ConfigError(f"cannot connect to a Ray cluster at {source} {address} ({detail}): {fix}") from None


@contextlib.contextmanager
def _sigterm_kept():
    """Keep this process's SIGTERM handler across the block: `ray.init` replaces it with its own
    (`sys.exit(15)`), which would bypass the study command's (stop the study, say how to resume,
    exit status 143). Only the main thread can set handlers; elsewhere the block just runs."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    handler = signal.getsignal(signal.SIGTERM)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL if handler is None else handler)


def _local_cpus() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


class RayExecutor:
    """Runs each study trial as a Ray task (see the module docstring).

    study_dir: the study folder (made an absolute path; it must be shared storage on a
    cluster); data_dir: the datasets folder, passed to every trial (default $AUTOENC_DATA_DIR, else
    each worker's own search); threads: the study's CPU threads per trial; address: a Ray
    cluster to connect to ("auto", "host:port", "ray://..."; default $RAY_ADDRESS, else start a
    local instance with every core of this machine); cpus_per_trial: CPUs Ray reserves per
    trial (default `threads`); gpus_per_trial: GPUs per trial (fractions pack several trials on
    one GPU; 0 hides the GPUs from trials); max_retries: how often a failed trial is retried.
    """

    events = None  # no per-epoch progress from Ray workers; the study shows trials done

    def __init__(self, study_dir: str | Path, data_dir: str | Path | None, threads: int,
                 address: str | None = None, cpus_per_trial: float | None = None,
                 gpus_per_trial: float = 0, max_retries: int = 2) -> None:
        ray = _import_ray()
        if cpus_per_trial is not None and not 0 < cpus_per_trial < math.inf:  # nan and inf too
            raise ConfigError(f"ray.cpus_per_trial={cpus_per_trial!r} is not allowed; give a number > 0")
        if gpus_per_trial is None or not 0 <= gpus_per_trial < math.inf:
            raise ConfigError(f"ray.gpus_per_trial={gpus_per_trial!r} is not allowed; give a number >= 0")
        if not isinstance(max_retries, int) or max_retries < 0:
            raise ConfigError(f"max_retries {max_retries!r} is not allowed; give a whole number >= 0")
        self._ray = ray
        self.study_dir = Path(os.path.abspath(Path(study_dir).expanduser()))  # symlinks kept: nodes may differ
        data_dir = data_dir or os.environ.get("AUTOENC_DATA_DIR") or None
        self.data_dir = os.path.abspath(Path(data_dir).expanduser()) if data_dir else None
        self.gpus_per_trial = gpus_per_trial
        self.attempts = max_retries + 1
        self.started = not ray.is_initialized()  # shutdown() disconnects only what it connected
        if self.started:
            with _sigterm_kept():  # ray.init sets its own SIGTERM handler
                quiet = {"include_dashboard": False, "ignore_reinit_error": True, "logging_level": logging.WARNING}
                source = "ray.address" if address else "$RAY_ADDRESS"
                address = address or os.environ.get("RAY_ADDRESS") or None
                if address and address != "local":
                    _connect(ray, address, source, quiet)
                else:
                    cpus = max(_local_cpus(), math.ceil(cpus_per_trial or threads))
                    ray.init(address="local", num_cpus=cpus, **quiet)
                    if ray.cluster_resources().get("GPU", 0) < gpus_per_trial:
                        ray.shutdown()
                        raise ConfigError(f"ray.gpus_per_trial={gpus_per_trial:g}, but this machine has no GPU Ray "
                                          "can use; give ray.gpus_per_trial=0 or ray.address of a cluster with GPUs")
        options = {"num_cpus": cpus_per_trial or threads, "num_gpus": gpus_per_trial,
                   "max_retries": max_retries, "retry_exceptions": True}
        if not gpus_per_trial:  # Ray shows every GPU to a task that asked for none: hide them
            options["runtime_env"] = {"env_vars": {"CUDA_VISIBLE_DEVICES": ""}}
        self._task, self._options = ray.remote(run_on_worker), options
        self._pending: set = set()

    def has_slot(self, trial: dict | list[dict]) -> bool:
        """Always: Ray queues the tasks and places them on the cluster's free CPUs (and GPUs)."""
        return True

    def task_options(self, trial: dict) -> dict:
        """Ray's options for the task of `trial` (a trial dict; a stack's first): its name, CPUs,
        retries, and GPUs only for an autoencoder's training; PCA and the classical baselines run
        on CPUs alone, so they never hold a GPU that a training waits for."""
        options = {"name": trial["id"], **self._options}
        if trial.get("kind") != "ae" and options.get("num_gpus"):
            options.update(num_gpus=0, runtime_env={"env_vars": {"CUDA_VISIBLE_DEVICES": ""}})
        return options

    def submit(self, trial: dict | list[dict]) -> Future:
        """Start `trial` (a `study.Trial.to_dict()`, or a list of them: a stack) as a Ray task;
        returns a Future of its result row (a list of rows for a stack), whose exception (after
        every attempt failed) has an `attempts` attribute. Raises ConfigError for a trial set to
        train on CUDA when no GPUs are given per trial."""
        first = trial[0] if isinstance(trial, list) else trial
        device = str(first["spec"].get("train", {}).get("device", "cpu"))
        if device.startswith("cuda") and not self.gpus_per_trial:
            raise ConfigError(f"the study trains on {device}: give ray.gpus_per_trial (e.g. 1, or 0.25 to "
                              "share a GPU between 4 trials) with executor=ray")
        ref = self._task.options(**self.task_options(first)).remote(trial, str(self.study_dir), self.data_dir)
        self._pending.add(ref)
        out: Future = Future()

        def settle(done: Future) -> None:
            self._pending.discard(ref)
            try:
                out.set_result(done.result())
            except BaseException as exc:  # noqa: BLE001 - handed to the study, which records it
                out.set_exception(trial_error(exc, self.attempts))

        ref.future().add_done_callback(settle)
        return out

    def shutdown(self) -> None:
        """Cancel the trials still queued or running (force: their workers are stopped; finished
        trials and checkpoints stay on disk), then disconnect from Ray if this executor connected
        (stopping the local instance it started; a cluster keeps running)."""
        ray = self._ray
        if not ray.is_initialized():
            return
        for ref in list(self._pending):
            try:
                ray.cancel(ref, force=True)
            except Exception:  # noqa: BLE001 - already finished or gone
                pass
        if self.started:
            ray.shutdown()
