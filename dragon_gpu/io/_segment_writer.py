"""What the streaming writers share: segment rows, re-cutting row blocks, the ordered append.

Every writer takes rows in order, cuts them into segments (TIFF strips, HDF5 chunks of whole rows)
and compresses the segments on all cores (:func:`~dragon_gpu.io._decode.ordered_map`): imagecodecs
releases the GIL, so a thread pool is enough. Memory stays bounded by a few segments per core,
whatever the image size.
"""

from __future__ import annotations

from typing import Iterable, Iterator

import numpy as np

from ..errors import UsageError
from ..model import RowProgress
from ._decode import decode_workers, ordered_map
from .base import packed_row_bytes

#: Raw bytes a segment aims at: large enough for good compression, small enough to stream.
SEGMENT_NBYTES = 1 << 20


def segment_rows_for(row_nbytes: int, target: int = SEGMENT_NBYTES) -> int:
    """Rows of a strip or chunk: about ``target`` raw bytes, a multiple of 16 rows, 16 to 4096."""
    rows = max(1, target // max(1, row_nbytes))
    return int(min(4096, max(16, rows // 16 * 16)))


def _rechunk(blocks: Iterable[np.ndarray], rows: int, total_rows: int, row_items: int,
             dtype: np.dtype) -> Iterator[tuple[int, np.ndarray]]:
    """Re-cut row blocks of any height into ``(row_start, segment)`` of ``rows`` rows (last shorter)."""
    buf = np.empty((rows, row_items), dtype=dtype)
    fill = 0
    start = 0
    for block in blocks:
        block = np.asarray(block)
        if block.ndim != 2 or block.shape[1] != row_items:
            raise ValueError(f"row block of shape {block.shape} does not have {row_items} items "
                             "a row")
        if block.dtype != dtype:
            raise ValueError(f"row block has dtype {block.dtype}, the writer expects {dtype}")
        pos = 0
        while pos < block.shape[0]:
            if fill == 0 and block.shape[0] - pos >= rows:
                # Copied: the caller may reuse its block buffer while this segment is encoded.
                yield start, block[pos:pos + rows].copy()
                start += rows
                pos += rows
                continue
            take = min(rows - fill, block.shape[0] - pos)
            buf[fill:fill + take] = block[pos:pos + take]
            fill += take
            pos += take
            if fill == rows:
                yield start, buf.copy()
                start += rows
                fill = 0
        if start + fill > total_rows:
            raise ValueError(f"the row blocks hold more than the {total_rows} rows of the image")
    if fill:
        yield start, buf[:fill].copy()
        start += fill
    if start != total_rows:
        raise ValueError(f"the row blocks hold {start} rows, the image has {total_rows}")


class _SegmentWriter:
    """What both writers share: shape, row encoding, segment rows and the ordered append."""

    shape: tuple[int, int]
    packed: bool
    dtype: np.dtype
    segment_rows: int
    path: str

    @property
    def row_items(self) -> int:
        width = self.shape[1]
        return packed_row_bytes(width) if self.packed else width

    def _set_codec(self, compression: str, level: int | None, writable: dict, what: str) -> None:
        """Check ``compression`` against the codecs ``writable`` in this format (``what``)."""
        compression = str(compression).lower()
        if compression not in writable:
            raise UsageError(f"{compression!r} is not {what} compression; choose one of "
                             f"{', '.join(writable)}", param="compression")
        self.compression, self._codec = compression, writable[compression]
        self.level = self._codec.level if level is None else int(level)

    def _set_segment_rows(self, rows: int | None, param: str) -> None:
        """Rows of a segment: ``rows``, or about 1 MiB of raw rows (:func:`segment_rows_for`)."""
        if rows is None:
            rows = segment_rows_for(self.row_items * self.dtype.itemsize)
        if int(rows) < 1:
            raise UsageError(f"must be positive, got {rows}", param=param)
        self.segment_rows = min(int(rows), self.shape[0])

    @property
    def n_segments(self) -> int:
        return -(-self.shape[0] // self.segment_rows)

    def _check_segment(self, row_start: int, rows: np.ndarray) -> None:
        if row_start % self.segment_rows:
            raise ValueError(f"segment starts at row {row_start}, not a multiple of "
                             f"{self.segment_rows}")
        expect = min(self.segment_rows, self.shape[0] - row_start)
        if rows.shape != (expect, self.row_items) or rows.dtype != self.dtype:
            raise ValueError(f"segment at row {row_start} has shape {rows.shape} and dtype "
                             f"{rows.dtype}; expected {(expect, self.row_items)} {self.dtype}")

    def write_blocks(self, blocks: Iterable[np.ndarray], workers: int | None = None,
                     progress: RowProgress | None = None) -> None:
        """Write the whole image from row blocks of any height, compressing on ``workers`` threads."""
        segments = _rechunk(blocks, self.segment_rows, self.shape[0], self.row_items, self.dtype)
        workers = decode_workers() if workers is None else workers
        done = 0

        def encode(item):
            start, rows = item
            return start, rows.shape[0], self.encode(start, rows)

        for start, nrows, data in ordered_map(encode, segments, workers):
            self.append(start, nrows, data)
            done += nrows
            if progress is not None:
                progress(done, self.shape[0])

    def encode(self, row_start: int, rows: np.ndarray):  # pragma: no cover - abstract
        raise NotImplementedError

    def append(self, row_start: int, nrows: int, data) -> None:  # pragma: no cover - abstract
        raise NotImplementedError


def _check_shape(shape) -> tuple[int, int]:
    try:
        height, width = (int(n) for n in shape)
    except (TypeError, ValueError):
        raise UsageError(f"shape must be (rows, columns), got {shape!r}") from None
    if height < 1 or width < 1:
        raise UsageError(f"shape must be positive, got {height} x {width}")
    return height, width
