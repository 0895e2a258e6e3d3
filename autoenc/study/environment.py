"""What ran a study: autoenc's version and commit, the libraries' versions and the hardware, as
summary.json records them for the report's header."""
from __future__ import annotations

import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path

LIBRARIES = ("torch", "numpy", "scipy", "scikit-image", "matplotlib", "hydra-core", "bm3d")


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def commit() -> str | None:
    """The git commit autoenc was imported from ("<hash>" or "<hash>+local changes"), None outside a
    git checkout (an installed wheel) or without git."""
    root = Path(__file__).resolve().parents[2]
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "--short=12", "HEAD"], capture_output=True,
                              text=True, timeout=10)
        if head.returncode != 0:
            return None
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return head.stdout.strip() + ("+local changes" if dirty.returncode == 0 and dirty.stdout.strip() else "")


def cpu_name() -> str:
    """The CPU's model name (/proc/cpuinfo on Linux, else the platform's word for it)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def environment(device: str = "cpu") -> dict:
    """{autoenc, commit, python, libraries: {name: version}, cpu, cores, gpu (name or None),
    platform} of this process; device: the study's resolved device ("cpu", "cuda", ...)."""
    from .. import __version__

    gpu = None
    if device.startswith("cuda"):
        import torch

        if torch.cuda.is_available():
            gpu = torch.cuda.get_device_name(torch.device(device))
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"autoenc": __version__, "commit": commit(), "python": platform.python_version(),
            "libraries": {name: v for name in LIBRARIES if (v := _version(name)) is not None},
            "cpu": cpu_name(), "cores": cores, "gpu": gpu, "platform": platform.platform(terse=True)}
