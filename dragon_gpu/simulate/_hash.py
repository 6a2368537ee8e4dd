"""Counter-based hashing: random numbers that depend only on ``(seed, stream, row, index)``.

A hash of the coordinates, not a sequential generator, so a row renders identically whatever
block, thread or order it is rendered in.
"""

from __future__ import annotations

import numpy as np

__all__ = ["STREAM_CANDIDATE", "STREAM_SPECKLE", "hash64", "mix", "unit_float"]

_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_GOLD = np.uint64(0x9E3779B97F4A7C15)
#: Streams: independent hash families of one seed.
STREAM_SPECKLE = 1
STREAM_CANDIDATE = 2


def mix(x: np.ndarray) -> np.ndarray:
    """SplitMix64's finalizer: a bijective 64-bit mix (wrapping uint64 arithmetic)."""
    x = x ^ (x >> np.uint64(30))
    x = x * _M1
    x = x ^ (x >> np.uint64(27))
    x = x * _M2
    return x ^ (x >> np.uint64(31))


def hash64(seed: int, stream: int, rows: np.ndarray, index: np.ndarray) -> np.ndarray:
    """A uint64 hash of ``(seed, stream, row, index)``; broadcasts ``rows`` against ``index``."""
    # One-element arrays, not scalars: NumPy wraps array arithmetic silently but warns on
    # scalar overflow, and the wrap-around is the point here.
    key = mix(np.array([seed % (1 << 64)], dtype=np.uint64)
              + np.array([stream], dtype=np.uint64) * _GOLD)
    r = mix(key ^ np.asarray(rows, dtype=np.uint64))
    return mix(r + np.asarray(index, dtype=np.uint64) * _GOLD)


def unit_float(h: np.ndarray) -> np.ndarray:
    """Uniform floats in ``[0, 1)`` from the top 53 bits of uint64 hashes."""
    return (h >> np.uint64(11)).astype(np.float64) * 2.0 ** -53
