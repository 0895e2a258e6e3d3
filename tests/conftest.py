"""Shared fixtures: the datasets (real when AUTOENC_DATA_DIR points at them, generated otherwise)
and isolation from the user's environment.

Every test runs with XDG_CACHE_HOME in a fresh temporary folder (the real ~/.cache is never
touched), AUTOENC_OFFLINE=1 (clear it with monkeypatch.delenv to test downloads) and
AUTOENC_DATA_DIR unset: a test that needs data takes the ``data_dir`` fixture and passes it on
(``data_dir=``, ``--data-dir`` or ``monkeypatch.setenv("AUTOENC_DATA_DIR", str(data_dir))``).
"""
from __future__ import annotations

import contextlib
import os
from pathlib import Path

import pytest
import torch
from hypothesis import settings

from autoenc import data
from generated import write_dataset

# CI runs the property tests on a fixed sequence of examples (HYPOTHESIS_PROFILE=ci in .ci/run), so
# a red CI is a change's doing; elsewhere they draw new examples every run, which is how they find
# the cases nobody thought of (reproduce one with the "Falsifying example" it prints).
settings.register_profile("ci", derandomize=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

# Under pytest-xdist each worker gets its share of the cores (1 of 2 on CI), in this process and
# in the commands it starts: two workers on torch's default threads would ask for twice the cores.
if os.environ.get("PYTEST_XDIST_WORKER_COUNT"):
    _threads = max(1, (os.cpu_count() or 1) // int(os.environ["PYTEST_XDIST_WORKER_COUNT"]))
    os.environ["OMP_NUM_THREADS"] = str(_threads)
    torch.set_num_threads(_threads)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The tests marked slow first (their order kept): with pytest-xdist handing out two tests at a
    time (pyproject's addopts), the longest ones start early instead of ending the session alone."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


# Read once at import, before the autouse fixture below hides it from the tests.
_REAL_DATA_DIR = os.environ.get("AUTOENC_DATA_DIR")


def _has_real_data(root: str | None) -> bool:
    return bool(root) and all(
        data._find(Path(root) / name, stem) is not None
        for name in data.KNOWN_DATASETS for stem in data.FILES)


@pytest.fixture(scope="session")
def real_data() -> bool:
    """Whether the tests run on the real MNIST and Fashion-MNIST (AUTOENC_DATA_DIR holds both)."""
    return _has_real_data(_REAL_DATA_DIR)


@pytest.fixture(scope="session")
def data_dir(real_data: bool, tmp_path_factory: pytest.TempPathFactory):
    """A folder laid out as <dir>/<dataset>/<standard files> holding both known datasets:
    AUTOENC_DATA_DIR when it has them, else generated ones (6,000 train / 1,000 test images of
    28x28, labels 0..9) whose checksums are put in ``autoenc.data.SHA256`` for the session."""
    if real_data:
        yield Path(_REAL_DATA_DIR)
        return
    root = tmp_path_factory.mktemp("data")
    with pytest.MonkeyPatch.context() as mp:
        for name in data.KNOWN_DATASETS:
            mp.setitem(data.SHA256, name, write_dataset(root, name))
        yield root


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch,
                          tmp_path_factory: pytest.TempPathFactory) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("xdg-cache")))
    monkeypatch.setenv("AUTOENC_OFFLINE", "1")
    monkeypatch.delenv("AUTOENC_DATA_DIR", raising=False)


# the quick preset's every trial on fewer images and epochs: the same plan, in half the time
QUICK_TESTED = ["study.subset.train=2000", "study.subset.val=500", "study.subset.test=500",
                "study.epochs={3: 4, 5: 4}", "study.denoising.epochs={3: 4, 5: 4}"]


def quick_config():
    """The study the quick_study fixture runs: preset("quick") with QUICK_TESTED."""
    from autoenc.study import preset

    return preset("quick", QUICK_TESTED)


@pytest.fixture(scope="session")
def quick_study(data_dir, tmp_path_factory: pytest.TempPathFactory):
    """The quick preset's plan (`quick_config`), run once per test session (about a minute on 2
    cores), with its report. Returns the study folder: read it, never change it.

    Under pytest-xdist the workers share one run: the first to need it runs it under a file lock
    in the session's common temporary folder, the others wait for it and read it."""
    from filelock import FileLock

    from autoenc.report.sections import write_report
    from autoenc.study import run_study

    if os.environ.get("PYTEST_XDIST_WORKER"):
        out = tmp_path_factory.getbasetemp().parent / "quick-study"
    else:
        out = tmp_path_factory.mktemp("quick-study")
    with FileLock(f"{out}.lock"):
        if not (out / "report.html").is_file():
            with pytest.MonkeyPatch.context() as mp:
                mp.setenv("AUTOENC_DATA_DIR", str(data_dir))
                run_study(quick_config(), out, data_dir=data_dir, progress=False)
                write_report(out)
    return out


@pytest.fixture
def whole_step_graphs(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Run the whole-step CUDA-graph path (`training.graph_step`) on a CPU: `use_cuda_graphs`
    answers "step" unless cuda_graphs is given (False: eager), the warm-up runs without a side stream, and the 'capture' records nothing:
    its replay runs the step again on the graph's inputs, as a replayed graph does. Everything
    but the CUDA calls is the real path. Returns a list that gets one entry per replay."""
    from autoenc.training import device, stacked
    from autoenc.training import loop as training

    replays: list[int] = []

    def capture(fn):
        def replay():
            replays.append(1)
            fn()
        return replay

    for module in (training, stacked):
        monkeypatch.setattr(module, "use_cuda_graphs", lambda requested, device: "step" if requested is None else requested)
    monkeypatch.setattr(device, "_side_stream", contextlib.nullcontext)
    monkeypatch.setattr(device, "_capture", capture)
    return replays
