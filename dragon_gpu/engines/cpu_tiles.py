"""Walking tiled inputs tile by tile, with no rows assembled: the grid and the task map that
:func:`dragon_gpu.engines.cpu.count_tiles` and :func:`dragon_gpu.engines.cpu_hist.histogram_tiles`
count and histogram with (this module imports neither, so the three form no cycle).

When every input of a pass exposes the same grid of tiles (:attr:`MaskReader.tile_grid`: TIFF
tiles, HDF5 chunks narrower than the image), one task on the decode pool decodes the tiles at one
grid position of every input and counts (or histograms) them at once, while they are in the
cache. Rows are never assembled: the row path's copy of every tile into a block, and the second
pass over that block to count it, are gone. Full-width strips of one height
(:attr:`MaskReader.strip_rows`) form a grid one tile wide, walked the same way when they are
small against the blocks (:func:`walk_grid`). Any other pair (different grids, strips too tall for
the blocks, a reader without tiles such as Zarr or the preview's) takes the row path.

The result is exactly the row path's: a tile is cropped to the rows of its block and to the
image before it is counted, so padding beyond the image never counts, and every pixel of every
block is counted once. Memory: each decode thread holds one decoded (and one raw) tile per input
in its own reused buffers; queued tasks hold nothing, so the bound is that of the row path less
its ring of blocks.
"""

from __future__ import annotations

import threading
from collections import deque
from concurrent.futures import wait
from typing import Callable, Iterator, Sequence

import numpy as np

from .._bits import packed_row_bytes
from ..io.base import MaskReader
from ..model import RowRange

#: tasks queued per decode thread: enough that no thread waits between blocks.
QUEUE_PER_THREAD = 4
#: pixels counted at once within a tile: the boolean temporaries of a slice stay in L2.
SLICE_PIXELS = 1 << 18


def _shared(readers: Sequence[MaskReader], attr: str):
    """The value of ``attr`` all ``readers`` share when it is not None and they have one shape."""
    values = {getattr(r, attr, None) for r in readers}
    if len(values) != 1 or any(r.shape != readers[0].shape for r in readers):
        return None
    return values.pop()


def shared_grid(readers: Sequence[MaskReader]) -> tuple[int, int] | None:
    """The tile grid (rows, pixel columns) all ``readers`` share, or None (use rows)."""
    return _shared(readers, "tile_grid")


def shared_strips(readers: Sequence[MaskReader]) -> tuple[int, int] | None:
    """The grid (strip rows, image width) of full-width strips all ``readers`` share (TIFF
    strips, HDF5 chunks as wide as the image, of one height), or None."""
    rows = _shared(readers, "strip_rows")
    return None if rows is None else (rows, readers[0].shape[1])


def walk_grid(readers: Sequence[MaskReader], blocks: Sequence[RowRange],
              prefetch_depth: int) -> tuple[int, int] | None:
    """The grid a pass over ``blocks`` walks with :func:`map_tiles`, or None (read rows).

    A shared tile grid always; shared strips only when walking them holds no more memory than
    the row path's ring: each decode thread keeps one decoded strip of every input (and its
    compressed bytes), the ring ``prefetch_depth`` blocks of every input.
    """
    from ..io._decode import decode_workers

    grid = shared_grid(readers)
    if grid is not None:
        return grid
    grid = shared_strips(readers)
    if grid is None or not blocks:
        return None
    block_rows = max(b.rows for b in blocks)
    return grid if decode_workers() * grid[0] <= prefetch_depth * block_rows else None


def _items(reader: MaskReader, width: int) -> slice:
    """Row items of a tile's first ``width`` pixels. A packed tile is a multiple of 8 pixels
    wide, so its bits stay aligned; padding bits of a last byte are left to the counting."""
    return slice(0, packed_row_bytes(width) if reader.packed else width)


def map_tiles(readers: Sequence[MaskReader], blocks: Sequence[RowRange], grid: tuple[int, int],
              fn: Callable, progress: Callable[[int], None] | None = None) -> Iterator:
    """Yield ``fn(tiles, width)`` for every tile position of every block, in order.

    ``tiles`` holds each reader's tile cropped to the block's rows and to the image (row items
    of the first ``width`` pixels); ``fn`` runs on the decode pool and must not keep the arrays
    (they are the thread's buffers). ``progress(rows)`` is called once a block is done.
    """
    from ..io._decode import decode_pool, decode_workers

    tile_rows, tile_cols = grid
    height, width = readers[0].shape
    across = -(-width // tile_cols)
    same = len(readers) == 2 and readers[0] is readers[1]

    def task(band: int, col: int, lo: int, hi: int):
        c0 = col * tile_cols
        w = min(tile_cols, width - c0)
        r0 = band * tile_rows
        tiles = []
        for r in (readers[:1] if same else readers):
            t = r.read_tile(band, col)
            tiles.append(t[lo - r0:hi - r0, _items(r, w)])
        if same:  # one reader's buffer serves both roles
            tiles.append(tiles[0])
        return fn(tiles, w)

    def bands(block: RowRange):
        start, stop = block.row_start, min(block.row_stop, height)
        for band in range(start // tile_rows, -(-stop // tile_rows)):
            yield band, max(start, band * tile_rows), min(stop, (band + 1) * tile_rows)

    def jobs():
        for i, block in enumerate(blocks):
            for band, lo, hi in bands(block):
                for col in range(across):
                    yield i, (band, col, lo, hi)

    # Tasks of each block still to be consumed: the block is done when its count reaches 0.
    left = [sum(1 for _ in bands(b)) * across for b in blocks]
    pool = decode_pool()
    window = QUEUE_PER_THREAD * decode_workers()
    pending: deque = deque()
    todo = jobs()
    try:
        for i, args in todo:
            pending.append((i, pool.submit(task, *args)))
            if len(pending) < window:
                continue
            yield from _consume(pending, left, blocks, progress)
        while pending:
            yield from _consume(pending, left, blocks, progress)
    finally:
        futures = [f for _, f in pending]
        for f in futures:
            f.cancel()
        wait(futures)  # tasks under way finish before the readers may be closed


def _consume(pending: deque, left: list[int], blocks, progress) -> Iterator:
    """Wait for the oldest task, yield its result, and report its block once all of it is done."""
    i, future = pending[0]
    result = future.result()
    pending.popleft()
    left[i] -= 1
    yield result
    if left[i] == 0 and progress is not None:
        progress(blocks[i].rows)


_local = threading.local()


def bool_buffer(shape: tuple[int, int], slot: int) -> np.ndarray:
    """A boolean buffer of ``shape`` owned by this thread and reused from tile to tile."""
    key = f"b{slot}"
    buf = getattr(_local, key, None)
    n = shape[0] * shape[1]
    if buf is None or buf.size < n:
        buf = np.empty(n, np.bool_)
        setattr(_local, key, buf)
    return buf[:n].reshape(shape)
