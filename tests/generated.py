"""Generated stand-ins for MNIST-family data, written in the standard IDX layout.

Tests use these when the real datasets are not available (AUTOENC_DATA_DIR unset). Images are
structured (a few smooth strokes per class, shifted and scaled per image, plus noise) so that
an autoencoder has something to learn and classes are separable.
"""
from __future__ import annotations

import gzip
import hashlib
import json
import struct
import sys
import zlib
from pathlib import Path

import numpy as np

from autoenc import data

_TYPE_BYTES = {np.dtype(np.uint8): 0x08, np.dtype(np.int8): 0x09, np.dtype(">i2"): 0x0B,
               np.dtype(">i4"): 0x0C, np.dtype(">f4"): 0x0D, np.dtype(">f8"): 0x0E}


def idx_bytes(array: np.ndarray) -> bytes:
    """The uncompressed IDX encoding of ``array`` (uint8, int8, int16, int32, float32/64)."""
    array = np.asarray(array)
    big = array.dtype.newbyteorder(">") if array.dtype.itemsize > 1 else array.dtype
    header = bytes([0, 0, _TYPE_BYTES[big], array.ndim])
    header += struct.pack(f">{array.ndim}I", *array.shape)
    return header + np.ascontiguousarray(array, dtype=big).tobytes()


def write_idx(path: str | Path, array: np.ndarray, gz: bool = True) -> Path:
    """Write ``array`` as an IDX file at ``path`` (gzip-compressed when ``gz``); returns path."""
    path = Path(path)
    raw = idx_bytes(array)
    path.write_bytes(gzip.compress(raw, compresslevel=1, mtime=0) if gz else raw)
    return path


def _templates(rng: np.random.Generator, size: int, n_classes: int = 10) -> np.ndarray:
    """One smooth template per class: 2 to 3 strokes of Gaussian profile, values in [0, 1]."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    lo, hi = size * 0.25, size * 0.75
    out = np.zeros((n_classes, size, size), np.float32)
    for k in range(n_classes):
        for _ in range(rng.integers(2, 4)):
            (x0, y0), (x1, y1) = rng.uniform(lo, hi, size=(2, 2))
            dx, dy = x1 - x0, y1 - y0
            t = np.clip(((xx - x0) * dx + (yy - y0) * dy) / (dx * dx + dy * dy + 1e-6), 0, 1)
            dist2 = (xx - x0 - t * dx) ** 2 + (yy - y0 - t * dy) ** 2
            out[k] = np.maximum(out[k], np.exp(-dist2 / (2 * (size / 28) ** 2)))
    return out


def make_images(labels: np.ndarray, rng: np.random.Generator, size: int = 28,
                template_rng: np.random.Generator | None = None) -> np.ndarray:
    """Images (N, size, size) uint8 for ``labels``: the class template shifted by up to 2
    pixels, scaled by 0.6 to 1, plus Gaussian noise (sigma 0.05), clipped to [0, 255]."""
    templates = _templates(template_rng or rng, size)
    x = templates[labels] * rng.uniform(0.6, 1.0, size=(len(labels), 1, 1)).astype(np.float32)
    shifts = rng.integers(-2, 3, size=(len(labels), 2))
    for dy, dx in {tuple(s) for s in shifts.tolist()}:
        rows = np.flatnonzero((shifts[:, 0] == dy) & (shifts[:, 1] == dx))
        x[rows] = np.roll(x[rows], (dy, dx), axis=(1, 2))
    x += rng.normal(0, 0.05, size=x.shape).astype(np.float32)
    return np.clip(np.rint(x * 255), 0, 255).astype(np.uint8)


def balanced_labels(n: int, rng: np.random.Generator, n_classes: int = 10) -> np.ndarray:
    """``n`` uint8 labels 0..n_classes-1, as balanced as possible, in random order."""
    return rng.permutation(np.arange(n) % n_classes).astype(np.uint8)


def write_dataset(root: str | Path, name: str, n_train: int = 6000, n_test: int = 1000,
                  seed: int = 0, gz: bool = True) -> dict[str, str]:
    """Write a generated dataset as ``root/name/<standard file names>``.

    Returns its checksum table {file stem: SHA-256 of the decompressed content}, the shape of
    ``autoenc.data.SHA256[name]``, so a test can make the files verify.
    """
    folder = Path(root) / name
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
    template_rng = np.random.default_rng([seed, zlib.crc32(name.encode()), 1])
    y_train, y_test = balanced_labels(n_train, rng), balanced_labels(n_test, rng)
    x_all = make_images(np.concatenate([y_train, y_test]), rng, template_rng=template_rng)
    arrays = {data.TRAIN_IMAGES: x_all[:n_train], data.TRAIN_LABELS: y_train,
              data.TEST_IMAGES: x_all[n_train:], data.TEST_LABELS: y_test}
    table = {}
    for stem, array in arrays.items():
        write_idx(folder / (stem + ".gz" if gz else stem), array, gz=gz)
        table[stem] = hashlib.sha256(idx_bytes(array)).hexdigest()
    return table


def write_npz(path: str | Path, n: int = 700, size: int = 20, labels: bool = True,
              seed: int = 0) -> Path:
    """Write an .npz with ``x`` (n, size, size) uint8 and, if ``labels``, ``y`` (n,) int64."""
    rng = np.random.default_rng(seed)
    y = balanced_labels(n, rng).astype(np.int64)
    arrays = {"x": make_images(y, rng, size=size)}
    if labels:
        arrays["y"] = y
    np.savez(path, **arrays)
    return Path(path)


def python_with_checksums() -> list[str]:
    """The command prefix of a Python subprocess that knows this session's dataset checksums
    (the generated datasets' are registered in this process only): append the arguments of
    `autoenc` (a command and its arguments)."""
    boot = ("import json, sys; from autoenc import data; data.SHA256.update(json.loads(sys.argv.pop(1))); "
            "from autoenc.cli import main; main()")
    return [sys.executable, "-c", boot, json.dumps(data.SHA256)]


def checksums_cell() -> str:
    """Python source that registers this session's dataset checksums (for a notebook kernel)."""
    return f"import json as _json; from autoenc import data as _data; _data.SHA256.update(_json.loads({json.dumps(data.SHA256)!r}))"
