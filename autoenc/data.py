"""Find, verify, download and load MNIST-family datasets as float tensors.

A dataset is the four standard gzip IDX files (``train-images-idx3-ubyte.gz``,
``train-labels-idx1-ubyte.gz``, ``t10k-images-idx3-ubyte.gz``, ``t10k-labels-idx1-ubyte.gz``).
For the known datasets (``KNOWN_DATASETS``) the files are looked for in this order:

1. an explicit folder: the ``data_dir`` argument (``--data-dir``), else the environment
   variable ``AUTOENC_DATA_DIR``, laid out as ``<dir>/<dataset>/<standard file name>``
   (``.gz`` or uncompressed);
2. the user cache, ``$XDG_CACHE_HOME/autoenc/<dataset>/`` (default ``~/.cache/autoenc/<dataset>/``);
3. the system copies in ``SYSTEM_DIRS`` (Debian's package ``dataset-fashion-mnist``);
4. a download from ``MIRRORS`` into the cache, unless ``download=False`` or ``AUTOENC_OFFLINE=1``.

Every file of a known dataset is verified once per process by the SHA-256 of its
*decompressed* content (``SHA256``), so a recompressed copy verifies and a corrupt one is
refused. Instead of a known name you may pass a path to your own data (see ``load``).

Splits (the protocol): "val" is the last ``n // 12`` images of the training file in file order
(5,000 of 60,000), "train" the rest (55,000), "test" the test file. Images come back as float32
tensors of shape (N, H*W) with pixels in [0, 1]; labels as int64 tensors of shape (N,).
"""
from __future__ import annotations

import contextlib
import functools
import gzip
import hashlib
import http.client
import math
import os
import struct
import sys
import tempfile
import urllib.error
import urllib.request
import zlib
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from .config import DATASETS
from .errors import DataError
from .progress import Bars

KNOWN_DATASETS = DATASETS
SPLITS = ("train", "val", "test")

TRAIN_IMAGES = "train-images-idx3-ubyte"
TRAIN_LABELS = "train-labels-idx1-ubyte"
TEST_IMAGES = "t10k-images-idx3-ubyte"
TEST_LABELS = "t10k-labels-idx1-ubyte"
FILES = (TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS)

# Official mirrors, tried in order; each URL is the mirror followed by "<file>.gz".
MIRRORS: dict[str, list[str]] = {
    "mnist": [
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
        "http://yann.lecun.com/exdb/mnist/",
    ],
    "fashion-mnist": [
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        "https://github.com/zalandoresearch/fashion-mnist/raw/master/data/fashion/",
    ],
}

# SHA-256 of each file's decompressed content. Tests replace entries to serve generated files.
SHA256: dict[str, dict[str, str]] = {
    "mnist": {
        TRAIN_IMAGES: "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
        TRAIN_LABELS: "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
        TEST_IMAGES: "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
        TEST_LABELS: "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
    },
    "fashion-mnist": {
        TRAIN_IMAGES: "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
        TRAIN_LABELS: "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
        TEST_IMAGES: "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
        TEST_LABELS: "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
    },
}

# System-wide copies installed by distribution packages (searched after the user cache).
SYSTEM_DIRS: dict[str, list[Path]] = {
    "fashion-mnist": [Path("/usr/share/datasets/fashion-mnist")],
}

CLASS_NAMES: dict[str, list[str]] = {
    "mnist": [str(d) for d in range(10)],
    "fashion-mnist": ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                      "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"],
}

TIMEOUT = 30.0  # seconds a download may wait for the server before the next mirror is tried
USER_AGENT = "autoenc-data/0.1 (Python urllib)"
_CHUNK = 1 << 16
_GZIP_MAGIC = b"\x1f\x8b"
_ZIP_MAGIC = b"PK"  # an .npz is a zip archive (np.savez); a .npy array starts with \x93NUMPY
_NPY_MAGIC = b"\x93NUMPY"
NPZ_LAYOUT = ("an .npz dataset for autoenc holds x, a uint8 array of shape (N, H, W), and optionally y, integer "
              "labels of shape (N,); or x_train and x_test (and y_train, y_test). numpy.savez(PATH, x=x, y=y) "
              "writes one")
# The fewest images whose splits all get one: a single pool of 14 splits train 11 / val 1 / test 2
# (test = round(N / 7), val = rest // 12), and a training file of 12 splits train 11 / val 1.
MIN_POOL_IMAGES = 14
MIN_TRAIN_FILE_IMAGES = 12
_IDX_TYPES = {  # IDX type byte -> numpy dtype (IDX stores multi-byte values big-endian)
    0x08: np.dtype(np.uint8), 0x09: np.dtype(np.int8), 0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8"),
}


