"""The Ray executor: a small study with every phase of the lab on a local 2-CPU Ray cluster gives the
local executor's results; a trial whose worker is SIGKILLed mid-training is retried and ends with the same numbers;
a trial that fails on every attempt is recorded as failed; without Ray the flag says how to
install it.

Skipped when Ray is not installed, unless AUTOENC_REQUIRE_RAY=1 (CI installs the ray extra).
"""
from __future__ import annotations

import csv
import json
import os
import signal
import sys
import threading
import time
from pathlib import Path

import pytest

from autoenc.errors import ConfigError

if os.environ.get("AUTOENC_REQUIRE_RAY") == "1":
    import ray
else:
    ray = pytest.importorskip("ray", reason="the ray extra is not installed (pip install 'autoenc[ray]')")

from autoenc.report import write_report  # noqa: E402
from autoenc.study import TIMING_COLUMNS, run_study, study_from_dict  # noqa: E402

pytestmark = pytest.mark.ray

SUBSET = {"train": 3000, "val": 500, "test": 500}


def _small(**overrides) -> dict:
    """A study of a few small trials (seconds each on 2 cores)."""
    return {"name": "small", "datasets": ["mnist"], "depths": [3], "latents": [15, 30], "epochs": 3, "seeds": 1,
            "l2": [], "l1": [], "combined": False, "pca": False, "denoising": None, "subset": SUBSET,
            **overrides}


def _rows(path: Path) -> list[dict]:
    """The rows of a CSV file without the timing columns (which differ between identical runs)."""
    with open(path, newline="") as f:
        return [{k: v for k, v in row.items() if k not in TIMING_COLUMNS} for row in csv.DictReader(f)]


def _files(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()}


def _same_results(a: Path, b: Path) -> None:
    for name in ("results.csv", "denoising.csv"):
        assert _rows(a / name) == _rows(b / name), name
    summary_a, summary_b = (json.loads((d / "summary.json").read_text()) for d in (a, b))
    assert summary_a["choices"] == summary_b["choices"]
    assert summary_a["failed"] == summary_b["failed"]


def _ray_worker_pid(trial_id: str) -> int | None:
    """The pid of the Ray worker whose process title says it runs task `trial_id` (tasks are named
    after their trial)."""
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            title = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue
        if title.split(" ")[0] == f"ray::{trial_id}":
            return int(cmdline.parent.name)
    return None


# ------------------------------------------------------------------------------------------ no Ray

def test_without_ray_the_flag_says_how_to_install(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "ray", None)
    from autoenc.study.executors import make_executor

    with pytest.raises(ConfigError, match=r"executor=ray needs Ray: pip install 'autoenc\[ray\]'"):
        make_executor("ray", tmp_path, None, workers=1, threads=1, progress=False)


def test_bad_resources_are_config_errors(tmp_path):
    from autoenc.study.ray_executor import RayExecutor

    with pytest.raises(ConfigError, match="ray.cpus_per_trial"):
        RayExecutor(tmp_path, None, threads=1, cpus_per_trial=0)
    with pytest.raises(ConfigError, match="ray.gpus_per_trial"):
        RayExecutor(tmp_path, None, threads=1, gpus_per_trial=-1)
    for bad in (float("nan"), float("inf")):  # no OverflowError or Ray's ValueError, and before Ray starts
        with pytest.raises(ConfigError, match="ray.cpus_per_trial"):
            RayExecutor(tmp_path, None, threads=1, cpus_per_trial=bad)
        with pytest.raises(ConfigError, match="ray.gpus_per_trial"):
            RayExecutor(tmp_path, None, threads=1, gpus_per_trial=bad)
    assert not ray.is_initialized()


