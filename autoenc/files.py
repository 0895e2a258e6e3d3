"""Files written atomically (temp file beside the target, fsync, rename): a reader sees the old
file or the new one, never a part. Every result, run folder and checkpoint is written this way."""
from __future__ import annotations

import contextlib
import glob
import json
import os
import socket
import tempfile
from pathlib import Path

import torch
from safetensors.torch import save_file


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _temp_beside(path: Path, suffix: str = ".tmp") -> tuple[int, str]:
    """A temp file next to `path`, with the permissions a plain open() would give (mkstemp: 0600),
    named for this host and process: ".NAME.HOST-PID.XXXX<suffix>". Temp files of `path` that a
    process of this host left when it was killed mid-write (a stack's checkpoint is 236 MB) are removed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    owner = f"{socket.gethostname()}-"
    for stale in path.parent.glob(f".{glob.escape(path.name)}.{glob.escape(owner)}*{glob.escape(suffix)}"):
        pid = stale.name[len(path.name) + len(owner) + 2:].split(".", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            stale.unlink(missing_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{owner}{os.getpid()}.", suffix=suffix)
    os.chmod(tmp, 0o666 & ~_umask())
    return fd, tmp


def _alive(pid: int) -> bool:
    """Whether process `pid` of this host exists."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's
        return True
    return True


@contextlib.contextmanager
def atomic_target(path: str | Path, suffix: str = ".tmp"):
    """For a writer that takes a file name (Keras's model.save wants one ending in .keras): yields
    a temp path beside `path` ending in `suffix`; when the block ends without error the file is
    synced and renamed onto `path`, else removed."""
    path = Path(path)
    fd, tmp = _temp_beside(path, suffix)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~_umask())
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write `data` to `path` so that readers see the old file or the new one, never a part."""
    fd, tmp = _temp_beside(Path(path))
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    """Atomically write a UTF-8 text file."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, obj) -> None:
    """Atomically write `obj` as indented JSON."""
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def atomic_save_tensors(path: str | Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> None:
    """Atomically write tensors to a .safetensors file (CPU copies; metadata is str -> str)."""
    with atomic_target(path) as tmp:  # which also undoes the 0600 mode safetensors creates the file with
        save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(tmp), metadata=metadata)
