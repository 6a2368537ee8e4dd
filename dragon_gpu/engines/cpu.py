"""The reference engine: NumPy on the CPU.

:func:`count_block` is the pure per-block function every driver and every other engine is
checked against. It walks a block in slices of a few hundred kilobytes, so its temporaries stay in
the CPU cache and no full-size temporary is ever allocated.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from dataclasses import replace
from typing import Sequence

import numpy as np

from .._bits import packed_row_bytes, popcount
from ..io.base import Encoding, MaskReader
from ..model import Counts, RowRange, Tick
from ..streaming import prefetch
from . import native
from .base import Engine
from .cpu_tiles import SLICE_PIXELS as TILE_SLICE_PIXELS
from .cpu_tiles import bool_buffer, map_tiles, walk_grid

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
    bits = native.count_bits(body, dye, width) if body_enc.packed and dye_enc.packed else None
    if bits is not None:
        b, d, bd = bits
    else:
        b, d, bd = _count_bits_numpy(body, body_enc, dye, dye_enc)
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


def _count_bits_numpy(body, body_enc, dye, dye_enc) -> tuple[int, int, int]:
    """Set bits of body, dye and body & dye over the valid pixels, with NumPy; a plane opposite
    packed bits is packed first (slice by slice), with its rule applied, so both sides are bits
    whose "set" may or may not mean member."""
    width, rows = body_enc.width, body.shape[0]
    if body_enc.packed and dye_enc.packed:
        step = max(1, SLICE_PACKED_BYTES // packed_row_bytes(width))
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
    return b, d, bd


def _count_planes(body, body_enc, dye, dye_enc, slice_pixels: int = SLICE_PIXELS,
                  buffers=None) -> Counts:
    """Counts of two planes: in one pass by the compiled kernel where it was built
    (:mod:`.native`), else with NumPy, a slice of ``slice_pixels`` at a time; ``buffers(shape)``
    gives the two boolean temporaries of a slice (by default, new ones for this call)."""
    fast = native.count_planes(body, body_enc, dye, dye_enc)
    if fast is not None:
        return fast
    rows, width = body.shape
    step = max(1, slice_pixels // width)
    if buffers is None:
        bbuf = np.empty((min(step, rows), width), np.bool_)
        dbuf = np.empty_like(bbuf)
        buffers = lambda shape: (bbuf[:shape[0]], dbuf[:shape[0]])  # noqa: E731
    n_body = n_dye = n_both = 0
    for r0 in range(0, rows, step):
        bs, ds = body[r0:r0 + step], dye[r0:r0 + step]
        bbuf_s, dbuf_s = buffers(bs.shape)
        bm = _plane_members(bs, body_enc, bbuf_s)
        dm = _plane_members(ds, dye_enc, dbuf_s)
        n_body += int(np.count_nonzero(bm))
        n_dye += int(np.count_nonzero(dm))
        n_both += int(np.count_nonzero(np.logical_and(bm, dm, out=dm)))
    return Counts(body=n_body, dye_in_body=n_both, dye=n_dye)


def _tile_buffers(shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """The decode thread's two boolean temporaries, reused from tile to tile."""
    return bool_buffer(shape, 0), bool_buffer(shape, 1)


def _plane_members(values: np.ndarray, enc: Encoding, out: np.ndarray) -> np.ndarray:
    return enc.rule.members(values, out=out)


def _pack_members(values: np.ndarray, enc: Encoding) -> np.ndarray:
    """Membership of plane values as packed bits (set = member, zero padding)."""
    return np.packbits(_plane_members(values, enc, np.empty(values.shape, np.bool_)), axis=1)


class CpuEngine(Engine):
    """Reads the next blocks on a background thread while the current one is counted.

    A block is cut into ``threads`` row slices counted concurrently: NumPy releases the GIL in
    its loops, so the slices run on separate cores (decoding shares those cores). A pair whose
    inputs share a tile grid, or full-width strips of one height that are small against the
    blocks, is counted tile by tile (strip by strip) instead (:mod:`.cpu_tiles`), with no rows
    assembled.
    """

    name = "cpu"

    def __init__(self, prefetch_depth: int = 2, threads: int | None = None):
        from ..io._decode import decode_workers

        self.prefetch_depth = prefetch_depth
        self.threads = threads or decode_workers()

    def count_pair(self, body: MaskReader, body_enc: Encoding, dye: MaskReader, dye_enc: Encoding,
                   blocks: Sequence[RowRange], progress: Tick | None = None) -> Counts:
        grid = walk_grid((body, dye), blocks, self.prefetch_depth)
        if grid is not None:  # both inputs are tiles (or strips) of one grid: count one by one
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
                  progress: Tick | None = None) -> np.ndarray:
        from .cpu_hist import stream_histogram

        return stream_histogram(readers, blocks, self.threads, self.prefetch_depth, progress)