class _Pool(NamedTuple):
    """A dataset's training file and test file: images (N, H, W) uint8, labels (N,) or None."""

    x_train: np.ndarray
    y_train: np.ndarray | None
    x_test: np.ndarray
    y_test: np.ndarray | None


class _Hit(NamedTuple):
    """Where a known dataset was found: source ("explicit dir", "cache", "Debian"), files."""

    source: str
    detail: str
    folder: Path
    files: dict[str, Path]


# ----------------------------------------------------------------------------- IDX files

def read_idx(source: str | Path | bytes) -> np.ndarray:
    """Read an IDX file (gzip-compressed or raw) into a numpy array.

    Takes a path or the file's bytes. Returns an array with the shape and dtype the header
    announces (uint8 for images and labels; other IDX types come back in native byte order).
    Arrays read from a path are read-only views of an in-memory cache. Raises DataError for
    anything that is not a well-formed IDX file (bad magic, truncated, trailing bytes, corrupt
    gzip), naming the file.
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        raw = bytes(source)
        name = "<bytes>"
        data = _gunzip(raw, name) if raw[:2] == _GZIP_MAGIC else raw
    else:
        name = str(source)
        data, _ = _decoded(Path(source))
    return _parse_idx(data, name)


def _gunzip(raw: bytes, name: str) -> bytes:
    """Decompress every gzip member of ``raw``; DataError if the stream is truncated or corrupt."""
    parts = []
    try:
        while raw:
            inflater = zlib.decompressobj(wbits=31)  # 31: gzip wrapper, CRC and length checked
            parts.append(inflater.decompress(raw))
            if not inflater.eof:
                raise EOFError("the compressed stream ends before its end marker")
            raw = inflater.unused_data
            if raw.count(0) == len(raw):  # trailing zero padding is allowed, like gzip(1)
                break
    except (zlib.error, EOFError) as exc:
        raise DataError(f"{name} is a truncated or corrupt gzip file; delete it and fetch "
                        f"again ({exc})") from None
    return parts[0] if len(parts) == 1 else b"".join(parts)


def _parse_idx(data: bytes, name: str) -> np.ndarray:
    """Check an uncompressed IDX file's header against its length and view it as an array."""
    if len(data) < 4:
        raise DataError(f"{name} is truncated: {len(data)} bytes, less than an IDX header")
    if data[0] != 0 or data[1] != 0 or data[2] not in _IDX_TYPES:
        hint = " (it looks like an HTML page: a failed download?)" if data[:1] == b"<" else ""
        raise DataError(
            f"{name} is not an IDX file: it starts with {data[:4].hex(' ')}, but an IDX file "
            f"starts with 00 00, a type byte (08 for uint8 pixels) and the number of "
            f"dimensions{hint}; delete it and fetch again")
    dtype, ndim = _IDX_TYPES[data[2]], data[3]
    if not 1 <= ndim <= 4:
        raise DataError(f"{name}: the IDX header says {ndim} dimensions; autoenc reads 1 to 4")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{name} is truncated: {len(data)} bytes, less than its "
                        f"{header}-byte header")
    dims = struct.unpack_from(f">{ndim}I", data, 4)
    count = math.prod(dims)
    if math.prod(d or 1 for d in dims) * dtype.itemsize >= 1 << 48:
        raise DataError(f"{name}: the IDX header announces an impossible shape {dims}")
    expected, found = count * dtype.itemsize, len(data) - header
    if found < expected:
        raise DataError(f"{name} is truncated: its header announces shape {dims} of "
                        f"{dtype.name}, {expected} bytes of data, but only {found} bytes "
                        "follow; delete it and fetch again")
    if found > expected:
        raise DataError(f"{name} has {found - expected} trailing bytes: its header announces "
                        f"shape {dims} of {dtype.name}, {expected} bytes of data, but "
                        f"{found} bytes follow")
    array = np.frombuffer(data, dtype=dtype, count=count, offset=header).reshape(dims)
    return array if dtype.isnative else array.astype(dtype.newbyteorder("="))


def _decoded(path: Path) -> tuple[bytes, str]:
    """A file's decompressed bytes and their SHA-256, cached per resolved path, mtime and size."""
    try:
        stat = path.stat()
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc.strerror or exc}") from None
    return _decode_file(str(path.resolve()), stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=16)
def _decode_file(path: str, mtime_ns: int, size: int) -> tuple[bytes, str]:
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc.strerror or exc}") from None
    data = _gunzip(raw, path) if raw[:2] == _GZIP_MAGIC else raw
    return data, hashlib.sha256(data).hexdigest()


def clear_cache() -> None:
    """Forget every decoded file (the next load reads from disk and verifies again)."""
    _decode_file.cache_clear()
    _npz_arrays.cache_clear()


