"""The project's own decode path for the common Zarr layout: plain chunks in a local folder.

For an unsharded array in a folder whose chunks are stored raw or as one zstd, gzip, zlib or blosc
stream of native-order values (what zarr writes by default, v2 and v3), a chunk is a file: it is
read with ``os.pread`` and decoded by imagecodecs into this thread's reused buffer of exactly the
chunk's size, on the shared decode pool (:mod:`._segments`), as TIFF strips and HDF5 chunks are.
That bounds every decode by construction (a stream that inflates past its chunk fails) and skips
zarr's per-chunk machinery, which costs more than the decoding on fast codecs (RESULTS.md).
Any other layout (shards, transposes, checksums, byte swaps, other codecs, zip and HTTP stores)
goes through zarr-python.
"""

from __future__ import annotations

import os

import numpy as np

from ..errors import CorruptInputError
from ._decode import pread_exact
from .codecs import zarr_decoders, zarr_v3_names

#: codec name -> bounded decoder (``out=`` of the chunk's size); None: stored raw.
DECODERS = zarr_decoders()
#: zarr-python v3 codec class -> codec name, for the codecs above.
_V3_NAMES = zarr_v3_names()
#: ``DRAGON_GPU_ZARR_DECODE=zarr`` forces zarr-python's path (to compare the two).
ENV = "DRAGON_GPU_ZARR_DECODE"


def plain_codec(meta, dtype: np.dtype) -> str | None:
    """The one codec of a plain-chunk array (``"none"``, ``"zstd"``...), or None if not plain."""
    if os.environ.get(ENV) == "zarr":
        return None
    native = dtype.itemsize == 1 or dtype.byteorder in ("=", "|") or (
        dtype.byteorder == "<" and np.little_endian)
    if meta.zarr_format == 2:
        if meta.filters or meta.order != "C" or not native:
            return None
        comp = meta.compressor
        name = "none" if comp is None else getattr(comp, "codec_id", None)
        return name if name in DECODERS else None
    names = [type(c).__name__ for c in meta.codecs]
    if not names or names[0] != "BytesCodec":
        return None
    endian = getattr(meta.codecs[0], "endian", None)
    endian = getattr(endian, "value", endian)
    if dtype.itemsize > 1 and endian not in (None, "little" if np.little_endian else "big"):
        return None
    rest = names[1:]
    if not rest:
        return "none"
    if len(rest) == 1:
        return _V3_NAMES.get(rest[0])
    return None


class ChunkFiles:
    """Reads and decodes the chunk files of one array folder (see the module docstring)."""

    def __init__(self, reader, array_dir: str, codec: str):
        self.reader = reader
        self.dir = array_dir
        self.decoder = DECODERS[codec]
        self.meta = reader._array.metadata
        self.inner = reader._inner
        self.itemsize = reader._stored_dtype.itemsize
        self.nbytes = int(np.prod(self.inner)) * self.itemsize
        lead = reader.plane
        self.lead_coords = tuple(i // c for i, c in zip(lead, self.inner[:-2]))
        self.lead_offset = tuple(i % c for i, c in zip(lead, self.inner[:-2]))
        self.view_dtype = (np.dtype(np.uint8) if reader._stored_dtype == np.bool_
                           else reader.dtype)

    def decode(self, seg, scratch) -> np.ndarray:
        """Pixels of the chunk holding segment ``seg``: shape (chunk rows, chunk cols)."""
        r = self.reader
        coords = self.lead_coords + (seg.row0 // seg.rows, seg.col0 // seg.cols)
        key = self.meta.encode_chunk_key(coords)
        path = os.path.join(self.dir, *key.split("/"))
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        except FileNotFoundError:
            return self._fill(key, scratch)
        except OSError as exc:
            if os.path.islink(path):
                from ..errors import UnsafeInputError

                raise UnsafeInputError(f"{key!r} is reached through a symbolic link; refused",
                                       r.path) from None
            raise CorruptInputError(f"chunk {key!r} cannot be read ({exc.strerror})",
                                    r.path) from None
        try:
            size = os.fstat(fd).st_size
            if size > 2 * self.nbytes + 4096:
                raise CorruptInputError(f"chunk {key!r} stores {size} bytes for {self.nbytes} "
                                        "decoded bytes, more than any encoder writes", r.path)
            raw = pread_exact(fd, 0, size, scratch(size, "raw"))
        finally:
            os.close(fd)
        try:
            if self.decoder is None:
                data = raw
            else:
                data = self.decoder(raw, out=scratch(self.nbytes, "dec"))
                data = np.frombuffer(data, np.uint8) if not isinstance(data, np.ndarray) else data
        except Exception as exc:
            raise CorruptInputError(f"chunk {key!r} cannot be read: it does not decode to its "
                                    f"{self.nbytes} bytes (damaged, or a decompression bomb; "
                                    f"{type(exc).__name__}: {exc})", r.path) from None
        if data.nbytes != self.nbytes:
            raise CorruptInputError(f"chunk {key!r} cannot be read (it holds {data.nbytes} bytes "
                                    f"where its pixels need {self.nbytes})", r.path)
        chunk = data.view(self.view_dtype).reshape(self.inner)
        return chunk[self.lead_offset] if self.lead_offset else chunk

    def _fill(self, key: str, scratch) -> np.ndarray:
        r = self.reader
        if r.strict:
            raise CorruptInputError(f"chunk {key!r} is absent (--strict refuses chunks read as "
                                    "the fill value)", r.path)
        with r._stats.lock:
            r._stats.missing.add(key)
        rows, cols = self.inner[-2:]
        out = scratch(rows * cols * self.view_dtype.itemsize, "fill").view(self.view_dtype)
        out[...] = r._fill_value()
        return out.reshape(rows, cols)
