"""The reference engine: NumPy on the CPU.

:func:`count_block` is the pure per-block function every driver and every other engine is
checked against. It walks a block in slices of a few hundred kilobytes, so its temporaries stay in
the CPU cache and no full-size temporary is ever allocated.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from typing import Sequence

import numpy as np

from .._bits import popcount
from ..io.base import Encoding, MaskReader
from ..model import Counts, RowRange
from ..streaming import prefetch
from .base import Engine, Progress

#: pixels per slice of planes: large enough to amortise NumPy call overhead, small enough that
#: the boolean temporaries stay in L2.
SLICE_PIXELS = 1 << 19
#: bytes per slice of two packed inputs (8 pixels a byte): the same budget in bytes, so that wide
#: rows still make slices of many rows rather than thousands of tiny NumPy calls.
SLICE_PACKED_BYTES = 1 << 19


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

    Notes
    -----
    Packed rows are never inverted or copied: with ``b``, ``d`` and ``bd`` the set bits of the
    stored body, dye and ``body & dye`` over the ``N`` valid pixels, a rule that selects clear
    bits counts ``N - b``, and ``dye_in_body`` is one of ``bd``, ``b - bd``, ``d - bd`` or
    ``N - b - d + bd``. Padding bits are removed by counting them in the last byte column alone.
    """
    if body_enc.width != dye_enc.width:
        raise ValueError(f"widths differ: {body_enc.width} and {dye_enc.width}")
    if body.shape[0] != dye.shape[0]:
        raise ValueError(f"row counts differ: {body.shape[0]} and {dye.shape[0]}")
    if not (body_enc.packed or dye_enc.packed):
        return _count_planes(body, body_enc, dye, dye_enc)
    width, rows = body_enc.width, body.shape[0]
    # A plane opposite packed bits is packed first (slice by slice), with its rule applied, so
    # both sides are bits whose "set" may or may not mean member.
    if body_enc.packed and dye_enc.packed:
        step = max(1, SLICE_PACKED_BYTES // -(-width // 8))
    else:
        step = max(1, SLICE_PIXELS // width)
    b = d = bd = 0
    for r0 in range(0, rows, step):
        r1 = min(rows, r0 + step)
        bs = body[r0:r1] if body_enc.packed else _pack_members(body[r0:r1], body_enc)
        ds = dye[r0:r1] if dye_enc.packed else _pack_members(dye[r0:r1], dye_enc)
        b += popcount(bs)
        d += popcount(ds)
        bd += popcount(np.bitwise_and(bs, ds))
    if width % 8:
        pad = np.uint8(0xFF >> (width % 8))  # the padding bits of the last byte of a row
        bl, dl = body[:, -1] if body_enc.packed else None, dye[:, -1] if dye_enc.packed else None
        # Packed planes have zero padding; stored packed rows may have anything there.
        qb = popcount(np.bitwise_and(bl, pad)) if bl is not None else 0
        qd = popcount(np.bitwise_and(dl, pad)) if dl is not None else 0
        qbd = (popcount(np.bitwise_and(np.bitwise_and(bl, dl), pad))
               if bl is not None and dl is not None else 0)
        b, d, bd = b - qb, d - qd, bd - qbd
    n = rows * width
    bh = body_enc.rule.high or not body_enc.packed
    dh = dye_enc.rule.high or not dye_enc.packed
    n_body = b if bh else n - b
    n_dye = d if dh else n - d
    if bh and dh:
        both = bd
    elif bh:
        both = b - bd
    elif dh:
        both = d - bd
    else:
        both = n - b - d + bd
    return Counts(body=n_body, dye_in_body=both, dye=n_dye)


def _count_planes(body, body_enc, dye, dye_enc) -> Counts:
    width, rows = body_enc.width, body.shape[0]
    step = max(1, SLICE_PIXELS // width)
    bbuf = np.empty((min(step, rows), width), np.bool_)
    dbuf = np.empty_like(bbuf)
    n_body = n_dye = n_both = 0
    for r0 in range(0, rows, step):
        r1 = min(rows, r0 + step)
        bm = _plane_members(body[r0:r1], body_enc, bbuf[:r1 - r0])
        dm = _plane_members(dye[r0:r1], dye_enc, dbuf[:r1 - r0])
        n_body += int(np.count_nonzero(bm))
        n_dye += int(np.count_nonzero(dm))
        n_both += int(np.count_nonzero(np.logical_and(bm, dm, out=dm)))
    return Counts(body=n_body, dye_in_body=n_both, dye=n_dye)


def _plane_members(values: np.ndarray, enc: Encoding, out: np.ndarray) -> np.ndarray:
    return enc.rule.members(values, out=out)


def _pack_members(values: np.ndarray, enc: Encoding) -> np.ndarray:
    """Membership of plane values as packed bits (set = member, zero padding)."""
    return np.packbits(_plane_members(values, enc, np.empty(values.shape, np.bool_)), axis=1)


class CpuEngine(Engine):
    """Reads the next blocks on a background thread while the current one is counted.

    A block is cut into ``threads`` row slices counted concurrently: NumPy releases the GIL in
    its loops, so the slices run on separate cores (decoding shares those cores). A pair whose
    inputs share a tile grid is counted tile by tile instead (:mod:`.cpu_tiles`), with no rows
    assembled.
    """

    name = "cpu"

    def __init__(self, prefetch_depth: int = 2, threads: int | None = None):
        from ..io._decode import decode_workers

        self.prefetch_depth = prefetch_depth
        self.threads = threads or decode_workers()

    def count_pair(self, body: MaskReader, body_enc: Encoding, dye: MaskReader, dye_enc: Encoding,
                   blocks: Sequence[RowRange], progress: Progress | None = None) -> Counts:
        from .cpu_tiles import count_tiles, shared_grid

        grid = shared_grid((body, dye))
        if grid is not None:  # both inputs are tiles of one grid: count tile by tile
            return count_tiles(body, body_enc, dye, dye_enc, blocks, grid, progress)
        total = Counts()
        # closing(): an error in a block stops the read-ahead thread and frees the ring at once,
        # not whenever the suspended generator is collected.
        ring = prefetch((body, dye), blocks, depth=self.prefetch_depth)
        with ThreadPoolExecutor(self.threads, thread_name_prefix="dragon-count") as pool, \
                closing(ring):
            for rows, (b, d) in ring:
                cuts = np.linspace(0, rows.rows, self.threads + 1).astype(int)
                parts = [pool.submit(count_block, b[lo:hi], body_enc, d[lo:hi], dye_enc)
                         for lo, hi in zip(cuts[:-1], cuts[1:]) if hi > lo]
                total = total + Counts.total(f.result() for f in parts)
                if progress is not None:
                    progress(rows.rows)
        return total

    def histogram(self, readers: Sequence[MaskReader], blocks: Sequence[RowRange],
                  progress: Progress | None = None) -> np.ndarray:
        from .cpu_hist import stream_histogram

        return stream_histogram(readers, blocks, self.threads, self.prefetch_depth, progress)