# ----------------------------------------------------------------------------- locating

def cache_dir() -> Path:
    """The user cache folder: ``$XDG_CACHE_HOME/autoenc`` or ``~/.cache/autoenc``."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "autoenc"


def _offline() -> bool:
    return os.environ.get("AUTOENC_OFFLINE", "").strip().lower() not in ("", "0", "false", "no")


def _find(folder: Path, stem: str) -> Path | None:
    """The file holding ``stem`` in ``folder`` (gzip first, then uncompressed), if any."""
    for name in (stem + ".gz", stem, stem.replace("-idx", ".idx")):
        if (folder / name).is_file():
            return folder / name
    return None


def _candidates(name: str, data_dir: str | Path | None) -> list[tuple[str, str, Path]]:
    """The folders to search for a known dataset, in order, as (source, detail, folder)."""
    out = []
    if data_dir is not None:
        out.append(("explicit dir", "--data-dir / data_dir=", Path(data_dir).expanduser() / name))
    elif os.environ.get("AUTOENC_DATA_DIR"):
        out.append(("explicit dir", "AUTOENC_DATA_DIR",
                    Path(os.environ["AUTOENC_DATA_DIR"]).expanduser() / name))
    out.append(("cache", "user cache", cache_dir() / name))
    for folder in SYSTEM_DIRS.get(name, []):
        out.append(("Debian", f"package dataset-{name}", Path(folder)))
    return out


def _search(name: str, data_dir: str | Path | None) -> tuple[_Hit | None, list[str]]:
    """The first folder holding all four files, and a line per folder looked at before it."""
    looked = []
    for source, detail, folder in _candidates(name, data_dir):
        if not folder.is_dir():
            status = "no such folder"
            if source == "explicit dir" and _find(folder.parent, TRAIN_IMAGES):
                status += (f"; {folder.parent} itself holds IDX files, but the layout is "
                           f"<dir>/{name}/<files>: pass the folder above it")
            looked.append(f"{folder} ({detail}): {status}")
            continue
        files = {stem: path for stem in FILES if (path := _find(folder, stem))}
        missing = [stem + "[.gz]" for stem in FILES if stem not in files]
        if not missing:
            return _Hit(source, detail, folder, files), looked
        looked.append(f"{folder} ({detail}): missing {', '.join(missing)}")
    return None, looked


def _fixes(name: str) -> list[str]:
    fixes = [
        f"pass --data-dir DIR (or data_dir=DIR) or set AUTOENC_DATA_DIR=DIR, where DIR/{name}/ "
        f"holds {', '.join(stem + '.gz' for stem in FILES)}",
        f"run `autoenc data fetch {name}` on a machine with internet access (it stores the "
        f"files in {cache_dir() / name})",
    ]
    if name == "fashion-mnist":
        fixes.append("install Debian's package: `apt install dataset-fashion-mnist`")
    return fixes


def _not_found(name: str, looked: list[str], reason: str) -> DataError:
    lines = [f"dataset {name!r} not found. Looked in:"]
    lines += [f"  - {line}" for line in looked]
    lines += [reason, "To fix it, do one of:"]
    lines += [f"  {i}. {fix}" for i, fix in enumerate(_fixes(name), 1)]
    return DataError("\n".join(lines))


def locate(name: str, data_dir: str | Path | None = None) -> tuple[str, Path]:
    """Where a known dataset's files are, without downloading or reading them.

    Returns (source, folder), source being "explicit dir", "cache" or "Debian".
    Raises DataError listing every folder looked at and how to get the data.
    """
    name = _known_name(name, strict=True)
    hit, looked = _search(name, data_dir)
    if hit is None:
        raise _not_found(name, looked, "(locate never downloads.)")
    return hit.source, hit.folder


# ----------------------------------------------------------------------------- checking arrays

def _check_images(x: np.ndarray, where: str) -> np.ndarray:
    if x.dtype != np.uint8 or x.ndim != 3:
        raise DataError(f"{where}: expected images as a uint8 array of shape (N, H, W), "
                        f"found {x.dtype} of shape {x.shape}")
    if len(x) == 0:
        raise DataError(f"{where} holds no images (shape {x.shape})")
    return x


def _check_labels(y: np.ndarray | None, where: str, x: np.ndarray, x_where: str
                  ) -> np.ndarray | None:
    if y is None:
        return None
    if y.ndim != 1 or y.dtype.kind not in "iu":
        raise DataError(f"{where}: expected labels as an integer array of shape (N,), "
                        f"found {y.dtype} of shape {y.shape}")
    if len(y) != len(x):
        raise DataError(f"{x_where} has {len(x)} images but {where} has {len(y)} labels; "
                        "the two must match one to one")
    if len(y) and y.min() < 0:
        raise DataError(f"{where}: labels must be >= 0, found {y.min()}")
    return y


def _make_pool(x_train: np.ndarray, y_train: np.ndarray | None, x_test: np.ndarray,
               y_test: np.ndarray | None, train_where: str, test_where: str) -> _Pool:
    """A training file and a test file (each already checked to hold images). DataError when their
    image sizes differ, or when the training file is too small to leave validation an image."""
    if x_train.shape[1:] != x_test.shape[1:]:
        raise DataError(f"{train_where} holds {x_train.shape[1:]} images but {test_where} "
                        f"holds {x_test.shape[1:]} images; both must have the same size")
    n = len(x_train)
    if n < MIN_TRAIN_FILE_IMAGES:
        raise DataError(f"{train_where} holds {n} training image{'s' if n != 1 else ''}, too few to split: "
                        f"validation is the last n // 12 of them, so it would get none (train {n}, val 0). "
                        f"The training file needs at least {MIN_TRAIN_FILE_IMAGES} images (train 11, val 1); "
                        "add images (the protocol's 60,000 split 55,000 / 5,000)")
    return _Pool(x_train, y_train, x_test, y_test)


def _single_pool(x: np.ndarray, y: np.ndarray | None, where: str) -> _Pool:
    """Split one pool in file order: the last round(N/7) images are the test file. DataError
    naming `where` when a split would be empty (fewer than MIN_POOL_IMAGES images)."""
    n = len(x)
    rest = n - round(n / 7)
    if n < MIN_POOL_IMAGES:
        raise DataError(f"{where} holds {n} image{'s' if n != 1 else ''}, too few to split: autoenc splits one pool "
                        "in file order into test (the last round(N / 7)), val (the last rest // 12 of the others) "
                        f"and train, which would give train {rest - rest // 12}, val {rest // 12}, test {n - rest}. "
                        f"Every split needs an image: give at least {MIN_POOL_IMAGES} images (train 11, val 1, "
                        "test 2); the protocol's 70,000 split 55,000 / 5,000 / 10,000")
    return _Pool(x[:rest], None if y is None else y[:rest],
                 x[rest:], None if y is None else y[rest:])


# ----------------------------------------------------------------------------- known datasets

def _as_name(name) -> str:
    """A dataset name or path as a string: a pathlib.Path (any os.PathLike) is its path; anything
    else but a str is a DataError saying what to give (it was an AttributeError from str.strip)."""
    if isinstance(name, os.PathLike):
        name = os.fspath(name)
    if not isinstance(name, str):
        raise DataError(f"dataset {name!r} is a {type(name).__name__}; give a name ({', '.join(KNOWN_DATASETS)}) "
                        "or the path of your own data as a str or pathlib.Path")
    return name


def _known_name(name: str, strict: bool = False) -> str | None:
    key = _as_name(name).strip().lower().replace("_", "-")
    if key in KNOWN_DATASETS:
        return key
    if strict:
        raise DataError(f"unknown dataset {name!r}: the known datasets are "
                        f"{', '.join(KNOWN_DATASETS)}")
    return None


def _read_member(name: str, stem: str, path: Path) -> np.ndarray:
    """Read one file of a known dataset, verify its checksum and check its shape."""
    data, digest = _decoded(path)
    expected = SHA256.get(name, {}).get(stem)
    if expected and digest != expected:
        raise DataError(
            f"{path} does not verify: the SHA-256 of its decompressed content is {digest}, "
            f"expected {expected} for {name}/{stem}. The file is corrupt or not the official "
            f"one: delete it and run `autoenc data fetch {name} --dest {path.parent.parent}`")
    array = _parse_idx(data, str(path))
    if "images" in stem:
        return _check_images(array, str(path))
    if array.ndim != 1:
        raise DataError(f"{path}: expected labels of shape (N,), found shape {array.shape}")
    return array


def _known_pool(name: str, data_dir: str | Path | None, download: bool) -> _Pool:
    hit, looked = _search(name, data_dir)
    if hit is None:
        if not download:
            raise _not_found(name, looked, "Downloading is off (download=False).")
        if _offline():
            raise _not_found(name, looked, "Downloading is off (AUTOENC_OFFLINE is set).")
        try:
            folder = fetch(name)
        except DataError as exc:
            raise _not_found(name, looked, f"The download failed: {exc}") from None
        hit = _Hit("cache", "downloaded", folder, {stem: _find(folder, stem) for stem in FILES})
    a = {stem: _read_member(name, stem, path) for stem, path in hit.files.items()}
    where = {stem: str(path) for stem, path in hit.files.items()}
    y_train = _check_labels(a[TRAIN_LABELS], where[TRAIN_LABELS], a[TRAIN_IMAGES],
                            where[TRAIN_IMAGES])
    y_test = _check_labels(a[TEST_LABELS], where[TEST_LABELS], a[TEST_IMAGES],
                           where[TEST_IMAGES])
    return _make_pool(a[TRAIN_IMAGES], y_train, a[TEST_IMAGES], y_test,
                      where[TRAIN_IMAGES], where[TEST_IMAGES])


# ----------------------------------------------------------------------------- your own data

def _folder_pool(folder: Path) -> _Pool:
    """A folder with the standard file names; the two labels files are optional."""
    x_files = {stem: _find(folder, stem) for stem in (TRAIN_IMAGES, TEST_IMAGES)}
    missing = [stem + "[.gz]" for stem, path in x_files.items() if path is None]
    if missing:
        raise DataError(f"{folder} has no {' or '.join(missing)}: a dataset folder holds "
                        f"{TRAIN_IMAGES}[.gz] and {TEST_IMAGES}[.gz], and optionally "
                        f"{TRAIN_LABELS}[.gz] and {TEST_LABELS}[.gz]")
    parts = []
    for x_stem, y_stem in ((TRAIN_IMAGES, TRAIN_LABELS), (TEST_IMAGES, TEST_LABELS)):
        x_path, y_path = x_files[x_stem], _find(folder, y_stem)
        x = _check_images(read_idx(x_path), str(x_path))
        y = None if y_path is None else _check_labels(read_idx(y_path), str(y_path), x,
                                                      str(x_path))
        parts += [x, y]
    return _make_pool(*parts, str(x_files[TRAIN_IMAGES]), str(x_files[TEST_IMAGES]))


def _idx_pool(path: Path) -> _Pool:
    """One IDX images file; its labels file has "labels" in place of "images" in the name
    (and idx1 in place of idx3, as in the standard names), with or without .gz, if present."""
    x = _check_images(read_idx(path), str(path))
    y = None
    if "images" in path.name:
        base = path.name.replace("images", "labels").removesuffix(".gz")
        names = [base, base.replace("idx3", "idx1")]
        for label_name in dict.fromkeys(n + gz for n in names for gz in ("", ".gz")):
            if (y_path := path.with_name(label_name)).is_file():
                y = _check_labels(read_idx(y_path), str(y_path), x, str(path))
                break
    return _single_pool(x, y, str(path))


@functools.lru_cache(maxsize=4)
def _npz_arrays(path: str, mtime_ns: int, size: int) -> dict[str, np.ndarray]:
    """The arrays of an .npz file. DataError naming the file and what an .npz for autoenc holds
    (`NPZ_LAYOUT`) when it is not a zip archive (a text file, a single .npy array), is corrupt, or
    holds pickled Python objects (never loaded: numpy's advice to load them with allow_pickle=
    does not apply to a dataset)."""
    try:
        with open(path, "rb") as f:
            head = f.read(8)
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc.strerror or exc}") from None
    if head.startswith(_NPY_MAGIC):
        raise DataError(f"{path} is a single .npy array, not an .npz archive: {NPZ_LAYOUT}")
    if not head.startswith(_ZIP_MAGIC):
        kind = ("it is empty" if not head else "it looks like a text file" if all(
            32 <= b < 127 or b in b"\t\r\n" for b in head) else f"it starts with {head.hex(' ')}")
        raise DataError(f"{path} is not an .npz archive (a zip file, which starts with 'PK'): {kind}; {NPZ_LAYOUT}")
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {}
            for key in archive.files:
                try:
                    arrays[key] = archive[key]
                except ValueError as exc:
                    if "allow_pickle" not in str(exc) and "Object arrays" not in str(exc):
                        raise
                    raise DataError(f"{path}, array {key!r} holds Python objects (pickled), which autoenc does not "
                                    f"load: {NPZ_LAYOUT}") from None
            return arrays
    except DataError:
        raise
    except Exception as exc:  # np.load raises many types for files it cannot parse
        raise DataError(f"cannot read {path} as an .npz archive ({type(exc).__name__}: {exc}); the file is "
                        f"corrupt or not written by numpy.savez: {NPZ_LAYOUT}") from None


def _npz_pool(path: Path) -> _Pool:
    """An .npz with x (N, H, W) uint8 and optional y (N,), or x_train/x_test (+ y_*)."""
    stat = path.stat()
    arrays = _npz_arrays(str(path.resolve()), stat.st_mtime_ns, stat.st_size)

    def get(key: str, like: np.ndarray | None = None) -> np.ndarray | None:
        if key not in arrays:
            return None
        if like is None:
            return _check_images(arrays[key], f"{path}, array {key!r}")
        x_key = "x" + key[1:]
        return _check_labels(arrays[key], f"{path}, array {key!r}", like,
                             f"{path}, array {x_key!r}")

    if "x" in arrays:
        x = get("x")
        return _single_pool(x, get("y", x), f"{path}, array 'x'")
    if "x_train" in arrays and "x_test" in arrays:
        x_train, x_test = get("x_train"), get("x_test")
        return _make_pool(x_train, get("y_train", x_train), x_test, get("y_test", x_test),
                          f"{path}, array 'x_train'", f"{path}, array 'x_test'")
    raise DataError(f"{path} has no array 'x' (it holds {sorted(arrays) or 'no arrays'}): {NPZ_LAYOUT}")


# ----------------------------------------------------------------------------- loading

def _pool(name: str, data_dir: str | Path | None, download: bool) -> _Pool:
    """The training and test files of a known dataset or of a path to your own data."""
    name = _as_name(name)
    known = _known_name(name)
    if known is not None:
        return _known_pool(known, data_dir, download)
    path = Path(name).expanduser()
    if path.is_dir():
        return _folder_pool(path)
    if path.is_file():
        return _npz_pool(path) if path.suffix == ".npz" else _idx_pool(path)
    looks_like_path = os.sep in name or "." in name
    raise DataError(
        f"unknown dataset {name!r}"
        + (" (no such file or folder)" if looks_like_path else "")
        + f": the known datasets are {', '.join(KNOWN_DATASETS)}; a path to a folder with "
        "the standard IDX file names, an .npz file (x, optional y) or an IDX images file "
        "also works")


def _split_slices(n_train_file: int) -> dict[str, slice]:
    cut = n_train_file - n_train_file // 12
    return {"train": slice(0, cut), "val": slice(cut, n_train_file)}


def _select(pool: _Pool, split: str) -> tuple[np.ndarray, np.ndarray | None]:
    if split == "test":
        return pool.x_test, pool.y_test
    part = _split_slices(len(pool.x_train))[split]
    return pool.x_train[part], None if pool.y_train is None else pool.y_train[part]


def load(name: str, split: str, data_dir: str | Path | None = None,
         download: bool = True) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Load one split of a dataset as flat float images and integer labels.

    name: "mnist", "fashion-mnist", or a path to your own data (a str or pathlib.Path):
      - a folder with the standard IDX file names (labels files optional): split like the
        known datasets;
      - an .npz file with ``x`` (N, H, W) uint8 and optional ``y`` (N,) integer labels: one
        pool split in file order: the last round(N / 7) images are "test", and of the other
        ``rest`` images the last ``rest // 12`` are "val", the others "train" (70,000 images
        split 55,000 / 5,000 / 10,000). An .npz with ``x_train``/``x_test`` (and optional
        ``y_train``/``y_test``) is split like the known datasets instead;
      - an IDX images file (its labels file, with "labels" in place of "images" in the
        file name, is used when present): one pool, split like an .npz with ``x``.
    split: "train", "val" (the last n // 12 of the training file, 5,000 of 60,000) or "test".
    data_dir: a folder laid out as <dir>/<dataset>/<files> (default: $AUTOENC_DATA_DIR, then the
      user cache, then Debian's system copy). Known datasets are checksum-verified.
    download: whether a missing known dataset may be downloaded into the user cache
      (never when AUTOENC_OFFLINE=1).

    Returns (images, labels): images a contiguous float32 tensor (N, H*W) with pixels in
    [0, 1] (uint8 / 255), labels an int64 tensor (N,) or None when the data has no labels.
    Raises DataError when the data is missing, corrupt or malformed, too small for every split to
    get an image (your own data: at least MIN_POOL_IMAGES = 14 in one pool, MIN_TRAIN_FILE_IMAGES
    = 12 in a training file), or the split unknown.
    """
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r}: the splits are {', '.join(SPLITS)}")
    x, y = _select(_pool(name, data_dir, download), split)
    n, h, w = x.shape
    images = torch.from_numpy(x.reshape(n, h * w).astype(np.float32)).div_(255)
    labels = None if y is None else torch.from_numpy(y.astype(np.int64))
    return images, labels


