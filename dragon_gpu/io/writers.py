"""Streaming writers: TIFF (1, 8 or 16 bits) and HDF5 (packed bits or plain), row block by row block.

Every writer takes rows in order, cuts them into segments (TIFF strips, HDF5 chunks of whole rows)
and compresses the segments on all cores: imagecodecs releases the GIL, so a thread pool is
enough. Memory stays bounded by a few segments per core, whatever the image size.

Outputs are written to a temporary name in the destination folder and renamed when complete
(:class:`~dragon_gpu.io._output.AtomicOutput`, the one atomic writer): an interrupted or failed
write (an exception, Ctrl-C, SIGTERM, a full disk) leaves nothing under the final name and
removes the temporary file.

Row encodings are those of :mod:`dragon_gpu.io.base`: *packed* rows hold one bit a pixel, most
significant bit first, ``ceil(width / 8)`` bytes a row (padding bits should be zero); *plane*
rows hold one ``uint8`` or ``uint16`` value a pixel.

Why not ``tifffile.TiffWriter.write``: it pulls one iterator per file, while the generator produces
the body and the dye rows together and must feed two files in lockstep, and it would not let the
strips of both files share one pool of compression threads. The TIFF written here is a plain
baseline (or BigTIFF) file with one IFD; the tests read it back with tifffile and Pillow.
"""

from __future__ import annotations

import os
import struct
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Iterable, Iterator

import imagecodecs
import numpy as np

from .. import __version__
from ..errors import UsageError
from ._output import AtomicOutput
from .hdf5 import PACKED_BITORDER_ATTR, PACKED_ENCODING, PACKED_ENCODING_ATTR, PACKED_WIDTH_ATTR

__all__ = ["AtomicOutput", "Hdf5RowWriter", "TiffRowWriter", "TIFF_COMPRESSIONS",
           "HDF5_COMPRESSIONS", "segment_rows_for", "write_hdf5", "write_tiff", "ordered_map"]

#: TIFF compression name -> tag value.
TIFF_COMPRESSIONS = {"deflate": 8, "lzw": 5, "packbits": 32773, "zstd": 50000, "none": 1}
#: HDF5 compression names; lz4 and zstd need the ``hdf5plugin`` package.
HDF5_COMPRESSIONS = ("gzip", "lzf", "lz4", "zstd", "none")
#: Default levels: libdeflate 6 and zstd 3 are the usual speed/size balance of each codec.
DEFAULT_LEVELS = {"deflate": 6, "gzip": 6, "zstd": 3}
#: Raw bytes a segment aims at: large enough for good compression, small enough to stream.
SEGMENT_NBYTES = 1 << 20
#: Classic TIFF offsets are 32-bit; leave room for the IFD and the strip tables.
CLASSIC_TIFF_LIMIT = (1 << 32) - (16 << 20)


