"""The reference engine: NumPy on the CPU.

:func:`count_block` is the pure per-block function every driver and every other engine is
checked against. It walks a block in slices of a few hundred kilobytes, so its temporaries stay in
the CPU cache and no full-size temporary is ever allocated.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ..io.base import Encoding, MaskReader
from ..model import Counts, RowRange
from ..streaming import prefetch
from .base import Engine, Progress

#: pixels per slice: large enough to amortise NumPy call overhead, small enough to stay in L2.
SLICE_PIXELS = 1 << 19


def count_block(body: np.ndarray, body_enc: Encoding, dye: np.ndarray, dye_enc: Encoding) -> Counts:
    """Count one row block of a pair.

    Parameters
    ----------
    body, dye : ndarray, shape (rows, row_items)
        The same rows of both images in their storage encoding: packed bits (uint8, most
        significant bit first, ``ceil(width / 8)`` bytes a row) or planes (uint8/uint16,
        ``width`` values a row), as described by ``body_enc`` and ``dye_enc``.
    body_enc, dye_enc : Encoding
        Encoding, width and pixel rule of each input.

    Returns
    -------
    Counts
        ``body = sum(B)``, ``dye = sum(D)``, ``dye_in_body = sum(B & D)`` where ``B`` and ``D``
        are the membership masks given by the pixel rules. Padding bits never count.
    """
    if body_enc.width != dye_enc.width:
        raise ValueError(f"widths differ: {body_enc.width} and {dye_enc.width}")
    if body.shape[0] != dye.shape[0]:
        raise ValueError(f"row counts differ: {body.shape[0]} and {dye.shape[0]}")
    width = body_enc.width
    rows = body.shape[0]
    step = max(1, SLICE_PIXELS // width)
    both_packed = body_enc.packed and dye_enc.packed
    scratch = _Scratch()
    n_body = n_dye = n_both = 0
    for r0 in range(0, rows, step):
        r1 = min(rows, r0 + step)
        if both_packed or body_enc.packed != dye_enc.packed:
            b = _packed_members(body[r0:r1], body_enc, scratch.get("b", r1 - r0, width))
            d = _packed_members(dye[r0:r1], dye_enc, scratch.get("d", r1 - r0, width))
            n_body += _popcount(b)
            n_dye += _popcount(d)
            np.bitwise_and(b, d, out=d)
            n_both += _popcount(d)
        else:
            b = _plane_members(body[r0:r1], body_enc, scratch.get("bb", r1 - r0, width, bool))
            d = _plane_members(dye[r0:r1], dye_enc, scratch.get("db", r1 - r0, width, bool))
            n_body += int(np.count_nonzero(b))
            n_dye += int(np.count_nonzero(d))
            np.logical_and(b, d, out=d)
            n_both += int(np.count_nonzero(d))
    return Counts(body=n_body, dye_in_body=n_both, dye=n_dye)


class _Scratch:
    """Per-call reusable buffers, keyed by role."""

    def __init__(self):
        self._bufs: dict[str, np.ndarray] = {}

    def get(self, key: str, rows: int, width: int, kind=None) -> np.ndarray:
        if kind is bool:
            shape = (rows, width)
            dtype = np.bool_
        else:  # packed bits, rows padded to whole 64-bit words
            shape = (rows, -(-width // 64) * 8)
            dtype = np.uint8
        buf = self._bufs.get(key)
        if buf is None or buf.shape[0] < rows or buf.shape[1:] != shape[1:]:
            buf = self._bufs[key] = np.empty(shape, dtype=dtype)
        return buf[:rows]


def _plane_members(values: np.ndarray, enc: Encoding, out: np.ndarray) -> np.ndarray:
    op = np.greater_equal if enc.rule.high else np.less
    return op(values, enc.rule.threshold, out=out)


def _packed_members(data: np.ndarray, enc: Encoding, out: np.ndarray) -> np.ndarray:
    """Membership bits in ``out`` (rows padded to 64-bit words, padding bits cleared)."""
    width = enc.width
    nbytes = -(-width // 8)
    if enc.packed:
        if enc.rule.high:
            out[:, :nbytes] = data
        else:
            np.invert(data, out=out[:, :nbytes])
    else:
        out[:, :nbytes] = np.packbits(_plane_members(data, enc, np.empty(data.shape, np.bool_)),
                                      axis=1)
    out[:, nbytes:] = 0
    if width % 8:
        out[:, nbytes - 1] &= np.uint8((0xFF << (8 - width % 8)) & 0xFF)
    return out


def _popcount(bits: np.ndarray) -> int:
    return int(np.bitwise_count(bits.view(np.uint64)).sum(dtype=np.int64))


class CpuEngine(Engine):
    """Reads the next block on a background thread while NumPy counts the current one."""

    name = "cpu"

    def __init__(self, prefetch_depth: int = 2):
        self.prefetch_depth = prefetch_depth

    def count_pair(self, body: MaskReader, body_enc: Encoding, dye: MaskReader, dye_enc: Encoding,
                   blocks: Sequence[RowRange], progress: Progress | None = None) -> Counts:
        total = Counts()
        for rows, (b, d) in prefetch((body, dye), blocks, depth=self.prefetch_depth):
            total = total + count_block(b, body_enc, d, dye_enc)
            if progress is not None:
                progress(rows.rows)
        return total