def ensure(name: str, data_dir: str | Path | None = None, download: bool = True) -> None:
    """Make sure dataset `name` (a known name or a path, as for ``load``) can be loaded: find it,
    download a missing known dataset into the user cache when `download` allows it (never when
    AUTOENC_OFFLINE=1), verify its checksums and read every file once. Returns None; raises the
    DataError ``load`` would raise (where it looked and how to fix it). A study calls this for
    each of its datasets before it starts any trial."""
    _pool(name, data_dir, download)


def image_shape(name: str, data_dir: str | Path | None = None) -> tuple[int, int]:
    """The (height, width) of a dataset's images in pixels: (28, 28) for the known ones,
    read from the file for your own data (see ``load`` for the accepted paths)."""
    if _known_name(name) is not None:
        return (28, 28)
    _, h, w = _pool(name, data_dir, download=False).x_train.shape
    return (h, w)


def fingerprint(name: str, data_dir: str | Path | None = None) -> str | None:
    """What your own data holds, as 16 hex digits of a SHA-256 of its images and labels: part of
    a run's config and of a study trial's identity, so data replaced under the same path is
    trained on again rather than taken for the old. None for a known dataset (its files are
    verified against ``SHA256``). Cached while the files' sizes and modification times stay."""
    if _known_name(name) is not None:
        return None
    path = Path(name).expanduser().resolve()
    files = sorted(path.iterdir()) if path.is_dir() else [path]
    stats = tuple((str(f), f.stat().st_mtime_ns, f.stat().st_size) for f in files if f.is_file())
    return _fingerprint(name, stats)


