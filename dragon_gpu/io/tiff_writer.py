"""The TIFF writer: one page (1, 8 or 16 bits; classic or BigTIFF), strip by strip.

Why not ``tifffile.TiffWriter`` (measured in benchmarks/RESULTS.md, "TIFF writer"): given an
iterator, tifffile compresses tiles only (a striped page must come whole) and takes one value a
pixel, so 1-bit rows would be unpacked and re-packed: 3.6 s against 0.46 s for the same 40k x
40k body. Fed the strips compressed here, it is as fast as this writer (0.39-0.84 s against
0.46-0.53 s) and would save only the IFD below, but it pulls one iterator per file, while the
generator pushes the strips of the body and the dye in lockstep from one pool of compression
threads (:meth:`TiffRowWriter.encode`, :meth:`TiffRowWriter.append`); it also writes classic
TIFFs past 4 GiB and its own tags. The TIFF written here is a plain baseline (or BigTIFF) file
with one IFD; the tests read it back with tifffile and Pillow.
"""

from __future__ import annotations

import os
import struct

import numpy as np

from .._version import __version__
from ..errors import UsageError
from ._segment_writer import _check_shape, _SegmentWriter
from .codecs import TIFF_WRITABLE

#: Classic TIFF offsets are 32-bit; leave room for the IFD and the strip tables.
CLASSIC_TIFF_LIMIT = (1 << 32) - (16 << 20)