def count_tiles(body: MaskReader, body_enc: Encoding, dye: MaskReader, dye_enc: Encoding,
                blocks: Sequence[RowRange], grid: tuple[int, int],
                progress: Tick | None = None) -> Counts:
    """Counts of ``blocks`` of a pair that shares ``grid``, tile by tile; equal to the sum of
    :func:`dragon_gpu.engines.cpu.count_block` over the blocks.

    Where the compiled kernel is built (:mod:`.native`), a pair of tiles of the same layout is
    counted in one pass over both. Otherwise (and for a 1-bit tile opposite a plane), a tile
    whose pixels all share one membership (all inside or all outside the body: most body
    tiles of a mask) is known from its smallest and largest value, two reads without
    temporaries; the other tile of the pair is then counted alone, with no AND. The dye tile is
    tried only when the body tile is not uniform (speckled dye seldom is), and a pair with
    neither tile uniform is counted in full.
    """
    encs: dict[int, tuple[Encoding, Encoding]] = {}

    def encodings(w: int) -> tuple[Encoding, Encoding]:
        pair = encs.get(w)
        if pair is None:
            pair = encs[w] = (replace(body_enc, width=w), replace(dye_enc, width=w))
        return pair

    same_layout = body_enc.packed == dye_enc.packed

    def count(tiles, w: int) -> Counts:
        b, d = tiles
        if same_layout and native.available():
            # one compiled pass over both tiles costs less than a uniformity test
            eb, ed = encodings(w)
            return count_block(b, eb, d, ed)
        n = b.shape[0] * w
        ub = _uniform(b, body_enc)
        ud = _uniform(d, dye_enc) if ub is None else None
        if ub is None and ud is None:
            if not (body_enc.packed or dye_enc.packed):
                return _count_planes(b, body_enc, d, dye_enc, TILE_SLICE_PIXELS, _tile_buffers)
            eb, ed = encodings(w)
            return count_block(b, eb, d, ed)
        # One tile is uniform: the other is counted alone, and it gives the dye in body.
        nb = _count_members(b, body_enc, w) if ub is None else n if ub else 0
        nd = _count_members(d, dye_enc, w) if ud is None else n if ud else 0
        if ub is False or ud is False:
            both = 0
        else:  # one of them is all members: the other's members are the dye in body
            both = nd if ub else nb
        return Counts(body=nb, dye_in_body=both, dye=nd)

    total = Counts()
    for c in map_tiles((body, dye), blocks, grid, count, progress):
        total = total + c
    return total


def _uniform(values: np.ndarray, enc: Encoding) -> bool | None:
    """The membership every pixel of a tile's ``values`` shares, or None when it varies."""
    if not enc.packed:
        return enc.rule.uniform(values)
    # Bytes all 0xFF or all 0x00 hold only set or only clear pixels, whatever the padding bits.
    lo, hi = int(values.min()), int(values.max())
    if lo != hi or lo not in (0, 0xFF):
        return None
    return (lo == 0xFF) == enc.rule.high  # a set bit is a member under a high rule


def _count_members(values: np.ndarray, enc: Encoding, width: int) -> int:
    """Members among a tile's ``width`` pixels a row (one input of :func:`count_block`)."""
    if enc.packed:
        bits = popcount(values)
        if width % 8:
            bits -= popcount(np.bitwise_and(values[:, -1], np.uint8(0xFF >> (width % 8))))
        return bits if enc.rule.high else values.shape[0] * width - bits
    step = max(1, TILE_SLICE_PIXELS // width)
    return sum(int(np.count_nonzero(enc.rule.members(values[r0:r0 + step],
                                                     out=bool_buffer(values[r0:r0 + step].shape, 0))))
               for r0 in range(0, values.shape[0], step))
