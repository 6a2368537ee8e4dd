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

The TIFF writer is :mod:`.tiff_writer` (with why it is not tifffile's), the shared segment
machinery :mod:`._segment_writer`; this module holds the HDF5 writer and the one-call helpers.
"""

from __future__ import annotations

import os
from typing import Iterable

import numpy as np

from ..errors import UsageError
from ..model import RowProgress
# The generator imports these from here.
from ._decode import decode_workers as default_workers
from ._decode import ordered_map
from ._output import AtomicOutput
from ._segment_writer import SEGMENT_NBYTES, _check_shape, _SegmentWriter, segment_rows_for
from .codecs import HDF5_WRITABLE, TIFF_WRITABLE, hdf5_create_options
from .hdf5 import PACKED_BITORDER_ATTR, PACKED_ENCODING, PACKED_ENCODING_ATTR, PACKED_WIDTH_ATTR
from .tiff_writer import CLASSIC_TIFF_LIMIT, TiffRowWriter

__all__ = ["AtomicOutput", "CLASSIC_TIFF_LIMIT", "Hdf5RowWriter", "SEGMENT_NBYTES",
           "TiffRowWriter", "TIFF_COMPRESSIONS", "HDF5_COMPRESSIONS", "default_workers",
           "segment_rows_for", "write_hdf5", "write_tiff", "ordered_map"]

#: TIFF compression name -> tag value (from the codec table, :mod:`.codecs`).
TIFF_COMPRESSIONS = {name: c.tiff_tags[0] for name, c in TIFF_WRITABLE.items()}
#: HDF5 compression names; lz4 and zstd need the ``hdf5plugin`` package.
HDF5_COMPRESSIONS = tuple(HDF5_WRITABLE)


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
        Rows and columns of the image, in pixels also when packed.
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
        self._set_codec(compression, level, HDF5_WRITABLE, "an HDF5")
        self._set_segment_rows(chunk_rows, "chunk_rows")
        filters = hdf5_create_options(self._codec, self.level)
        # Chunks whose HDF5 filter format imagecodecs writes are compressed on worker threads.
        self._direct = self._codec.encode is not None
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
        return self._codec.encode(rows, self.level)

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
               progress: RowProgress | None = None, inputs=()) -> dict:
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
               progress: RowProgress | None = None, inputs=()) -> dict:
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
