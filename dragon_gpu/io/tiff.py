"""TIFF reader (classic and BigTIFF, striped or tiled, 1/8/16-bit, one sample a pixel).

tifffile parses the structure (IFDs, tags, offsets); the segments are read by byte range and
decoded by :mod:`._decode`, so 1-bit data stays packed and the segments of a block are decoded on
all cores. Only the segments that cover the requested rows are ever read.
"""

from __future__ import annotations

import os
import warnings

import numpy as np
import tifffile

from ..errors import CorruptInputError, InputError, UnsupportedInputError
from ._decode import TIFF_DECODERS, decode_pool, pread_exact
from ._segments import Segment, SegmentedReader
from .base import Kind

_REVERSE_BITS = np.array([int(f"{i:08b}"[::-1], 2) for i in range(256)], dtype=np.uint8)


class TiffReader(SegmentedReader):
    """Rows of one page of a TIFF file.

    Parameters
    ----------
    path : str
        The file.
    page : int
        Index of the page (IFD) to read; the first by default.
    """

    def __init__(self, path: str, page: int = 0):
        super().__init__()
        self.path = str(path)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                self._tif = tifffile.TiffFile(self.path)
        except Exception as exc:  # tifffile raises many types for malformed files
            raise CorruptInputError(f"not a readable TIFF file ({_why(exc)})", self.path) from None
        try:
            self._open_page(page)
        except BaseException:
            self._tif.close()
            raise
        self._fd = os.open(self.path, os.O_RDONLY)

    def _open_page(self, page: int) -> None:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                npages = len(self._tif.pages)
                if not 0 <= page < npages:
                    raise UnsupportedInputError(
                        f"--page {page} does not exist (the file has {npages} page"
                        f"{'s' if npages != 1 else ''})", self.path)
                p = self._tif.pages[page]
                if not isinstance(p, tifffile.TiffPage):
                    p = p.aspage()
                self._read_tags(p)
        except InputError:
            raise
        except Exception as exc:
            raise CorruptInputError(f"damaged TIFF structure ({_why(exc)})", self.path) from None

    def _read_tags(self, p: "tifffile.TiffPage") -> None:
        where = self.path
        if p.samplesperpixel != 1:
            raise UnsupportedInputError(
                f"has {p.samplesperpixel} samples a pixel (RGB or multi-channel); "
                "expected one grayscale or 1-bit channel", where)
        if p.imagedepth != 1:
            raise UnsupportedInputError("is a 3-D (volume) TIFF page; expected a 2-D image", where)
        bits = int(p.bitspersample)
        if bits not in (1, 8, 16) or int(p.sampleformat) != 1:
            raise UnsupportedInputError(
                f"has {bits}-bit {tifffile.TIFF.SAMPLEFORMAT(p.sampleformat).name.lower()} "
                "samples; expected 1-bit, uint8 or uint16", where)
        photometric = int(p.photometric)
        if photometric not in (0, 1):
            raise UnsupportedInputError(
                f"has photometric {tifffile.TIFF.PHOTOMETRIC(photometric).name}; expected "
                "MINISWHITE or MINISBLACK", where)
        code = int(p.compression)
        if code not in TIFF_DECODERS:
            raise UnsupportedInputError(
                f"uses {_enum_name(tifffile.TIFF.COMPRESSION, code)} compression; supported: none, "
                "deflate, LZW, PackBits, zstd, LZMA", where)
        predictor = int(p.predictor)
        if predictor not in (1, 2) or (predictor == 2 and bits == 1):
            raise UnsupportedInputError(f"uses unsupported predictor {predictor}", where)
        height, width = int(p.imagelength), int(p.imagewidth)
        if height < 1 or width < 1:
            raise CorruptInputError(f"declares an empty image ({height} x {width})", where)

        self.shape = (height, width)
        self.bits = bits
        self.packed = bits == 1
        self.dtype = np.dtype(np.uint16 if bits == 16 else np.uint8)
        self.kind = Kind.bilevel if bits == 1 else Kind.gray
        self.set_is_white = photometric == 1
        self.inverted = bits > 1 and photometric == 0
        self.page_index = p.index
        self._photometric = photometric
        self._compression = code
        self._decoder = TIFF_DECODERS[code][1]
        self._predictor = predictor
        self._fillorder = int(p.fillorder)
        self._file_dtype = np.dtype(self._tif.byteorder + ("u2" if bits == 16 else "u1"))
        self._tiled = bool(p.is_tiled)
        if self._tiled:
            self._seg_rows, self._seg_cols = int(p.tilelength), int(p.tilewidth)
            if self._seg_rows < 1 or self._seg_cols < 1 or (bits == 1 and self._seg_cols % 8):
                raise CorruptInputError(f"has an invalid tile size {self._seg_rows} x "
                                        f"{self._seg_cols}", where)
        else:
            self._seg_rows, self._seg_cols = min(int(p.rowsperstrip) or height, height), width
        self.seg_rows = self._seg_rows
        self.seg_cols = -(-self._seg_cols // 8) if self.packed else self._seg_cols
        self._segs_across = -(-width // self._seg_cols)
        self._segs_down = -(-height // self._seg_rows)
        self._offsets = np.asarray(p.dataoffsets, dtype=np.int64)
        self._counts = np.asarray(p.databytecounts, dtype=np.int64)
        need = self._segs_across * self._segs_down
        if len(self._offsets) != need or len(self._counts) != need:
            raise CorruptInputError(f"lists {len(self._offsets)} data segments where its layout needs "
                                    f"{need}", where)
        size = os.path.getsize(self.path)
        ends = self._offsets + self._counts
        if need and (self._offsets.min() < 0 or ends.max() > size):
            bad = int(np.argmax(ends > size))
            raise CorruptInputError(
                f"is truncated: segment {bad} ends at byte {int(ends[bad])}, the file has {size} bytes",
                where)
        self.row_granularity = self._seg_rows
        self._bigtiff = self._tif.is_bigtiff

    # -- facts -------------------------------------------------------------------------------
    @property
    def segment_shape(self) -> tuple[int, int]:
        """Rows and pixel columns of one strip or tile."""
        return self._seg_rows, self._seg_cols

    def describe(self) -> dict:
        layout = (f"tiles of {self._seg_rows} x {self._seg_cols}" if self._tiled
                  else f"strips of {self._seg_rows} rows")
        return {
            "format": "BigTIFF" if self._bigtiff else "TIFF",
            "page": self.page_index,
            "photometric": "MINISBLACK" if self._photometric == 1 else "MINISWHITE",
            "fillorder": "LSB2MSB" if self._fillorder == 2 else "MSB2LSB",
            "layout": layout,
            "segments": int(len(self._offsets)),
            "compression": TIFF_DECODERS[self._compression][0],
            "predictor": "horizontal" if self._predictor == 2 else "none",
            "stored_bytes": int(self._counts.sum()),
        }

    # -- reading ----------------------------------------------------------------------------
    def decode_segment(self, seg: Segment, dest: np.ndarray | None = None) -> np.ndarray:
        # A strip at the bottom edge holds only the rows left; tiles are always full size.
        rows = seg.rows if self._tiled else min(seg.rows, self.height - seg.row0)
        per_row = seg.cols
        need = rows * per_row * self._file_dtype.itemsize
        # Whole strips decode straight into the block (no scratch copy) unless bits need reversing.
        direct = dest is not None and self._fillorder != 2 and dest.nbytes == need
        target = dest.reshape(-1).view(np.uint8) if direct else None
        count = int(self._counts[seg.index])
        try:
            if self._decoder is None:
                if count < need:
                    raise EOFError(f"uncompressed segment holds {count} bytes, not {need}")
                buf = pread_exact(self._fd, int(self._offsets[seg.index]), need,
                                  target if direct else self.scratch(need, "raw"))
            else:
                raw = pread_exact(self._fd, int(self._offsets[seg.index]), count,
                                  self.scratch(count, "raw"))
                buf = _as_bytes_array(self._decoder(raw, out=target if direct
                                                    else self.scratch(need)))
        except Exception as exc:
            raise CorruptInputError(f"segment {seg.index} cannot be decoded ({_why(exc)})",
                                    self.path) from None
        if buf.nbytes < need:
            raise CorruptInputError(
                f"segment {seg.index} decodes to {buf.nbytes} bytes, its {rows} rows need {need}",
                self.path)
        data = buf[:need].view(self._file_dtype).reshape(rows, per_row)
        if self.packed:
            if self._fillorder == 2:
                data = np.take(_REVERSE_BITS, data, out=self.scratch(need, "b").reshape(data.shape))
            return dest if direct else data
        if self._file_dtype != self.dtype:
            if direct:
                data = data.byteswap(inplace=True).view(self.dtype)
            else:
                native = self.scratch(need, "b").view(self.dtype).reshape(data.shape)
                np.copyto(native, data)
                data = native
        if self._predictor == 2:
            np.cumsum(data, axis=1, dtype=self.dtype, out=data)
        return dest if direct else data

    def close(self):
        if getattr(self, "_fd", None) is not None:
            os.close(self._fd)
            self._fd = None
        self._tif.close()


def _as_bytes_array(decoded) -> np.ndarray:
    if isinstance(decoded, np.ndarray):
        return decoded.reshape(-1).view(np.uint8)
    return np.frombuffer(decoded, dtype=np.uint8)


def _why(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _enum_name(enum, code: int) -> str:
    try:
        return enum(code).name
    except ValueError:
        return f"unknown ({code})"