def test_a_cluster_that_is_not_there_is_a_config_error_not_a_hang(monkeypatch, tmp_path):
    """Nothing listening at --address (or $RAY_ADDRESS) is said at once, not after Ray's ~13 minutes
    of retries ending in a traceback; so are a malformed address and `auto` with no cluster."""
    if ray.is_initialized():
        pytest.skip("a Ray instance is already running in this process")
    import socket

    from autoenc.study.ray_executor import RayExecutor

    with socket.socket() as s:  # a port where nothing listens
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    t0 = time.monotonic()
    with pytest.raises(ConfigError, match=rf"no Ray cluster answers at ray.address 127.0.0.1:{port} .*ray start"):
        RayExecutor(tmp_path, None, threads=1, address=f"127.0.0.1:{port}")
    with pytest.raises(ConfigError, match=rf"no Ray cluster answers at ray.address ray://127.0.0.1:{port} "):
        RayExecutor(tmp_path, None, threads=1, address=f"ray://127.0.0.1:{port}")
    monkeypatch.setenv("RAY_ADDRESS", f"127.0.0.1:{port}")
    with pytest.raises(ConfigError, match=r"at \$RAY_ADDRESS .*unset it"):
        RayExecutor(tmp_path, None, threads=1)
    assert time.monotonic() - t0 < 30
    monkeypatch.delenv("RAY_ADDRESS")
    with pytest.raises(ConfigError, match="cannot connect to a Ray cluster at ray.address nonsense"):
        RayExecutor(tmp_path, None, threads=1, address="nonsense")

    def no_cluster(**kwargs):  # what ray.init(address="auto") raises with no cluster on this machine
        raise ConnectionError("Could not find any running Ray instance. Please specify ...")

    monkeypatch.setattr(ray, "init", no_cluster)
    with pytest.raises(ConfigError, match=r"ray.address auto \(Could not find any running Ray instance"):
        RayExecutor(tmp_path, None, threads=1, address="auto")

    def refused(**kwargs):  # what ray.init raises for a cluster with token authentication, without the token
        try:
            raise RuntimeError("Failed to connect to GCS. Last connection error: Traceback ...\n"
                               "ray.exceptions.AuthenticationError: RPC error: InvalidAuthToken: ...")
        except RuntimeError as exc:
            raise ConnectionError("Failed to connect to Ray cluster at 10.0.0.1:6379") from exc

    monkeypatch.setattr(ray, "init", refused)
    with socket.socket() as s:  # a port that answers
        s.bind(("127.0.0.1", 0))
        s.listen()
        with pytest.raises(ConfigError, match=r"Failed to connect to Ray cluster at .*; ray.exceptions."
                                              r"AuthenticationError: RPC error: InvalidAuthToken"):
            RayExecutor(tmp_path, None, threads=1, address=f"127.0.0.1:{s.getsockname()[1]}")
    assert not ray.is_initialized()


def test_failed_tasks_become_readable_errors_with_attempts():
    from ray import exceptions as rx

    from autoenc.errors import TrainingError
    from autoenc.study.ray_executor import trial_error

    wrapped = rx.RayTaskError("run_on_worker", "Traceback (most recent call last):\nTrainingError: loss nan",
                              TrainingError("loss nan")).as_instanceof_cause()
    err = trial_error(wrapped, 3)
    assert type(err) is TrainingError and str(err) == "loss nan" and err.attempts == 3
    err = trial_error(rx.WorkerCrashedError(), 3)
    assert type(err) is RuntimeError and err.attempts == 3
    assert str(err).startswith("the Ray worker running this trial died on every attempt (WorkerCrashedError: ")
    other = ValueError("not from a task")
    assert trial_error(other, 3) is other and not hasattr(other, "attempts")


# ------------------------------------------------------------------------------------------ Ray