@functools.lru_cache(maxsize=8)
def _fingerprint(name: str, stats: tuple) -> str:
    digest = hashlib.sha256()
    for array in _pool(name, None, download=False):
        digest.update(b"none" if array is None else f"{array.dtype.str}{array.shape}".encode())
        if array is not None:
            digest.update(np.ascontiguousarray(array).data)
    return digest.hexdigest()[:16]


def class_names(name: str) -> list[str] | None:
    """The class names of a known dataset, indexed by label; None for your own data."""
    known = _known_name(name)
    return None if known is None else list(CLASS_NAMES[known])


def num_classes(name: str, data_dir: str | Path | None = None) -> int | None:
    """The number of classes: 10 for the known datasets; for your own data, the largest
    label plus one, or None when it has no labels."""
    if _known_name(name) is not None:
        return 10
    pool = _pool(name, data_dir, download=False)
    labels = [y for y in (pool.y_train, pool.y_test) if y is not None and len(y)]
    return max(int(y.max()) for y in labels) + 1 if labels else None


# ----------------------------------------------------------------------------- downloading

def _describe(exc: BaseException) -> str:
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code} {exc.reason}"
    if isinstance(exc, urllib.error.URLError):
        return f"cannot connect ({exc.reason})"
    if isinstance(exc, TimeoutError):
        return f"timed out after {TIMEOUT:g} s"
    return str(exc) or type(exc).__name__


