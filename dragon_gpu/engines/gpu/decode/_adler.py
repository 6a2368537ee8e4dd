"""Adler-32 as a parallel reduction: partial sums of chunks, combined exactly.

For bytes ``d_1 .. d_n`` zlib defines ``a = 1 + sum d_i`` and ``b = sum of the running a after
each byte``, both mod 65521. Without the leading 1, a chunk contributes ``A = sum d_i`` and
``B = sum (n - i + 1) d_i``; two adjacent chunks X then Y (Y of ``ny`` bytes) combine as::

    A = A_x + A_y
    B = B_x + ny * A_x + B_y

and the whole stream's checksum is ``a = 1 + A``, ``b = n + B`` (mod 65521). Each thread of
``kernels/adler32.cu`` sums one chunk, and the chunks are combined with this rule; the NumPy
functions here are the reference the kernel is tested against.
"""

from __future__ import annotations

import numpy as np

MOD = 65521


def partial(data: np.ndarray) -> tuple[int, int]:
    """``(A, B)`` of one chunk, mod :data:`MOD`."""
    d = np.asarray(data, dtype=np.uint8).reshape(-1).astype(np.int64)
    n = d.size
    if n == 0:
        return 0, 0
    weights = np.arange(n, 0, -1, dtype=np.int64) % MOD
    return int(d.sum() % MOD), int((d * weights % MOD).sum() % MOD)


def combine(x: tuple[int, int], y: tuple[int, int], ny: int) -> tuple[int, int]:
    """The partial sums of chunk X followed by chunk Y of ``ny`` bytes."""
    ax, bx = x
    ay, by = y
    return (ax + ay) % MOD, (bx + (ny % MOD) * ax + by) % MOD


def finish(ab: tuple[int, int], n: int) -> int:
    """The Adler-32 of ``n`` bytes whose partial sums are ``ab``."""
    a, b = (1 + ab[0]) % MOD, (n + ab[1]) % MOD
    return (b << 16) | a


def adler32(data: np.ndarray, chunks: int = 7) -> int:
    """Adler-32 of ``data`` computed from ``chunks`` partial sums (equals ``zlib.adler32``)."""
    d = np.asarray(data, dtype=np.uint8).reshape(-1)
    bounds = np.linspace(0, d.size, chunks + 1).astype(np.int64)
    ab = (0, 0)
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        ab = combine(ab, partial(d[lo:hi]), int(hi - lo))
    return finish(ab, d.size)
