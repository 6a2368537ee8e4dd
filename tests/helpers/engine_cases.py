"""Engine test inputs: random body/dye blocks of every encoding, their counts by plain NumPy, and
:class:`ArrayReader`, the reader over rows held in memory.

The expected counts here unpack every bit and compare every value, the slow obvious way, so they
are independent of both the CPU engine and the CUDA kernels they check.
"""

from __future__ import annotations

import functools

import numpy as np

from dragon_gpu.io.base import Encoding, Kind, MaskReader, PixelRule

ENCODINGS = ("packed", "u8", "u16")
PAIRS = [(b, d) for b in ENCODINGS for d in ENCODINGS]
#: widths around every boundary the kernels care about: bytes, 64-bit words, 16-byte vectors.
WIDTHS = (1, 7, 8, 9, 15, 16, 17, 63, 64, 65, 127, 128, 129, 200, 1001)


def make_encoding(tag: str, width: int, threshold: int, high: bool) -> Encoding:
    if tag == "packed":
        return Encoding(True, width, np.dtype(np.uint8), PixelRule(1, high, "test"))
    dtype = np.dtype(np.uint8 if tag == "u8" else np.uint16)
    return Encoding(False, width, dtype, PixelRule(threshold, high, "test"))


def random_block(rng: np.random.Generator, tag: str, rows: int, width: int,
                 high: bool | None = None, threshold: int | None = None):
    """``(array, encoding)``: random rows in the storage encoding ``tag`` with a random rule.

    Packed rows get random padding bits, so a kernel that counts them is caught.
    """
    high = bool(rng.integers(2)) if high is None else high
    if tag == "packed":
        data = rng.integers(0, 256, size=(rows, -(-width // 8)), dtype=np.uint8)
        return data, make_encoding(tag, width, 1, high)
    maxval = 255 if tag == "u8" else 65535
    if threshold is None:
        # Mostly mid-range thresholds, sometimes the extremes 1 and maxval.
        threshold = int(rng.choice([1, maxval, int(rng.integers(1, maxval + 1))]))
    dtype = np.uint8 if tag == "u8" else np.uint16
    data = rng.integers(0, maxval + 1, size=(rows, width), dtype=dtype)
    return data, make_encoding(tag, width, threshold, high)


def members(data: np.ndarray, enc: Encoding) -> np.ndarray:
    """Boolean membership, shape (rows, width), the obvious way."""
    if enc.packed:
        values = np.unpackbits(data, axis=1, count=enc.width).astype(np.int64)
    else:
        values = data.astype(np.int64)
    thr = enc.rule.threshold
    return values >= thr if enc.rule.high else values < thr


def numpy_counts(body, body_enc, dye, dye_enc) -> tuple[int, int, int]:
    """``(body, dye, dye_in_body)`` of a block."""
    b, d = members(body, body_enc), members(dye, dye_enc)
    return int(b.sum()), int(d.sum()), int((b & d).sum())


class ArrayReader(MaskReader):
    """A :class:`~dragon_gpu.io.MaskReader` over rows held in memory, in their storage encoding
    (engine tests need no files).

    ``granularity`` is the reader's row unit. It records the row ranges it was asked for in
    ``reads``, so tests can check how a driver reads.
    """

    def __init__(self, data: np.ndarray, enc: Encoding, path: str = "<memory>",
                 granularity: int = 1):
        self.path = path
        self._data = np.ascontiguousarray(data)
        self.shape = (data.shape[0], enc.width)
        self.packed = enc.packed
        self.bits = 1 if enc.packed else 8 * data.dtype.itemsize
        self.dtype = data.dtype
        self.kind = Kind.mask if enc.packed else Kind.gray
        self.row_granularity = granularity
        self.reads: list[tuple[int, int]] = []

    def read_rows(self, row_start, row_stop, out=None):
        out = self._check_range(row_start, row_stop, out)
        out[...] = self._data[row_start:row_stop]
        self.reads.append((row_start, row_stop))
        return out

    def describe(self) -> dict:
        return {"format": "memory"}


@functools.lru_cache(maxsize=1)
def gpu_usable() -> bool:
    """True when the GPU engine exists and finds a usable GPU.

    The GPU engine is optional (CuPy may be missing): a failed import, or any error while probing,
    means no GPU, so the ``gpu`` tests are skipped rather than failed on a CPU-only machine.
    """
    try:
        from dragon_gpu.engines.gpu import has_gpu
    except ImportError:
        return False
    try:
        return bool(has_gpu())
    except Exception:
        return False