def _stream(url: str, out, desc: str) -> None:
    """Write the body at ``url`` to the open file ``out``; DataError if it arrives short."""
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
        length = response.headers.get("Content-Length", "")
        total = int(length) if length.isdigit() else None
        received = 0
        with Bars(sys.stderr.isatty(), bytes=True) as bars:
            bar = bars.add(desc, total)
            while chunk := response.read(_CHUNK):
                out.write(chunk)
                received += len(chunk)
                bars.update(bar, advance=len(chunk))
    if total is not None and received != total:
        raise DataError(f"the connection dropped after {received} of {total} bytes")


def _download(name: str, stem: str, folder: Path, mirrors: list[str]) -> Path:
    """Fetch ``stem`` from the first mirror that serves a verified copy; atomic, no leftovers."""
    expected = SHA256[name][stem]
    target = folder / (stem + ".gz")
    failures = []
    for mirror in mirrors:
        url = mirror.rstrip("/") + "/" + stem + ".gz"
        try:
            fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{stem}.", suffix=".part")
        except OSError as exc:
            raise DataError(f"cannot write into {folder}: {exc.strerror or exc}") from None
        try:
            with os.fdopen(fd, "wb") as out:
                _stream(url, out, desc=f"{name}/{stem}")
            raw = Path(tmp).read_bytes()
            data = _gunzip(raw, url) if raw[:2] == _GZIP_MAGIC else raw
            digest = hashlib.sha256(data).hexdigest()
            if digest != expected:
                raise DataError(f"checksum mismatch: the SHA-256 of the content is {digest}, "
                                f"expected {expected}")
            if raw[:2] != _GZIP_MAGIC:  # keep the cache uniform: always <stem>.gz
                Path(tmp).write_bytes(gzip.compress(raw, mtime=0))
            os.replace(tmp, target)
            return target
        except (OSError, http.client.HTTPException, DataError) as exc:
            failures.append(f"{url}: {_describe(exc)}")
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    raise DataError(f"could not download {name}/{stem}.gz from any mirror (nothing was "
                    "written):\n" + "\n".join(f"  - {line}" for line in failures))


