"""The codec table: every compression dragon-gpu reads or writes, in one place.

Each :class:`Codec` row says where a codec appears (TIFF Compression tag, HDF5 filter id, Zarr
codec), how the CPU decodes and encodes it, its default level, how far its stored bytes can
expand (the readers' bound against decompression bombs) and which GPU decoder inflates it.
Readers, writers, ``dragon-gpu info`` and the GPU-decode planner look codecs up here; adding a
compression means adding a row (and, for writing, its encoder).

The rows are in the order messages and help texts list them: TIFF's readable codecs ("none,
deflate, LZW, PackBits, zstd, LZMA"), and the written ones of each format with ``none`` last
(TIFF: deflate, lzw, packbits, zstd; HDF5: gzip, lzf, lz4, zstd; Zarr: zstd, gzip, blosc).

One stream format can have two names: TIFF's deflate (tags 8 and 32946) and HDF5's ``gzip``
filter are both zlib streams (one row, ``deflate``). Zarr's ``gzip`` and ``zlib`` codecs are rows
of their own, read with their own libraries as before.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import imagecodecs
import numpy as np

from ..errors import UsageError

__all__ = ["Codec", "CODECS", "HDF5_SHUFFLE", "HDF5_WRITABLE", "TIFF_WRITABLE", "ZARR_WRITABLE",
           "by_name",
           "hdf5_codec", "hdf5_create_options", "hdf5_decodable", "hdf5_filter_name", "tiff_codec",
           "zarr_decoders", "zarr_v3_names"]


@dataclass(frozen=True)
class Codec:
    """One compression and everything the project knows about it."""

    #: name in messages, ``info`` and the GPU planner; TIFF's ``--compression`` name.
    name: str
    #: the name in a sentence ("LZW"), as the readers' messages write it.
    label: str
    #: TIFF Compression tag values read as this codec; the first is the one written.
    tiff_tags: tuple[int, ...] = ()
    #: HDF5 filter id (None: not an HDF5 filter; ``none`` is no filter at all).
    hdf5_filter: int | None = None
    #: name of the HDF5 filter and of HDF5's ``--compression`` (``gzip`` for deflate).
    hdf5_name: str | None = None
    #: Zarr v2 codec id read by the plain-chunk path (``_zarr_chunks``).
    zarr_id: str | None = None
    #: zarr-python v3 codec class of the same codec.
    zarr_v3: str | None = None
    #: ``decode(data, out=buffer)``, bounded by the buffer; None for data stored raw.
    decode: Callable | None = None
    #: ``encode(rows, level) -> bytes`` of one TIFF strip / HDF5 chunk; None: not written by us.
    encode: Callable | None = None
    #: written by TIFF (``--compression`` of a TIFF output).
    tiff_write: bool = False
    #: written by HDF5; lzf has no encoder here and goes through h5py's filter pipeline.
    hdf5_write: bool = False
    #: written by the Zarr writer (through zarr-python's codec ``zarr_v3``).
    zarr_write: bool = False
    #: level used when none is given.
    level: int | None = None
    #: decoded bytes a stored byte can become at most (None: no known bound).
    max_expansion: int | None = None
    #: nvCOMP algorithm that inflates it on the GPU (``detect --decode``), or None.
    nvcomp: str | None = None
    #: DALI ``fn.decoders.inflate`` algorithm (``--gpu-decoder dali``), or None.
    dali: str | None = None

    @property
    def gpu(self) -> bool:
        """True when a GPU decoder inflates this codec."""
        return self.nvcomp is not None or self.dali is not None


def _raw(rows: np.ndarray, level) -> bytes:
    return rows.tobytes()


def _deflate(rows: np.ndarray, level) -> bytes:
    return imagecodecs.deflate_encode(rows, level=level)


def _zstd(rows: np.ndarray, level) -> bytes:
    return imagecodecs.zstd_encode(rows, level=level)


def _lzw(rows: np.ndarray, level) -> bytes:
    return imagecodecs.lzw_encode(rows)


def _packbits(rows: np.ndarray, level) -> bytes:
    # TIFF PackBits never runs across rows: each row is packed on its own.
    return imagecodecs.packbits_encode(rows.view(np.uint8), axis=-1)


def _lz4h5(rows: np.ndarray, level) -> bytes:
    return imagecodecs.lz4h5_encode(rows)


# Bounds of max_expansion: deflate, a 258-byte match in 2 bits; LZW, at most 4096 bytes a 9-bit
# code; PackBits, 128 bytes from 2; zstd, a 128 KiB block from a 4-byte RLE block (doubled for
# margin). Default levels: libdeflate 6 and zstd 3 are the usual speed/size balance of each
# codec; Zarr's gzip keeps zarr's own 5, Zarr's Blosc is zstd 3 inside. libdeflate reads the zlib streams of TIFF deflate and
# HDF5 gzip (RESULTS.md).
CODECS: tuple[Codec, ...] = (
    Codec("none", "none", tiff_tags=(1,), zarr_id="none", encode=_raw, tiff_write=True,
          hdf5_write=True, zarr_write=True, max_expansion=1),
    Codec("deflate", "deflate", tiff_tags=(8, 32946), hdf5_filter=1, hdf5_name="gzip",
          decode=imagecodecs.deflate_decode, encode=_deflate, tiff_write=True, hdf5_write=True,
          level=6, max_expansion=1032, nvcomp="Deflate"),
    Codec("lzw", "LZW", tiff_tags=(5,), decode=imagecodecs.lzw_decode, encode=_lzw,
          tiff_write=True, max_expansion=4096),
    Codec("packbits", "PackBits", tiff_tags=(32773,), decode=imagecodecs.packbits_decode,
          encode=_packbits, tiff_write=True, max_expansion=64),
    Codec("lzf", "LZF", hdf5_filter=32000, hdf5_name="lzf", decode=imagecodecs.lzf_decode,
          hdf5_write=True),
    Codec("lz4", "LZ4", hdf5_filter=32004, hdf5_name="lz4", decode=imagecodecs.lz4h5_decode,
          encode=_lz4h5, hdf5_write=True, nvcomp="LZ4", dali="LZ4"),
    Codec("zstd", "zstd", tiff_tags=(50000,), hdf5_filter=32015, hdf5_name="zstd",
          zarr_id="zstd", zarr_v3="ZstdCodec", decode=imagecodecs.zstd_decode, encode=_zstd,
          tiff_write=True, hdf5_write=True, zarr_write=True, level=3, max_expansion=65536,
          nvcomp="Zstd"),
    Codec("lzma", "LZMA", tiff_tags=(34925,), decode=imagecodecs.lzma_decode),
    Codec("gzip", "gzip", zarr_id="gzip", zarr_v3="GzipCodec", decode=imagecodecs.gzip_decode,
          zarr_write=True, level=5),
    Codec("zlib", "zlib", zarr_id="zlib", decode=imagecodecs.zlib_decode),
    Codec("blosc", "Blosc", hdf5_filter=32001, hdf5_name="blosc", zarr_id="blosc",
          zarr_v3="BloscCodec", decode=imagecodecs.blosc_decode, zarr_write=True, level=3),
)

#: HDF5's byte shuffle: a filter, not a codec, undone by the readers (and the GPU) as well.
HDF5_SHUFFLE = 2
#: Other HDF5 filters, named by ``info`` but read only through HDF5 itself.
_HDF5_OTHER_FILTERS = {HDF5_SHUFFLE: "shuffle", 3: "fletcher32", 4: "szip", 32008: "bitshuffle"}

_BY_NAME = {c.name: c for c in CODECS}
_BY_TIFF_TAG = {tag: c for c in CODECS for tag in c.tiff_tags}
_BY_HDF5_FILTER = {c.hdf5_filter: c for c in CODECS if c.hdf5_filter is not None}


def by_name(name: str) -> Codec:
    """The row named ``name`` (``"deflate"``, ``"lz4"``...); KeyError if there is none."""
    return _BY_NAME[name]


def tiff_codec(tag: int) -> Codec | None:
    """The codec of TIFF Compression tag value ``tag``, or None when it is not read here."""
    return _BY_TIFF_TAG.get(tag)


def hdf5_codec(filter_id: int) -> Codec | None:
    """The codec of HDF5 filter ``filter_id``, or None (shuffle and unknown filters)."""
    return _BY_HDF5_FILTER.get(filter_id)


def hdf5_decodable() -> frozenset[int]:
    """HDF5 filter ids the readers undo themselves (byte range + imagecodecs)."""
    return frozenset([HDF5_SHUFFLE] + [f for f, c in _BY_HDF5_FILTER.items() if c.decode])


def hdf5_filter_name(filter_id: int) -> str | None:
    """The usual name of an HDF5 filter, or None when it is not known here."""
    codec = _BY_HDF5_FILTER.get(filter_id)
    return codec.hdf5_name if codec is not None else _HDF5_OTHER_FILTERS.get(filter_id)


def _none_last(rows) -> list[Codec]:
    return sorted(rows, key=lambda c: c.name == "none")  # stable: table order, none last


#: TIFF ``--compression`` name -> codec, in the order messages list them.
TIFF_WRITABLE = {c.name: c for c in _none_last(c for c in CODECS if c.tiff_write)}
#: HDF5 ``--compression`` name -> codec (``gzip`` is deflate), in the order messages list them.
HDF5_WRITABLE = {c.hdf5_name or c.name: c for c in _none_last(c for c in CODECS if c.hdf5_write)}
#: Zarr ``--compression`` name -> codec, in the order messages list them.
ZARR_WRITABLE = {c.zarr_id: c for c in _none_last(c for c in CODECS if c.zarr_write)}


def zarr_decoders() -> dict[str, Callable | None]:
    """Zarr codec id -> bounded decoder of the plain-chunk path (None: stored raw)."""
    return {c.zarr_id: c.decode for c in CODECS if c.zarr_id is not None}


def zarr_v3_names() -> dict[str, str]:
    """zarr-python v3 codec class name -> Zarr codec id."""
    return {c.zarr_v3: c.zarr_id for c in CODECS if c.zarr_v3 is not None}


def hdf5_create_options(codec: Codec, level: int | None) -> dict:
    """Keyword arguments of ``h5py.Group.create_dataset`` that apply ``codec`` at ``level``.

    Raises
    ------
    UsageError
        For lz4 and zstd where the ``hdf5plugin`` package (their HDF5 filters) is missing.
    """
    if codec.name == "deflate":
        return {"compression": "gzip", "compression_opts": level}
    if codec.name == "lzf":
        return {"compression": "lzf"}
    if codec.name in ("lz4", "zstd"):
        try:
            import hdf5plugin
        except ImportError:
            raise UsageError(f"{codec.hdf5_name} needs the hdf5plugin package (pip install "
                             "hdf5plugin)", param="compression") from None
        return dict(hdf5plugin.LZ4() if codec.name == "lz4" else hdf5plugin.Zstd(clevel=level))
    return {}
