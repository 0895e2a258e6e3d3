"""What the commands that read what exists share: folder arguments and one-line errors."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable

from ..errors import AutoencError


def folder(text: str) -> Path:
    """An argparse type: an existing folder."""
    if not text.strip():
        raise argparse.ArgumentTypeError("is empty; give a folder")
    path = Path(text)
    if not path.is_dir():
        raise argparse.ArgumentTypeError(f"{text}: no such folder")
    return path


def data_folder(text: str) -> Path:
    """An argparse type: a folder that need not exist yet, but not a file nor an empty text."""
    if not text.strip():
        raise argparse.ArgumentTypeError("is empty; give a folder")
    if Path(text).is_file():
        raise argparse.ArgumentTypeError(f"{text} is a file; give the folder that holds <dataset>/<IDX files>")
    return Path(text)


def data_dir_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-dir", type=data_folder, default=None,
                   help="folder laid out as <dir>/<dataset>/<IDX files> (default: $AUTOENC_DATA_DIR, the cache)")


def guarded(fn: Callable[[], int | None]) -> int:
    """Run a command: autoenc's own errors, and a file system's refusal of a path, as one line on
    stderr with exit status 2 instead of a traceback."""
    try:
        return fn() or 0
    except AutoencError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        if exc.filename is None:  # not about a path: a bug or the machine, keep the traceback
            raise
        print(f"error: cannot use {exc.filename}: {exc.strerror or exc}; check that the path is a folder you may "
              f"write to and the disk has space, then rerun (finished work is kept)", file=sys.stderr)
        return 2