def test_only_a_training_asks_ray_for_a_gpu():
    """With --gpus-per-trial, PCA and the classical baselines (CPU-only) held a GPU slot each, so on
    a GPU cluster they queued for GPUs beside the trainings and kept trainings waiting."""
    from autoenc.study.ray_executor import RayExecutor

    executor = object.__new__(RayExecutor)  # the options alone: no Ray started
    executor._options = {"num_cpus": 1, "num_gpus": 0.25, "max_retries": 2, "retry_exceptions": True}
    train = executor.task_options({"id": "mnist-d3-L15-0000abcd", "kind": "ae"})
    assert train["num_gpus"] == 0.25 and train["name"] == "mnist-d3-L15-0000abcd" and "runtime_env" not in train
    for kind in ("pca", "baselines"):
        cpu = executor.task_options({"id": f"mnist-{kind}-0000abcd", "kind": kind})
        assert cpu["num_gpus"] == 0 and cpu["runtime_env"] == {"env_vars": {"CUDA_VISIBLE_DEVICES": ""}}
        assert cpu["num_cpus"] == 1 and cpu["max_retries"] == 2


def test_starts_and_stops_its_own_local_instance(tmp_path):
    """Without an address (and no RAY_ADDRESS) it starts a local instance with this machine's
    cores and stops it on shutdown. Runs before the module's shared instance exists."""
    if ray.is_initialized():
        pytest.skip("a Ray instance is already running in this process")
    from autoenc.study.ray_executor import RayExecutor

    pool = RayExecutor(tmp_path / "study", None, threads=1)
    try:
        assert pool.started and ray.is_initialized()
        assert pool.study_dir.is_absolute()
        assert ray.cluster_resources()["CPU"] == len(os.sched_getaffinity(0))
    finally:
        pool.shutdown()
    assert not ray.is_initialized()


def test_starting_ray_keeps_the_sigterm_handler(tmp_path):
    """ray.init installs its own SIGTERM handler (sys.exit(15)); the executor puts the process's
    back, so that `autoenc study` still stops on SIGTERM with its message and exit status 143."""
    if ray.is_initialized():
        pytest.skip("a Ray instance is already running in this process")
    from autoenc.study.ray_executor import RayExecutor

    def handler(signum, frame):  # the study command's, in the CLI
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        pool = RayExecutor(tmp_path / "study", None, threads=1)
        try:
            assert signal.getsignal(signal.SIGTERM) is handler
        finally:
            pool.shutdown()
        assert signal.getsignal(signal.SIGTERM) is handler
    finally:
        signal.signal(signal.SIGTERM, previous)


@pytest.fixture(scope="module")
def ray_cluster(data_dir, real_data, tmp_path_factory):
    """One local Ray instance with 2 CPUs for this module's studies (the executor reuses it and
    leaves it running). Workers get the test environment: offline, a temporary cache."""
    options = {}
    if not real_data:  # generated datasets: workers must know their checksums too
        from autoenc import data

        sums = {name: dict(data.SHA256[name]) for name in data.KNOWN_DATASETS}

        def patch_checksums():
            from autoenc import data as worker_data

            worker_data.SHA256.update(sums)

        options["runtime_env"] = {"worker_process_setup_hook": patch_checksums}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AUTOENC_OFFLINE", "1")
        mp.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("ray-cache")))
        mp.delenv("RAY_ADDRESS", raising=False)
        ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level="WARNING", **options)
    yield
    ray.shutdown()


@pytest.mark.slow
def test_a_study_on_ray_matches_the_local_executor(ray_cluster, data_dir, tmp_path):
    """Every phase of the lab (grid, penalties, denoisers, baselines, PCA) on a small subset."""
    config = study_from_dict(_small(latents=[15], l2=[1e-5], l1=[1e-4], pca=True, epochs=2, denoising={
        "variances": [0.04], "blind": [0.04, 0.16], "baselines": ["noisy", "linear"], "subset": 30, "epochs": 2}))
    local, out = tmp_path / "local", tmp_path / "ray"
    run_study(config, local, data_dir=data_dir, executor="local", progress=False)
    summary = run_study(config, out, data_dir=data_dir, executor="ray", progress=False)
    for folder in (local, out):
        write_report(folder)
    assert summary["failed"] == []
    assert summary["trials_done"] == summary["trials_total"]
    _same_results(out, local)
    assert _files(out) == _files(local)  # the same run folders, results files and report


