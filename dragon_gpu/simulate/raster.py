"""Intervals of columns to packed bits: merging, byte-level XOR toggles and a running XOR.

The cost is a few operations per *byte*, not per pixel.
"""

from __future__ import annotations

import numpy as np

from .._bits import packed_row_nbytes

__all__ = ["merge_intervals", "prefix_xor", "render_xor"]

_REPEAT_BYTE = np.uint64(0x0101010101010101)


def merge_intervals(pos: np.ndarray, a: np.ndarray, b: np.ndarray, width: int):
    """Union of half-open intervals ``[a, b)`` on rows ``pos``: disjoint, sorted intervals.

    Intervals that touch or overlap are merged; empty ones are dropped.
    """
    keep = a < b
    pos, a, b = pos[keep], a[keep], b[keep]
    if pos.size == 0:
        return pos, a, b
    order = np.lexsort((a, pos))
    pos, a, b = pos[order], a[order], b[order]
    # A running maximum of (row, end) keys is a per-row running maximum of the ends, because
    # every key of a later row is larger than every key of an earlier one.
    span = np.int64(width + 2)
    run_end = np.maximum.accumulate(pos * span + b) - pos * span
    start = np.empty(pos.size, dtype=bool)
    start[0] = True
    start[1:] = (pos[1:] != pos[:-1]) | (a[1:] > run_end[:-1])
    first = np.flatnonzero(start)
    return pos[first], a[first], np.maximum.reduceat(b, first)


def prefix_xor(buf: np.ndarray) -> None:
    """In place, ``buf[i] = buf[0] ^ ... ^ buf[i]`` for a uint8 buffer of a multiple of 8 bytes.

    Same result as ``np.bitwise_xor.accumulate``, which holds the GIL for its whole run. Here
    the bytes of each 64-bit word are scanned with three shift-XOR steps and words are chained
    by an accumulate over 8 times fewer items, so most of the work is binary ufuncs that release
    the GIL and row blocks render in parallel on threads.
    """
    words = buf.view("<u8")
    tmp = np.empty_like(words)
    for shift in (8, 16, 32):
        np.left_shift(words, np.uint64(shift), out=tmp)
        np.bitwise_xor(words, tmp, out=words)
    carry = np.bitwise_xor.accumulate(words >> np.uint64(56))
    tmp[0] = 0
    np.multiply(carry[:-1], _REPEAT_BYTE, out=tmp[1:])
    np.bitwise_xor(words, tmp, out=words)


def render_xor(nrows: int, width: int, pos: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Packed rows whose bits are the XOR of the intervals ``[a, b)`` on rows ``pos``.

    For disjoint intervals the XOR is their union; an interval inside another cuts a hole.

    Returns
    -------
    ndarray, uint8, shape (ceil(nrows * ceil(width / 8) + 1, 8 bytes),)
        A flat buffer whose first ``nrows * ceil(width / 8)`` bytes are the packed rows (most
        significant bit first, padding bits zero); the rest is zero, so the whole buffer can
        be viewed as uint64 for a popcount.
    """
    nb = packed_row_nbytes(width)
    size = nrows * nb + 1
    out = np.zeros(-(-size // 8) * 8, dtype=np.uint8)
    keep = a < b
    pos, a, b = pos[keep], a[keep], b[keep]
    if pos.size == 0:
        return out
    base = pos * nb
    fa = (a + 7) >> 3          # first whole byte
    fb = b >> 3                # end of the whole bytes
    multi = fa <= fb           # not inside a single byte
    whole = multi & (fa < fb)
    # Full bytes: toggle 0xFF at the first whole byte and after the last, then a running XOR
    # over the flat buffer fills the run (a toggle at the end of a row lands on the next row's
    # first byte, which is the same thing).
    toggles = np.concatenate([base[whole] + fa[whole], base[whole] + fb[whole]])
    np.bitwise_xor.at(out, toggles, np.uint8(0xFF))
    prefix_xor(out)
    left = multi & ((a & 7) != 0)
    right = multi & ((b & 7) != 0)
    single = ~multi
    idx = np.concatenate([base[left] + (a[left] >> 3), base[right] + (b[right] >> 3),
                          base[single] + (a[single] >> 3)])
    masks = np.concatenate([
        0xFF >> (a[left] & 7),
        (0xFF00 >> (b[right] & 7)) & 0xFF,
        (0xFF >> (a[single] & 7)) & ((0xFF00 >> (b[single] & 7)) & 0xFF),
    ]).astype(np.uint8)
    np.bitwise_xor.at(out, idx, masks)
    return out