def _verified(name: str, stem: str, folder: Path) -> bool:
    path = _find(folder, stem)
    if path is None:
        return False
    try:
        return _decoded(path)[1] == SHA256[name][stem]
    except DataError:
        return False


def fetch(name: str, dest: str | Path | None = None, mirrors: list[str] | None = None) -> Path:
    """Download a known dataset's four files into ``dest/<name>/`` and verify them.

    dest: the parent folder (default: the user cache, see ``cache_dir``). mirrors: base URLs
    tried in order (default: ``MIRRORS[name]``); on an HTTP error, timeout, dropped connection
    or checksum mismatch the next one is tried. Files already present and verified are kept.
    Each file is written to a temporary file in the same folder, verified, then renamed into
    place, so a failed download leaves nothing behind. Returns the dataset folder. Raises
    DataError when a file cannot be had from any mirror or AUTOENC_OFFLINE is set.
    """
    name = _known_name(name, strict=True)
    if _offline():
        raise DataError(f"not downloading {name}: AUTOENC_OFFLINE is set (unset it to download)")
    folder = (Path(dest).expanduser() if dest is not None else cache_dir()) / name
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(f"cannot create {folder}: {exc.strerror or exc}") from None
    urls = list(MIRRORS[name] if mirrors is None else mirrors)
    try:
        for stem in FILES:
            if not _verified(name, stem, folder):
                _download(name, stem, folder, urls)
    except DataError:
        with contextlib.suppress(OSError):
            folder.rmdir()  # only succeeds when empty: leave no empty dataset folder behind
        raise
    return folder


