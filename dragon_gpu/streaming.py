"""Read row blocks ahead of the consumer into a ring of reused buffers."""

from __future__ import annotations

from typing import Callable, Iterator, Sequence

import numpy as np

from .io._decode import ordered_map
from .io.base import MaskReader
from .model import RowRange

Allocator = Callable[[MaskReader, int], np.ndarray]


def _default_alloc(reader: MaskReader, rows: int) -> np.ndarray:
    return reader.empty_rows(rows)


def prefetch(readers: Sequence[MaskReader], blocks: Sequence[RowRange], depth: int = 2,
             alloc: Allocator = _default_alloc) -> Iterator[tuple[RowRange, tuple[np.ndarray, ...]]]:
    """Yield ``(rows, arrays)`` for each block, reading up to ``depth`` blocks ahead on a thread.

    The arrays of a block are views into a ring of ``depth + 1`` buffers per reader, allocated
    once with ``alloc(reader, max_rows)`` (pinned host memory for the GPU engine). They stay valid
    until the consumer asks for the next block; the buffer is then reused.
    """
    if not blocks:
        return
    max_rows = max(b.rows for b in blocks)
    slots = depth + 1
    ring = [[alloc(r, max_rows) for r in readers] for _ in range(slots)]

    def read(i: int):
        block, bufs = blocks[i], ring[i % slots]
        return block, tuple(r.read_rows(block.row_start, block.row_stop, out=buf)
                            for r, buf in zip(readers, bufs))

    # A window of depth + 1: block i + depth is submitted when the consumer asks for block i,
    # into slot (i + depth) % slots, which held block i - 1, which the consumer is done with.
    yield from ordered_map(read, range(len(blocks)), 1, depth + 1, background=True,
                           name="dragon-prefetch")