@pytest.mark.slow
def test_a_killed_worker_is_retried_and_the_study_completes(ray_cluster, data_dir, tmp_path):
    config = study_from_dict(_small(epochs=8))
    reference = tmp_path / "reference"
    run_study(config, reference, data_dir=data_dir, executor="local", workers=1, progress=False)

    out = tmp_path / "killed"
    killed: dict = {}
    study_over = threading.Event()

    def kill_one_mid_training() -> None:  # watches for as long as the study runs, however slow the machine
        while not study_over.is_set() and not killed:
            for ckpt in out.glob("trials/*/run/checkpoint.safetensors"):
                trial_id = ckpt.parent.parent.name
                pid = _ray_worker_pid(trial_id)
                if pid is not None and not (ckpt.parent.parent / "result.json").exists():
                    os.kill(pid, signal.SIGKILL)
                    killed.update(trial=trial_id, pid=pid, checkpoint=ckpt)
                    return
            time.sleep(0.02)

    killer = threading.Thread(target=kill_one_mid_training, daemon=True)
    killer.start()
    try:
        summary = run_study(config, out, data_dir=data_dir, executor="ray", progress=False,
                            runtime={"checkpoint_seconds": 0})  # a checkpoint every epoch: caught mid-training
    finally:
        study_over.set()
    killer.join(timeout=5)
    assert killed, "no Ray worker was caught mid-training"
    assert summary["failed"] == []
    assert all(r["status"] == "ok" for r in summary["rows"]) and len(summary["rows"]) == 2
    _same_results(out, reference)
    assert not killed["checkpoint"].exists()  # the retry resumed and finished the training


@pytest.mark.slow
def test_a_trial_failing_on_every_attempt_is_recorded_and_the_rest_completes(ray_cluster, data_dir, tmp_path):
    config = study_from_dict(_small(
        pca=True,
        denoising={"variances": [0.04], "blind": None, "baselines": ["noisy"], "subset": 100,
                   "train": {"lr": 1.0e30}, "model": {"norm": "none"}}))
    out = tmp_path / "failing"
    summary = run_study(config, out, data_dir=data_dir, executor="ray", progress=False,
                        max_retries=1)
    failed = summary["failed"]
    assert [f["phase"] for f in failed] == ["denoise"]
    assert failed[0]["attempts"] == 2
    assert failed[0]["error"].startswith("TrainingError: the training loss became nan")
    on_disk = json.loads((out / "summary.json").read_text())["failed"]
    assert on_disk == failed
    rows = {r["id"]: r for r in _rows(out / "results.csv")}
    assert rows[failed[0]["id"]]["status"] == "failed"
    assert "TrainingError" in rows[failed[0]["id"]]["error"]
    ok = [r for r in rows.values() if r["status"] == "ok"]
    assert {r["phase"] for r in ok} == {"grid", "pca"} and len(ok) == 4
    assert summary["trials_done"] == summary["trials_total"]


@pytest.mark.slow
def test_shutdown_cancels_running_trials_and_leaves_a_shared_instance_running(ray_cluster, data_dir, tmp_path):
    from autoenc.study.ray_executor import RayExecutor
    from autoenc.study import plan

    trial = {**plan(study_from_dict(_small(latents=[15], epochs=30)), {})[0].to_dict(),
             "runtime": {"checkpoint_seconds": 0}}  # a checkpoint every epoch: caught mid-training
    pool = RayExecutor(tmp_path, data_dir, threads=1)
    assert not pool.started  # the module's instance was there first
    future = pool.submit(trial)
    checkpoint = tmp_path / "trials" / trial["id"] / "run" / "checkpoint.safetensors"
    while not checkpoint.exists() and not future.done():  # however long a loaded machine takes
        time.sleep(0.05)
    assert checkpoint.exists() and not future.done()
    pool.shutdown()
    assert future.exception(timeout=60) is not None
    assert not (tmp_path / "trials" / trial["id"] / "result.json").exists()
    assert checkpoint.exists()  # a rerun resumes from it
    assert ray.is_initialized()