class TiffRowWriter(_SegmentWriter):
    """A one-page TIFF (or BigTIFF) written strip by strip.

    The header goes first, the strips follow in row order, and the IFD with the strip offsets
    is written by :meth:`close`, once they are known; the header's IFD pointer is patched then.

    Parameters
    ----------
    path : str
        File to write (normally the temporary name of an :class:`AtomicOutput`).
    shape : (int, int)
        Rows and columns of the image.
    bits : {1, 8, 16}
        1: packed rows (uint8, ``ceil(width / 8)`` bytes a row, most significant bit first);
        8 / 16: ``uint8`` / ``uint16`` planes.
    photometric : {"minisblack", "miniswhite"}
        MINISBLACK: 0 is black (a set bit is white); MINISWHITE: 0 is white (a set bit is black).
    compression : {"deflate", "lzw", "packbits", "zstd", "none"}
    level : int, optional
        Compression level of deflate and zstd.
    rows_per_strip : int, optional
        Default: about 1 MiB of raw rows (:func:`segment_rows_for`).
    bigtiff : bool, optional
        Default: BigTIFF exactly when the file could exceed 4 GiB in the worst case of the codec.
    """

    def __init__(self, path, shape, *, bits: int = 1, photometric: str = "minisblack",
                 compression: str = "deflate", level: int | None = None,
                 rows_per_strip: int | None = None, bigtiff: bool | None = None):
        self.path = os.fspath(path)
        self.shape = _check_shape(shape)
        if bits not in (1, 8, 16):
            raise UsageError(f"TIFF bits must be 1, 8 or 16, got {bits}")
        photometric = str(photometric).lower()
        if photometric not in ("minisblack", "miniswhite"):
            raise UsageError(f"photometric must be minisblack or miniswhite, got {photometric!r}")
        self._set_codec(compression, level, TIFF_WRITABLE, "a TIFF")
        self.bits, self.photometric = bits, photometric
        self.packed = bits == 1
        self.dtype = np.dtype(np.uint16 if bits == 16 else np.uint8)
        self._set_segment_rows(rows_per_strip, "rows_per_strip")
        raw = self.shape[0] * self.row_items * self.dtype.itemsize
        # Worst-case growth: LZW can reach 1.5x on noise, PackBits 1 + 1/128 plus a byte a row,
        # deflate and zstd a fraction of a percent; 1.5x covers them all.
        worst = raw * 3 // 2 + self.n_segments * 64 + (1 << 20)
        self.bigtiff = worst > CLASSIC_TIFF_LIMIT if bigtiff is None else bool(bigtiff)
        self._offsets: list[int] = []
        self._counts: list[int] = []
        self._fh = open(self.path, "wb")
        header = (b"II" + struct.pack("<HHHQ", 43, 8, 0, 0) if self.bigtiff
                  else b"II" + struct.pack("<HI", 42, 0))
        self._fh.write(header)
        self._pos = len(header)
        self._closed = False

    # Strip encoding is a pure function of the rows: safe on any thread.
    def encode(self, row_start: int, rows: np.ndarray) -> bytes:
        """Compressed bytes of the strip starting at ``row_start`` (thread safe)."""
        self._check_segment(row_start, rows)
        rows = np.ascontiguousarray(rows, dtype=self.dtype.newbyteorder("<"))
        return self._codec.encode(rows, self.level)

    def append(self, row_start: int, nrows: int, data) -> None:
        """Write the next strip (strips come in row order)."""
        index = len(self._offsets)
        if row_start != index * self.segment_rows:
            raise ValueError(f"strip for row {row_start} written out of order (expected row "
                             f"{index * self.segment_rows})")
        size = len(data)
        if not self.bigtiff and self._pos + size > CLASSIC_TIFF_LIMIT:
            raise UsageError("the file would exceed the 4 GiB of a classic TIFF; write a BigTIFF "
                             "(bigtiff=True)", self.path)
        self._offsets.append(self._pos)
        self._counts.append(size)
        self._fh.write(data)
        self._pos += size

    def close(self) -> None:
        """Write the IFD and close the file; all strips must have been appended."""
        if self._closed:
            return
        try:
            if len(self._offsets) != self.n_segments:
                raise ValueError(f"{len(self._offsets)} strips written, the image has "
                                 f"{self.n_segments}")
            self._write_ifd()
        finally:
            self._closed = True
            self._fh.close()

    def abort(self) -> None:
        """Close the file without finishing it (the caller removes it)."""
        self._closed = True
        try:
            self._fh.close()
        except OSError:  # flushing the buffer fails again on a full disk: the file is dropped
            pass

    def _write_ifd(self) -> None:
        height, width = self.shape
        big = self.bigtiff
        if self._pos % 2:  # IFDs start on a word boundary
            self._fh.write(b"\0")
            self._pos += 1
        ptype = 16 if big else 4  # LONG8 or LONG for the strip tables
        software = f"dragon-gpu {__version__}".encode() + b"\0"
        tags = [
            (254, 4, [0]),                                 # NewSubfileType
            (256, 4, [width]),
            (257, 4, [height]),
            (258, 3, [self.bits]),
            (259, 3, [self._codec.tiff_tags[0]]),
            (262, 3, [1 if self.photometric == "minisblack" else 0]),
            (273, ptype, self._offsets),                   # StripOffsets
            (277, 3, [1]),                                 # SamplesPerPixel
            (278, 4, [self.segment_rows]),                 # RowsPerStrip
            (279, ptype, self._counts),                    # StripByteCounts
            (282, 5, [1, 1]),                              # XResolution 1/1
            (283, 5, [1, 1]),                              # YResolution 1/1
            (284, 3, [1]),                                 # PlanarConfiguration: contiguous
            (296, 3, [1]),                                 # ResolutionUnit: none
            (305, 2, software),                            # Software
        ]
        if self.bits > 1:
            tags.append((339, 3, [1]))                     # SampleFormat: unsigned integer
        fmt = {3: "H", 4: "I", 5: "I", 16: "Q", 2: "B"}
        entry_size, count_fmt, inline = (20, "<Q", 8) if big else (12, "<H", 4)
        ifd_size = struct.calcsize(count_fmt) + len(tags) * entry_size + (8 if big else 4)
        ifd_pos = self._pos
        extra_pos = ifd_pos + ifd_size
        entries, extra = [], []
        for tag, typ, values in tags:
            payload = bytes(values) if typ == 2 else struct.pack(f"<{len(values)}{fmt[typ]}",
                                                                 *values)
            count = len(values) // 2 if typ == 5 else len(values)
            if len(payload) <= inline:
                field = payload.ljust(inline, b"\0")
            else:
                field = struct.pack("<Q" if big else "<I", extra_pos)
                extra.append(payload)
                extra_pos += len(payload) + len(payload) % 2
                if len(payload) % 2:
                    extra.append(b"\0")
            head = struct.pack("<HHQ" if big else "<HHI", tag, typ, count)
            entries.append(head + field)
        blob = (struct.pack(count_fmt, len(tags)) + b"".join(entries)
                + (b"\0" * (8 if big else 4)) + b"".join(extra))
        if not big and ifd_pos + len(blob) > (1 << 32) - 1:
            raise UsageError("the file would exceed the 4 GiB of a classic TIFF; write a BigTIFF",
                             self.path)
        self._fh.write(blob)
        self._pos += len(blob)
        self._fh.seek(8 if big else 4)
        self._fh.write(struct.pack("<Q" if big else "<I", ifd_pos))

    @property
    def nbytes(self) -> int:
        return self._pos
