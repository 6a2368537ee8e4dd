"""Row blocks assembled from independently compressed segments (TIFF strips/tiles, HDF5 chunks).

Each segment of a block is one task on the shared decode pool: its raw bytes are read with
``os.pread`` (no shared file position, no library lock), decompressed into a buffer reused by that
thread, and the rows and columns that fall inside the block are copied into the output. Nothing is
allocated per segment, and the segments of one block decode on every core.
"""

from __future__ import annotations

import abc
import threading
from dataclasses import dataclass

import numpy as np

from ._decode import decode_pool
from .base import MaskReader


@dataclass(frozen=True)
class Segment:
    """One independently decodable piece: its index and where it lies (rows, row items)."""

    index: int
    row0: int
    col0: int      # in row items (bytes for packed rows, values for planes)
    rows: int      # rows stored in the segment (may extend past the image)
    cols: int      # row items stored in the segment (may extend past the image)


class SegmentedReader(MaskReader):
    """A reader whose rows come from a grid of segments; subclasses describe and decode them."""

    #: rows and row items of a full segment.
    seg_rows: int
    seg_cols: int

    def __init__(self):
        self._local = threading.local()

    @property
    def segs_across(self) -> int:
        return -(-self.row_items // self.seg_cols)

    def scratch(self, nbytes: int, slot: str = "a") -> np.ndarray:
        """A uint8 buffer of at least ``nbytes``, owned by the calling thread and reused."""
        key = f"buf_{slot}"
        buf = getattr(self._local, key, None)
        if buf is None or buf.nbytes < nbytes:
            buf = np.empty(nbytes, dtype=np.uint8)
            setattr(self._local, key, buf)
        return buf[:nbytes]

    @abc.abstractmethod
    def decode_segment(self, seg: Segment, dest: np.ndarray | None = None) -> np.ndarray:
        """The segment's pixels, shape ``(rows, seg.cols)`` of ``self.dtype``.

        The result may be a view of this thread's scratch buffer, valid until this thread decodes
        again. ``dest``, when given, is where the segment's rows belong in the block (full rows,
        C-contiguous): a reader that can decode straight into it does, and returns ``dest``.
        """

    def read_tile(self, band: int, col: int) -> np.ndarray:
        across = self.segs_across
        if not (0 <= band < -(-self.height // self.seg_rows) and 0 <= col < across):
            raise ValueError(f"tile ({band}, {col}) outside the grid")
        return self.decode_segment(Segment(band * across + col, band * self.seg_rows,
                                           col * self.seg_cols, self.seg_rows, self.seg_cols))

    def segments(self, row_start: int, row_stop: int):
        first, last = row_start // self.seg_rows, (row_stop - 1) // self.seg_rows
        for band in range(first, last + 1):
            for col in range(self.segs_across):
                yield Segment(band * self.segs_across + col, band * self.seg_rows,
                              col * self.seg_cols, self.seg_rows, self.seg_cols)

    def read_rows(self, row_start, row_stop, out=None):
        out = self._check_range(row_start, row_stop, out)
        if row_start == row_stop:
            return out
        pool = decode_pool()
        futures = [pool.submit(self._place, seg, out, row_start, row_stop)
                   for seg in self.segments(row_start, row_stop)]
        try:
            for f in futures:
                f.result()
        finally:
            for f in futures:
                f.cancel()
        return out

    def _place(self, seg: Segment, out: np.ndarray, row_start: int, row_stop: int) -> None:
        lo, hi = max(row_start, seg.row0), min(row_stop, seg.row0 + seg.rows, self.height)
        c1 = min(self.row_items, seg.col0 + seg.cols)
        whole = (seg.col0 == 0 and seg.cols == self.row_items and lo == seg.row0
                 and hi == min(seg.row0 + seg.rows, self.height))
        dest = out[lo - row_start:hi - row_start]
        data = self.decode_segment(seg, dest if whole else None)
        if data is not dest:
            dest[:, seg.col0:c1] = data[lo - seg.row0:hi - seg.row0, :c1 - seg.col0]
