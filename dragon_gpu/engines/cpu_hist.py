"""Exact histograms of row blocks on the CPU, and the counts they determine.

:func:`histogram_block` (one plane) and :func:`joint_histogram_block` (a uint8 pair) are the pure
per-block functions: they return additive ``int64`` histograms, so the histogram of an image is
the sum over its blocks, whatever the block plan, the engine or the number of tasks. The CUDA
engine's histogram kernel (``gpu/kernels/histogram.cu``) returns the same arrays bit for bit.

The joint histogram of a uint8 pair has one bin per (body value, dye value): ``J[b, d]`` pixels
have body value ``b`` and dye value ``d``. Every count of the pair under *any* pair of rules
follows from it exactly (:func:`counts_from_joint`), so a threshold method on either input costs
one pass over the files, not two.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from typing import Sequence

import numpy as np

from ..io.base import MaskReader, PixelRule
from ..model import Counts, RowRange, Tick
from ..streaming import prefetch
from .cpu_tiles import map_tiles, walk_grid

#: pixels per slice: the uint16 keys of a slice (1 MiB) stay in L2 while bincount reads them.
SLICE_PIXELS = 1 << 19
#: bins of the joint histogram of a uint8 pair (index ``body << 8 | dye``).
JOINT_BINS = 1 << 16


def bins_of(dtype) -> int:
    """Bins of the histogram of a plane of ``dtype``: 256 for uint8, 65536 for uint16."""
    dtype = np.dtype(dtype)
    if dtype.kind != "u" or dtype.itemsize not in (1, 2):
        raise ValueError(f"histograms are of uint8 or uint16 planes, not {dtype}")
    return 1 << (8 * dtype.itemsize)


def histogram_block(values: np.ndarray) -> np.ndarray:
    """``h[v]`` = pixels of value ``v`` in a block of plane values (uint8 or uint16).

    Returns an ``int64`` array of :func:`bins_of` ``(values.dtype)`` bins.
    """
    bins = bins_of(values.dtype)
    flat = values.reshape(-1)
    out = np.zeros(bins, np.int64)
    for i in range(0, flat.size, SLICE_PIXELS):
        out += np.bincount(flat[i:i + SLICE_PIXELS], minlength=bins)
    return out


def joint_histogram_block(body: np.ndarray, dye: np.ndarray) -> np.ndarray:
    """``J[b << 8 | d]`` = pixels with body value ``b`` and dye value ``d`` (uint8 planes).

    Returns an ``int64`` array of :data:`JOINT_BINS` bins (reshape to ``(256, 256)`` to index
    ``J[b, d]``).
    """
    if body.dtype != np.uint8 or dye.dtype != np.uint8:
        raise ValueError(f"a joint histogram needs two uint8 planes, got {body.dtype} and "
                         f"{dye.dtype}")
    if body.shape != dye.shape:
        raise ValueError(f"block shapes differ: {body.shape} and {dye.shape}")
    b, d = body.reshape(-1), dye.reshape(-1)
    out = np.zeros(JOINT_BINS, np.int64)
    keys = np.empty(min(SLICE_PIXELS, b.size), np.uint16)
    for i in range(0, b.size, SLICE_PIXELS):
        k = keys[:min(SLICE_PIXELS, b.size - i)]
        np.left_shift(b[i:i + SLICE_PIXELS], 8, out=k, dtype=np.uint16)
        np.bitwise_or(k, d[i:i + SLICE_PIXELS], out=k)
        out += np.bincount(k, minlength=JOINT_BINS)
    return out


def member_vector(rule: PixelRule, bins: int) -> np.ndarray:
    """``m[v]`` = 1 when stored value ``v`` is a member under ``rule``, else 0 (int64)."""
    return rule.members(np.arange(bins, dtype=np.int64)).astype(np.int64)


def count_from_histogram(hist: np.ndarray, rule: PixelRule) -> int:
    """Members of an image under ``rule``, from its full histogram: exact."""
    return int(np.dot(np.asarray(hist, np.int64), member_vector(rule, len(hist))))


def counts_from_joint(joint: np.ndarray, body_rule: PixelRule, dye_rule: PixelRule) -> Counts:
    """The counts of a uint8 pair under any two rules, from its joint histogram, exactly.

    ``body = sum J[b, :]`` over member body values, ``dye`` likewise over the dye values, and
    ``dye_in_body = sum J[b, d]`` over member pairs. Sums are int64: exact up to 2**63 pixels.
    """
    j = np.asarray(joint, np.int64).reshape(256, 256)
    mb, md = member_vector(body_rule, 256), member_vector(dye_rule, 256)
    rows = j @ md  # per body value: lit dye pixels
    return Counts(body=int(mb @ j.sum(axis=1)), dye_in_body=int(mb @ rows),
                  dye=int(j.sum(axis=0) @ md))


def body_histogram(joint: np.ndarray) -> np.ndarray:
    """The body image's histogram from the joint one (sum over dye values)."""
    return np.asarray(joint, np.int64).reshape(256, 256).sum(axis=1)


def dye_histogram(joint: np.ndarray) -> np.ndarray:
    """The dye image's histogram from the joint one (sum over body values)."""
    return np.asarray(joint, np.int64).reshape(256, 256).sum(axis=0)


def stream_histogram(readers: Sequence[MaskReader], blocks: Sequence[RowRange], threads: int,
                     prefetch_depth: int = 2, progress=None) -> np.ndarray:
    """The histogram of one plane reader, or the joint histogram of two uint8 ones, streamed.

    Blocks are read ahead on a background thread and each is cut into ``threads`` row slices
    histogrammed concurrently (bincount releases the GIL), as the CPU counting engine does.
    Inputs that share a tile grid (or small strips of one height) are histogrammed tile by
    tile (:func:`.cpu_tiles.walk_grid`).
    """
    grid = walk_grid(tuple(readers), blocks, prefetch_depth)
    if grid is not None:
        return histogram_tiles(tuple(readers), blocks, grid, progress)
    fn = histogram_block if len(readers) == 1 else joint_histogram_block
    bins = bins_of(readers[0].dtype) if len(readers) == 1 else JOINT_BINS
    total = np.zeros(bins, np.int64)
    ring = prefetch(tuple(readers), blocks, depth=prefetch_depth)
    with ThreadPoolExecutor(threads, thread_name_prefix="dragon-hist") as pool, closing(ring):
        for rows, arrays in ring:
            cuts = np.linspace(0, rows.rows, threads + 1).astype(int)
            parts = [pool.submit(fn, *(a[lo:hi] for a in arrays))
                     for lo, hi in zip(cuts[:-1], cuts[1:]) if hi > lo]
            for f in parts:
                total += f.result()
            if progress is not None:
                progress(rows.rows)
    return total


def histogram_tiles(readers: Sequence[MaskReader], blocks: Sequence[RowRange],
                    grid: tuple[int, int], progress: Tick | None = None
                    ) -> np.ndarray:
    """The histogram of one plane reader, or the joint histogram of two uint8 ones, tile by
    tile; equal to :func:`stream_histogram`'s."""
    if len(readers) == 1:
        bins = bins_of(readers[0].dtype)

        def fn(tiles, w):
            return histogram_block(tiles[0])
    else:
        bins = JOINT_BINS

        def fn(tiles, w):
            return joint_histogram_block(*tiles)
    total = np.zeros(bins, np.int64)
    for h in map_tiles(tuple(readers), blocks, grid, fn, progress):
        total += h
    return total