# ----------------------------------------------------------------------------- report

def _class_table(name: str, pool: _Pool) -> list[str]:
    """Images per class over the whole training file and per split, one row per class."""
    columns = {"train file": pool.y_train, **{s: _select(pool, s)[1] for s in SPLITS}}
    k = max(int(y.max()) + 1 for y in columns.values() if len(y))
    counts = {c: np.bincount(y, minlength=k) for c, y in columns.items()}
    names = CLASS_NAMES.get(name, [])
    labels = [f"{i} {names[i]}" if i < len(names) and names[i] != str(i) else str(i)
              for i in range(k)]
    width = max(map(len, labels + ["class"])) + 2
    lines = [f"  {'class':<{width}}" + "".join(f"{c:>11}" for c in columns)]
    for i, label in enumerate(labels):
        lines.append(f"  {label:<{width}}" + "".join(f"{counts[c][i]:>11,}" for c in columns))
    return lines


def _check_dataset(name: str, data_dir: str | Path | None) -> tuple[list[str], bool]:
    hit, looked = _search(name, data_dir)
    if hit is None:
        lines = [f"{name}: ✗ not found. Looked in:"] + [f"  - {line}" for line in looked]
        lines += ["  To fix it, do one of:"]
        lines += [f"    {i}. {fix}" for i, fix in enumerate(_fixes(name), 1)]
        return lines, False
    lines = [f"{name}: found in {hit.source} ({hit.detail}): {hit.folder}"]
    lines += [f"  (not in {line})" for line in looked]
    arrays, ok = {}, True
    for stem, path in hit.files.items():
        try:
            arrays[stem] = _read_member(name, stem, path)
            digest = _decoded(path)[1]
            lines.append(f"  ✓ {path.name:<28} shape {arrays[stem].shape}  sha256 {digest}")
        except DataError as exc:
            lines.append(f"  ✗ {path.name}: {exc}")
            ok = False
    if not ok:
        return lines, False
    try:
        pool = _known_pool(name, data_dir, download=False)
    except DataError as exc:
        return lines + [f"  ✗ {exc}"], False
    sizes = {s: len(_select(pool, s)[0]) for s in SPLITS}
    lines.append("  images per split: " + ", ".join(f"{s} {n:,}" for s, n in sizes.items())
                 + f"  ({pool.x_train.shape[1]}x{pool.x_train.shape[2]} pixels)")
    return lines + _class_table(name, pool), True


def check(data_dir: str | Path | None = None) -> tuple[str, bool]:
    """Report where each known dataset is, whether its files verify, and its counts.

    data_dir: as for ``load`` (default $AUTOENC_DATA_DIR, then the cache, then Debian's copy).
    Never downloads. Returns (report, ok): a human-readable multi-line report (source and
    folder, a ✓/✗ line per file with its SHA-256, images per split, images per class over
    the training file and each split) and ok, False when a dataset is missing or fails.
    """
    blocks, all_ok = [], True
    for name in KNOWN_DATASETS:
        lines, ok = _check_dataset(name, data_dir)
        blocks.append("\n".join(lines))
        all_ok &= ok
    verdict = ("all datasets found and verified" if all_ok
               else "some datasets are missing or do not verify (see above)")
    return "\n\n".join(blocks + [verdict]), all_ok
