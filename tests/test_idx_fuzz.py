"""read_idx on random and mutated bytes: a well-formed array or DataError, nothing else."""
from __future__ import annotations

import gzip
import math
import struct

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from autoenc import data
from autoenc.errors import DataError
from generated import idx_bytes

VALID = [
    idx_bytes(np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)),
    idx_bytes(np.arange(7, dtype=np.uint8)),
    idx_bytes(np.arange(6, dtype=">i4").reshape(3, 2)),
    idx_bytes(np.zeros((1, 2, 2, 2), dtype=">f4")),
    idx_bytes(np.zeros((0, 5), dtype=np.int8)),
]
FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _read_or_refuse(blob: bytes) -> None:
    try:
        array = data.read_idx(blob)
    except DataError:
        return
    assert isinstance(array, np.ndarray)
    raw = data._gunzip(blob, "<bytes>") if blob[:2] == b"\x1f\x8b" else blob
    dims = struct.unpack_from(f">{raw[3]}I", raw, 4)
    assert array.shape == dims and array.size == math.prod(dims)


@FUZZ
@given(st.binary(max_size=300))
def test_random_bytes(blob: bytes) -> None:
    _read_or_refuse(blob)
    _read_or_refuse(gzip.compress(blob))


_EDIT = st.tuples(st.sampled_from(["flip", "insert", "delete", "truncate"]),
                  st.integers(0, 10_000), st.integers(0, 255))


def _mutate(blob: bytes, edits: list[tuple[str, int, int]]) -> bytes:
    out = bytearray(blob)
    for kind, position, value in edits:
        i = position % (len(out) + 1)
        if kind == "flip" and i < len(out):
            out[i] ^= 1 << (value % 8)
        elif kind == "insert":
            out[i:i] = bytes([value])
        elif kind == "delete":
            del out[i:i + 1 + value % 4]
        elif kind == "truncate":
            del out[i:]
    return bytes(out)


@FUZZ
@given(st.sampled_from(VALID), st.lists(_EDIT, min_size=1, max_size=4), st.booleans(),
       st.booleans())
def test_mutated_idx(valid: bytes, edits: list, gz: bool, mutate_compressed: bool) -> None:
    if gz and mutate_compressed:
        blob = _mutate(gzip.compress(valid), edits)
    else:
        blob = _mutate(valid, edits)
        blob = gzip.compress(blob) if gz else blob
    _read_or_refuse(blob)


def test_valid_files_round_trip() -> None:
    for blob in VALID:
        for encoded in (blob, gzip.compress(blob)):
            array = data.read_idx(encoded)
            assert array.shape == struct.unpack_from(f">{blob[3]}I", blob, 4)
