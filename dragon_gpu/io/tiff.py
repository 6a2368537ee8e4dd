"""TIFF reader (classic and BigTIFF, striped or tiled, 1/8/16-bit, one sample a pixel).

tifffile parses the structure (IFDs, tags, offsets); the segments are read by byte range and
decoded by :mod:`._decode`, so 1-bit data stays packed and the segments of a block are decoded on
all cores. Only the segments that cover the requested rows are ever read.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import struct
import threading
import warnings

import numpy as np
import tifffile

from .._bits import REVERSE_BITS
from ..errors import CorruptInputError, InputError, UnsupportedInputError, one_line
from ._decode import pread_exact
from ._segments import Segment, SegmentedReader
from .base import Kind, packed_row_bytes
from .codecs import CODECS, tiff_codec

#: A longer IFD chain is refused: walking it would take long, and no instrument writes one.
MAX_PAGES = 1 << 20

#: The codecs read, in words, for the refusal of any other.
_SUPPORTED = ", ".join(c.label for c in CODECS if c.tiff_tags)


#: Decoded bytes an image may declare (2**62: sizes and offsets stay within int64).
MAX_IMAGE_BYTES = 1 << 62


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
        # Walk the IFD chain ourselves first: tifffile finds only short loops, and everything it
        # reads later (pages, tag values) is then known to lie inside the file.
        self._ifds = walk_ifds(self.path)
        npages = len(self._ifds)
        if not 0 <= page < npages:
            raise UnsupportedInputError(
                f"--page {page} does not exist (the file has {npages} page"
                f"{'s' if npages != 1 else ''})", self.path)
        tif = None
        try:
            with strict_tifffile():
                # NDPI's 64-bit offsets would contradict the chain walked above.
                tif = tifffile.TiffFile(self.path, is_ndpi=False)
        except Exception as exc:  # tifffile raises many types for malformed files
            if tif is not None:  # opened, but it logged damage on the way
                tif.close()
            raise CorruptInputError(f"not a readable TIFF file ({one_line(exc)})",
                                    self.path) from None
        self._tif = tif
        try:
            self._open_page(page)
            self._fd = os.open(self.path, os.O_RDONLY)
        except BaseException:
            self._tif.close()
            raise

    def _open_page(self, page: int) -> None:
        try:
            with strict_tifffile():
                p = self._tif.pages[page]
                if not isinstance(p, tifffile.TiffPage):
                    p = p.aspage()
                self._read_tags(p)
        except InputError:
            raise
        except Exception as exc:
            raise CorruptInputError(f"damaged TIFF structure ({one_line(exc)})",
                                    self.path) from None

    def _read_tags(self, p: "tifffile.TiffPage") -> None:
        where = self.path
        if p.samplesperpixel != 1:
            raise UnsupportedInputError(
                f"has {p.samplesperpixel} samples a pixel (RGB or multi-channel); "
                "expected one grayscale or 1-bit channel", where)
        if p.imagedepth != 1:
            raise UnsupportedInputError("is a 3-D (volume) TIFF page; expected a 2-D image", where)
        bits = int(p.bitspersample)
        sampleformat = int(p.sampleformat)
        if bits not in (1, 8, 16) or sampleformat != 1:
            kind = {1: "unsigned", 2: "signed integer", 3: "floating point",
                    6: "complex floating point"}.get(sampleformat)
            kind = kind or _enum_name(tifffile.SAMPLEFORMAT, sampleformat)
            raise UnsupportedInputError(
                f"has {bits}-bit {kind} samples; expected 1-bit, uint8 or uint16", where)
        photometric = int(p.photometric)
        if photometric not in (0, 1):
            raise UnsupportedInputError(
                f"has photometric {_enum_name(tifffile.PHOTOMETRIC, photometric)}; expected "
                "MINISWHITE or MINISBLACK", where)
        code = int(p.compression)
        codec = tiff_codec(code)
        if codec is None:
            raise UnsupportedInputError(
                f"uses {_enum_name(tifffile.COMPRESSION, code)} compression; supported: "
                f"{_SUPPORTED}", where)
        predictor = int(p.predictor)
        if predictor not in (1, 2) or (predictor == 2 and bits == 1):
            raise UnsupportedInputError(f"uses unsupported predictor {predictor}", where)
        height, width = int(p.imagelength), int(p.imagewidth)
        if height < 1 or width < 1:
            raise CorruptInputError(f"declares an empty image ({height} x {width})", where)
        row_bytes = packed_row_bytes(width) if bits == 1 else width * (bits // 8)
        if height * row_bytes > MAX_IMAGE_BYTES:
            # Beyond what 64-bit offsets and sizes hold: no real file, and NumPy would overflow.
            raise CorruptInputError(f"is damaged or too large: it declares {height} x {width} "
                                    f"pixels, {height * row_bytes} bytes decoded", where)

        self.shape = (height, width)
        self.bits = bits
        self.packed = bits == 1
        self.dtype = np.dtype(np.uint16 if bits == 16 else np.uint8)
        self.kind = Kind.bilevel if bits == 1 else Kind.gray
        self.set_is_white = photometric == 1
        self.inverted = bits > 1 and photometric == 0
        self.page_index = p.index
        self._photometric = photometric
        self._codec = codec
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
        self.seg_cols = packed_row_bytes(self._seg_cols) if self.packed else self._seg_cols
        self._segs_across = -(-width // self._seg_cols)
        self._segs_down = -(-height // self._seg_rows)
        self._offsets = np.asarray(p.dataoffsets, dtype=np.int64)
        self._counts = np.asarray(p.databytecounts, dtype=np.int64)
        self._check_segment_table(where)
        self._check_declared_size()
        self.row_granularity = self._seg_rows
        self._bigtiff = self._tif.is_bigtiff

    def _check_segment_table(self, where: str) -> None:
        """Every strip or tile the layout needs is listed, and lies inside the file."""
        need = self._segs_across * self._segs_down
        if len(self._offsets) != need or len(self._counts) != need:
            raise CorruptInputError(f"lists {len(self._offsets)} data segments where its layout needs "
                                    f"{need}", where)
        size = os.path.getsize(self.path)
        if need and (self._offsets.min() < 0 or self._counts.min() < 0):
            bad = int(np.argmax((self._offsets < 0) | (self._counts < 0)))
            raise CorruptInputError(f"{self._unit_name} {bad} has a negative offset or size", where)
        inside = (self._offsets < (16 if self._tif.is_bigtiff else 8)) & (self._counts > 0)
        if inside.any():
            bad = int(np.argmax(inside))
            raise CorruptInputError(f"{self._unit_name} {bad} starts at byte "
                                    f"{int(self._offsets[bad])}, inside the TIFF header", where)
        ends = self._offsets + self._counts
        if need and ends.max() > size:
            bad = int(np.argmax(ends > size))
            raise CorruptInputError(
                f"is truncated: {self._unit_name} {bad} ends at byte {int(ends[bad])}, the file "
                f"has {size} bytes", where)

    @property
    def _unit_name(self) -> str:
        return "tile" if self._tiled else "strip"

    def _segment_row_bytes(self) -> int:
        per_row = packed_row_bytes(self._seg_cols) if self.packed else self._seg_cols
        return per_row * self._file_dtype.itemsize

    def _check_declared_size(self) -> None:
        """Refuse segments whose stored bytes cannot hold their pixels under any valid stream.

        A header may declare a gigapixel image over a few bytes of data; this finds it from the
        tags alone, before a buffer is allocated or a byte is decoded.
        """
        if not len(self._counts):
            return
        # Stored bytes that cannot expand to the pixels they must hold are damage (or a lie
        # about the image size): the codec table bounds each codec's expansion.
        raw_data = self._codec.decode is None
        ratio = self._codec.max_expansion
        seg_bytes = self._seg_rows * self._segment_row_bytes()
        need = np.full(len(self._counts), seg_bytes, dtype=np.int64)
        if not self._tiled:  # the last strip holds only the rows that are left
            need[-1] = (self.height - (len(need) - 1) * self._seg_rows) * self._segment_row_bytes()
        if not raw_data:
            # No encoder writes more than twice the data (LZW at worst 12 bits a byte); the raw
            # bytes of a segment are read whole, so a bloated count would be a big allocation.
            bloated = self._counts > 2 * need + 4096
            if bloated.any():
                bad = int(np.argmax(bloated))
                raise CorruptInputError(
                    f"{self._unit_name} {bad} stores {int(self._counts[bad])} bytes for "
                    f"{int(need[bad])} decoded bytes, more than any encoder writes", self.path)
        if ratio is None:
            return
        short = self._counts * ratio < need
        if short.any():
            bad = int(np.argmax(short))
            how = ("" if raw_data else
                   f", and {self._codec.name} data expands at most {ratio} times")
            raise CorruptInputError(
                f"is damaged or truncated: it declares {self.height} x {self.width} pixels, but "
                f"{self._unit_name} {bad} stores {int(self._counts[bad])} bytes where its pixels "
                f"need {int(need[bad])}{how}", self.path)

    @property
    def unit_nbytes(self) -> int:
        """Bytes held at once to deliver one band: the raw and decoded segment (and the band)."""
        seg_bytes = self._seg_rows * self._segment_row_bytes()
        raw = int(self._counts.max()) if len(self._counts) else 0
        band = min(self._seg_rows, self.height) * self.row_nbytes if self._tiled else 0
        return seg_bytes + raw + band

    # -- facts -------------------------------------------------------------------------------
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
            "compression": self._codec.name,
            "predictor": "horizontal" if self._predictor == 2 else "none",
            "stored_bytes": int(self._counts.sum()),
        }

    # -- reading ----------------------------------------------------------------------------
    @property
    def tile_grid(self) -> tuple[int, int] | None:
        """Tiles in pixels (a 1-bit tile is a multiple of 8 pixels wide); strips: None."""
        return (self._seg_rows, self._seg_cols) if self._tiled else None

    @property
    def strip_rows(self) -> int | None:
        return None if self._tiled else self._seg_rows

    def decode_segment(self, seg: Segment, dest: np.ndarray | None = None) -> np.ndarray:
        # A strip at the bottom edge holds only the rows left; tiles are always full size.
        rows = seg.rows if self._tiled else min(seg.rows, self.height - seg.row0)
        per_row = seg.cols
        need = rows * per_row * self._file_dtype.itemsize
        # Whole strips decode straight into the block (no scratch copy) unless bits need reversing.
        direct = dest is not None and dest.nbytes == need
        target = dest.reshape(-1).view(np.uint8) if direct else None
        count = int(self._counts[seg.index])
        try:
            if self._codec.decode is None:
                if count < need:
                    raise EOFError(f"uncompressed segment holds {count} bytes, not {need}")
                buf = pread_exact(self._fd, int(self._offsets[seg.index]), need,
                                  target if direct else self.scratch(need, "raw"))
                if self._fillorder == 2:
                    np.take(REVERSE_BITS, buf, out=buf)
            else:
                raw = pread_exact(self._fd, int(self._offsets[seg.index]), count,
                                  self.scratch(count, "raw"))
                if self._fillorder == 2:
                    # FillOrder applies to the stored bytes (as libtiff and tifffile read it),
                    # so they are reversed before decompression, at every bit depth.
                    np.take(REVERSE_BITS, raw, out=raw)
                buf = _as_bytes_array(self._codec.decode(raw, out=target if direct
                                                        else self.scratch(need)))
        except Exception as exc:
            raise CorruptInputError(f"segment {seg.index} cannot be decoded ({one_line(exc)})",
                                    self.path) from None
        if buf.nbytes < need:
            raise CorruptInputError(
                f"segment {seg.index} decodes to {buf.nbytes} bytes, its {rows} rows need {need}",
                self.path)
        data = buf[:need].view(self._file_dtype).reshape(rows, per_row)
        if self.packed:
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


def walk_ifds(path: str) -> list[int]:
    """Byte offsets of the IFDs (pages) of a TIFF file, checked before tifffile reads any.

    Raises
    ------
    CorruptInputError
        If the chain of IFDs loops, points outside the file, or an IFD is cut short.
    """
    size = os.path.getsize(path)
    try:
        fh = open(path, "rb")
    except OSError as exc:
        raise CorruptInputError(f"cannot be read ({exc.strerror or exc})", path) from None
    with fh:
        head = fh.read(16)
        order = {b"II": "<", b"MM": ">"}.get(head[:2])
        if order is None or len(head) < 8:
            raise CorruptInputError("is too short to be a TIFF file", path)
        version = struct.unpack(order + "H", head[2:4])[0]
        if version == 42:
            count_fmt, entry_size, offset_fmt = "H", 12, "I"
            first = struct.unpack(order + "I", head[4:8])[0]
        elif version == 43:
            if len(head) < 16 or struct.unpack(order + "HH", head[4:8]) != (8, 0):
                raise CorruptInputError("has a damaged BigTIFF header", path)
            count_fmt, entry_size, offset_fmt = "Q", 20, "Q"
            first = struct.unpack(order + "Q", head[8:16])[0]
        else:
            raise CorruptInputError(f"has an unknown TIFF version {version}", path)
        count_size = struct.calcsize(count_fmt)
        offset_size = struct.calcsize(offset_fmt)
        header = 8 if version == 42 else 16
        seen: dict[int, int] = {}
        offset = first
        while offset:
            index = len(seen)
            if offset in seen:
                raise CorruptInputError(f"its pages form a loop: IFD {index - 1} points back to "
                                        f"IFD {seen[offset]} at byte {offset}", path)
            if index >= MAX_PAGES:
                raise UnsupportedInputError(f"has more than {MAX_PAGES} pages", path)
            if offset < header or offset + count_size > size:
                raise CorruptInputError(f"IFD {index} would start at byte {offset}, outside the "
                                        f"file ({size} bytes)", path)
            fh.seek(offset)
            tags = struct.unpack(order + count_fmt, fh.read(count_size))[0]
            end = offset + count_size + tags * entry_size + offset_size
            if tags == 0:
                raise CorruptInputError(f"IFD {index} at byte {offset} has no tags", path)
            if end > size:
                raise CorruptInputError(f"is truncated: IFD {index} at byte {offset} ends at byte "
                                        f"{end}, the file has {size} bytes", path)
            seen[offset] = index
            fh.seek(end - offset_size)
            offset = struct.unpack(order + offset_fmt, fh.read(offset_size))[0]
    if not seen:
        raise CorruptInputError("has no page (its first IFD offset is 0)", path)
    return list(seen)


class _Collect(logging.Filter):
    """Diverts tifffile's log records into the list of the thread that is opening a file.

    tifffile reports damage it works around (an unreadable tag, a wrong strip count, a bad page
    offset) through its logger, then goes on with defaults; for untrusted input those are errors.
    Other threads and other callers of tifffile are left alone.
    """

    def __init__(self):
        super().__init__()
        self.local = threading.local()

    def filter(self, record: logging.LogRecord) -> bool:
        sink = getattr(self.local, "sink", None)
        if sink is None or record.levelno < logging.WARNING:
            return True
        sink.append(record.getMessage())
        return False


_COLLECT = _Collect()
logging.getLogger("tifffile").addFilter(_COLLECT)


@contextlib.contextmanager
def strict_tifffile():
    """Run tifffile with its warnings and logged problems raised as errors (this thread only)."""
    sink: list[str] = []
    outer = getattr(_COLLECT.local, "sink", None)
    _COLLECT.local.sink = sink
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            yield sink
    finally:
        _COLLECT.local.sink = outer
    if sink:
        raise tifffile.TiffFileError(_tidy(sink[0]))


def _tidy(message: str) -> str:
    """A tifffile log message without object reprs (``<tifffile.TiffTag 273 @26>``: ``tag 273``)."""
    message = re.sub(r"<(?:tifffile\.)?TiffTag (\d+) @\d+>", r"tag \1", message)
    message = re.sub(r"<(?:tifffile\.)?TiffPage (\d+) @\d+>", r"page \1", message)
    message = re.sub(r"<(?:tifffile\.)?\w+ '[^']*'>", "file", message)
    return message.strip()[:200]


def _as_bytes_array(decoded) -> np.ndarray:
    if isinstance(decoded, np.ndarray):
        return decoded.reshape(-1).view(np.uint8)
    return np.frombuffer(decoded, dtype=np.uint8)



def _enum_name(enum, code: int) -> str:
    try:
        return enum(code).name
    except (ValueError, TypeError):
        return f"unknown ({code})"
