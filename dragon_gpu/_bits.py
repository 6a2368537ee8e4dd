"""Bit-level helpers shared by the CPU engine, the preview and the generator."""

from __future__ import annotations

import numpy as np

__all__ = ["BYTE_BITS", "packed_row_nbytes", "popcount"]

#: The eight bits of every byte value, most significant first: ``BYTE_BITS[v]`` unpacks byte
#: ``v`` by table lookup (``np.take(BYTE_BITS, rows, axis=0)``), faster than ``np.unpackbits``
#: into a reused buffer.
BYTE_BITS = np.unpackbits(np.arange(256, dtype=np.uint8)[:, None], axis=1)


def packed_row_nbytes(width: int) -> int:
    """Bytes of one packed row of ``width`` pixels (8 pixels a byte, the last one padded)."""
    return (int(width) + 7) // 8


def popcount(bits: np.ndarray) -> int:
    """Set bits of a uint8 array of any shape (whole 64-bit words where the memory allows)."""
    flat = bits.reshape(-1)
    words = flat.size // 8
    total = 0
    if words and flat.flags.c_contiguous:
        total += int(np.bitwise_count(flat[:words * 8].view(np.uint64)).sum(dtype=np.int64))
        flat = flat[words * 8:]
    if flat.size:
        total += int(np.bitwise_count(flat).sum(dtype=np.int64))
    return total