def segment_rows_for(row_nbytes: int, target: int = SEGMENT_NBYTES) -> int:
    """Rows of a strip or chunk: about ``target`` raw bytes, a multiple of 16 rows, 16 to 4096."""
    rows = max(1, target // max(1, row_nbytes))
    return int(min(4096, max(16, rows // 16 * 16)))


# -- parallel, ordered encoding ---------------------------------------------------------------------
def ordered_map(fn: Callable, items: Iterable, workers: int, window: int | None = None) -> Iterator:
    """``fn(item)`` for each item on ``workers`` threads, yielded in the order of ``items``.

    At most ``window`` items (default ``2 * workers + 2``) are in flight, so memory stays bounded.
    When the consumer stops early (an exception, Ctrl-C), queued items are cancelled and the
    running ones finish before this returns.
    """
    window = window or 2 * workers + 2
    if workers <= 1:
        for item in items:
            yield fn(item)
        return
    pool = ThreadPoolExecutor(workers, thread_name_prefix="dragon-encode")
    pending: deque = deque()
    try:
        for item in items:
            pending.append(pool.submit(fn, item))
            if len(pending) >= window:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        for f in pending:
            f.cancel()
        pool.shutdown(wait=True, cancel_futures=True)


def default_workers() -> int:
    from ._decode import decode_workers

    return decode_workers()


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
        return (width + 7) // 8 if self.packed else width

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
                     progress: Callable[[int, int], None] | None = None) -> None:
        """Write the whole image from row blocks of any height, compressing on ``workers`` threads."""
        segments = _rechunk(blocks, self.segment_rows, self.shape[0], self.row_items, self.dtype)
        workers = default_workers() if workers is None else workers
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


# -- TIFF -------------------------------------------------------------------------------------------
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
        compression = str(compression).lower()
        if compression not in TIFF_COMPRESSIONS:
            raise UsageError(f"{compression!r} is not a TIFF compression; choose one of "
                             f"{', '.join(TIFF_COMPRESSIONS)}", param="compression")
        self.bits, self.photometric, self.compression = bits, photometric, compression
        self.level = DEFAULT_LEVELS.get(compression) if level is None else int(level)
        self.packed = bits == 1
        self.dtype = np.dtype(np.uint16 if bits == 16 else np.uint8)
        row_nbytes = self.row_items * self.dtype.itemsize
        if rows_per_strip is None:
            rows_per_strip = segment_rows_for(row_nbytes)
        if int(rows_per_strip) < 1:
            raise UsageError(f"must be positive, got {rows_per_strip}", param="rows_per_strip")
        self.segment_rows = min(int(rows_per_strip), self.shape[0])
        raw = self.shape[0] * row_nbytes
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
        c = self.compression
        if c == "deflate":
            return imagecodecs.deflate_encode(rows, level=self.level)
        if c == "zstd":
            return imagecodecs.zstd_encode(rows, level=self.level)
        if c == "lzw":
            return imagecodecs.lzw_encode(rows)
        if c == "packbits":
            # TIFF PackBits never runs across rows: each row is packed on its own.
            return imagecodecs.packbits_encode(rows.view(np.uint8), axis=-1)
        return rows.tobytes()

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
            (259, 3, [TIFF_COMPRESSIONS[self.compression]]),
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


# -- HDF5 -------------------------------------------------------------------------------------------
class Hdf5RowWriter(_SegmentWriter):
    """One 2-D dataset of a new HDF5 file, chunked by whole rows.

    Chunks span the full row width, so a segment of rows is exactly one chunk: chunks compressed
    by the codecs whose HDF5 filter format imagecodecs produces (gzip, lz4, zstd, none) are
    compressed on worker threads and stored with ``write_direct_chunk``; ``lzf`` goes through
    h5py's filter pipeline on the writing thread.

    Parameters
    ----------
    path : str
        File to create (normally the temporary name of an :class:`AtomicOutput`).
    shape : (int, int)
        Rows and columns of the image.
    packed : bool
        True: a packed-bit mask, stored as ``uint8`` of shape ``(rows, ceil(width / 8))`` with
        the attributes ``dragon_gpu_encoding = "packed-bits"``, ``width = columns`` and
        ``bitorder = "big"`` (most significant bit first); a set bit is a member.
        False: a plain dataset of ``dtype`` and shape ``(rows, columns)``.
    dtype : numpy dtype
        ``uint8`` or ``uint16`` when not packed.
    dataset : str
        Dataset path inside the file (``"mask"``).
    compression : {"gzip", "lzf", "lz4", "zstd", "none"}
    level : int, optional
        gzip and zstd level.
    chunk_rows : int, optional
        Rows of a chunk; default about 1 MiB of raw rows.
    attrs : dict, optional
        More attributes of the dataset.
    """

    def __init__(self, path, shape, *, packed: bool = True, dtype=np.uint8, dataset: str = "mask",
                 compression: str = "gzip", level: int | None = None,
                 chunk_rows: int | None = None, attrs: dict | None = None):
        import h5py

        self.path = os.fspath(path)
        self.shape = _check_shape(shape)
        self.packed = bool(packed)
        self.dtype = np.dtype(np.uint8 if self.packed else dtype)
        if self.dtype not in (np.dtype(np.uint8), np.dtype(np.uint16)):
            raise UsageError(f"HDF5 datasets are written as uint8 or uint16, not {self.dtype}")
        compression = str(compression).lower()
        if compression not in HDF5_COMPRESSIONS:
            raise UsageError(f"{compression!r} is not an HDF5 compression; choose one of "
                             f"{', '.join(HDF5_COMPRESSIONS)}", param="compression")
        self.compression = compression
        self.level = DEFAULT_LEVELS.get(compression) if level is None else int(level)
        row_nbytes = self.row_items * self.dtype.itemsize
        if chunk_rows is None:
            chunk_rows = segment_rows_for(row_nbytes)
        if int(chunk_rows) < 1:
            raise UsageError(f"must be positive, got {chunk_rows}", param="chunk_rows")
        self.segment_rows = min(int(chunk_rows), self.shape[0])
        filters = _hdf5_filter(compression, self.level)
        self._direct = compression != "lzf"
        self._file = h5py.File(self.path, "w")
        try:
            self._ds = self._file.create_dataset(
                dataset, shape=(self.shape[0], self.row_items), dtype=self.dtype,
                chunks=(self.segment_rows, self.row_items), **filters)
            if self.packed:
                self._ds.attrs[PACKED_ENCODING_ATTR] = PACKED_ENCODING
                self._ds.attrs[PACKED_WIDTH_ATTR] = np.int64(self.shape[1])
                self._ds.attrs[PACKED_BITORDER_ATTR] = "big"
            for key, value in (attrs or {}).items():
                self._ds.attrs[key] = value
        except BaseException:
            self._file.close()
            raise
        self._next = 0
        self._closed = False

    def encode(self, row_start: int, rows: np.ndarray):
        """The chunk's stored bytes (or the rows themselves for lzf); thread safe."""
        self._check_segment(row_start, rows)
        if not self._direct:
            return np.ascontiguousarray(rows)
        if rows.shape[0] < self.segment_rows:  # the last chunk is stored whole, zero padded
            full = np.zeros((self.segment_rows, self.row_items), dtype=self.dtype)
            full[:rows.shape[0]] = rows
            rows = full
        rows = np.ascontiguousarray(rows, dtype=self.dtype)
        c = self.compression
        if c == "gzip":
            return imagecodecs.deflate_encode(rows, level=self.level)
        if c == "zstd":
            return imagecodecs.zstd_encode(rows, level=self.level)
        if c == "lz4":
            return imagecodecs.lz4h5_encode(rows)
        return rows.tobytes()

    def append(self, row_start: int, nrows: int, data) -> None:
        if row_start != self._next:
            raise ValueError(f"chunk for row {row_start} written out of order (expected row "
                             f"{self._next})")
        if self._direct:
            self._ds.id.write_direct_chunk((row_start, 0), bytes(data), 0)
        else:
            self._ds[row_start:row_start + nrows] = data
        self._next = row_start + nrows

    def close(self) -> None:
        if self._closed:
            return
        try:
            if self._next != self.shape[0]:
                raise ValueError(f"{self._next} rows written, the image has {self.shape[0]}")
        finally:
            self._closed = True
            self._ds = None  # see abort()
            self._file.close()

    def abort(self) -> None:
        self._closed = True
        # The dataset goes first: once a write failed, HDF5 reports the failure again when the
        # last reference to an object goes, and a late one would print "Exception ignored".
        self._ds = None
        try:
            self._file.close()
        except Exception:  # pragma: no cover - closing after a failed write
            pass

    @property
    def nbytes(self) -> int:
        return os.path.getsize(self.path)


def _hdf5_filter(compression: str, level: int | None) -> dict:
    if compression == "gzip":
        return {"compression": "gzip", "compression_opts": level}
    if compression == "lzf":
        return {"compression": "lzf"}
    if compression in ("lz4", "zstd"):
        try:
            import hdf5plugin
        except ImportError:
            raise UsageError(f"{compression} needs the hdf5plugin package (pip install "
                             "hdf5plugin)", param="compression") from None
        return dict(hdf5plugin.LZ4() if compression == "lz4" else hdf5plugin.Zstd(clevel=level))
    return {}


# -- one-call helpers -------------------------------------------------------------------------------
def _write_atomic(make_writer, path, blocks, workers, progress, inputs=()) -> dict:
    with AtomicOutput(path, inputs) as out:
        writer = make_writer(out.tmp)
        try:
            writer.write_blocks(blocks, workers=workers, progress=progress)
        except BaseException:
            writer.abort()
            raise
        writer.close()
        info = {"path": out.path, "segment_rows": writer.segment_rows,
                "segments": writer.n_segments, "compression": writer.compression}
    info["bytes"] = os.path.getsize(out.path)
    return info


def write_tiff(path, blocks: Iterable[np.ndarray], shape, *, bits: int = 1,
               photometric: str = "minisblack", compression: str = "deflate",
               level: int | None = None, rows_per_strip: int | None = None,
               bigtiff: bool | None = None, workers: int | None = None,
               progress: Callable[[int, int], None] | None = None, inputs=()) -> dict:
    """Write a TIFF from an iterator of row blocks, atomically (see :class:`TiffRowWriter`).

    Parameters
    ----------
    blocks : iterable of ndarray, shape (rows, row_items)
        Consecutive row blocks of any height that together hold exactly ``shape[0]`` rows:
        packed bits (uint8) when ``bits == 1``, uint8 / uint16 planes otherwise.
    inputs : iterable of path, optional
        Files the caller reads: the output may not be one of them (compared by inode).

    Returns
    -------
    dict
        ``path``, ``bytes`` on disk, ``segment_rows``, ``segments``, ``compression``.
    """
    def make(tmp):
        return TiffRowWriter(tmp, shape, bits=bits, photometric=photometric,
                             compression=compression, level=level,
                             rows_per_strip=rows_per_strip, bigtiff=bigtiff)

    return _write_atomic(make, path, blocks, workers, progress, inputs)


def write_hdf5(path, blocks: Iterable[np.ndarray], shape, *, packed: bool = True, dtype=np.uint8,
               dataset: str = "mask", compression: str = "gzip", level: int | None = None,
               chunk_rows: int | None = None, attrs: dict | None = None,
               workers: int | None = None,
               progress: Callable[[int, int], None] | None = None, inputs=()) -> dict:
    """Write an HDF5 dataset from an iterator of row blocks, atomically (see :class:`Hdf5RowWriter`).

    Returns
    -------
    dict
        ``path``, ``bytes`` on disk, ``segment_rows``, ``segments``, ``compression``.
    """
    def make(tmp):
        return Hdf5RowWriter(tmp, shape, packed=packed, dtype=dtype, dataset=dataset,
                             compression=compression, level=level, chunk_rows=chunk_rows,
                             attrs=attrs)

    return _write_atomic(make, path, blocks, workers, progress, inputs)
