"""Small test images in every encoding, and the NumPy oracle of what they mean.

Each writer takes a path and the *logical* content of an image (a ``uint8``/``uint16`` array of
stored values, or a ``bool`` array of stored bits) and returns a :class:`Written` that records what
a reader must deliver and which pixels the SPEC's default rules make body or dye. The expectations
here are computed with plain NumPy from the source arrays, never with the code under test.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import h5py
import numpy as np
import tifffile

# The attributes of a packed-bit HDF5 mask, as documented in dragon_gpu/io/hdf5.py (spelled out
# here so that a change of the documented format breaks the tests).
PACKED_ATTRS = {"dragon_gpu_encoding": "packed-bits", "bitorder": "big"}


@dataclass
class Written:
    """A test image on disk and what it holds.

    ``source`` is the stored content: gray values, or the stored bits of a 1-bit image / mask
    (after undoing any fill order, i.e. the logical bits). ``rows_per_unit`` is the height of the
    file's strips, tiles or chunks (1 for contiguous HDF5).
    """

    path: Path
    source: np.ndarray
    kind: str                      # "gray", "bilevel" or "mask"
    packed: bool                   # rows delivered bit-packed
    bits: int
    rows_per_unit: int
    photometric: str = "minisblack"
    open_kwargs: dict = field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.source.shape)

    def brightness(self) -> np.ndarray:
        """What a viewer shows, as integers (larger is brighter); masks: set is 1."""
        src = self.source.astype(np.int64)
        if self.kind == "gray":
            maxval = (1 << self.bits) - 1
            return maxval - src if self.photometric == "miniswhite" else src
        if self.kind == "bilevel":
            return 1 - src if self.photometric == "miniswhite" else src
        return src

    def members(self, role: str, polarity: str | None = None, threshold: int | None = None):
        """Boolean members under the SPEC's rules (independent of dragon_gpu.io.resolve_rule)."""
        pol = polarity or ("dark" if role == "body" else "bright")
        if self.kind == "mask" and polarity is None:
            return self.source.astype(bool)
        if self.kind == "gray":
            thr = (1 << (self.bits - 1)) if threshold is None else threshold
        else:
            thr = 1  # 1-bit images and masks: 0 is dark, 1 is bright
        bright = self.brightness() >= thr
        return bright if pol == "bright" else ~bright


# -- TIFF ------------------------------------------------------------------------------------------
#: Each byte with its bits in reverse order (FillOrder=2 stores bytes this way).
REVERSED_BYTES = np.array([int(f"{i:08b}"[::-1], 2) for i in range(256)], dtype=np.uint8)

#: The placeholder tag tifffile writes in place of FillOrder (266), which it refuses to write;
#: pass it in ``extratags`` and then call :func:`make_fillorder2`.
FILLORDER_PLACEHOLDER = (267, "H", 1, 2, True)


def make_fillorder2(path) -> None:
    """Turn a TIFF written by tifffile with :data:`FILLORDER_PLACEHOLDER` into a FillOrder=2
    file: rename the tag to 266 and bit-reverse every stored strip or tile byte."""
    raw = bytearray(Path(path).read_bytes())
    i = raw.find(struct.pack("<HHI", 267, 3, 1))
    assert i > 0
    raw[i:i + 2] = struct.pack("<H", 266)
    with tifffile.TiffFile(path) as tif:
        spans = list(zip(tif.pages[0].dataoffsets, tif.pages[0].databytecounts))
    for offset, count in spans:
        raw[offset:offset + count] = REVERSED_BYTES[
            np.frombuffer(bytes(raw[offset:offset + count]), np.uint8)].tobytes()
    Path(path).write_bytes(raw)


def write_tiff(path, data: np.ndarray, *, photometric="minisblack", compression=None,
               predictor=None, rowsperstrip=None, tile=None, bigtiff=False,
               byteorder="<") -> Written:
    """A TIFF written by tifffile: gray (uint8/uint16) or 1-bit (bool: a True is a set bit)."""
    path = Path(path)
    kwargs = {}
    if tile is not None:
        kwargs["tile"] = tile
    elif rowsperstrip is not None:
        kwargs["rowsperstrip"] = rowsperstrip
    if predictor:
        kwargs["predictor"] = predictor
    tifffile.imwrite(path, data, photometric=photometric, compression=compression,
                     bigtiff=bigtiff, byteorder=byteorder, **kwargs)
    with tifffile.TiffFile(path) as tif:
        page = tif.pages[0]
        unit = page.tilelength if page.is_tiled else min(page.rowsperstrip, data.shape[0])
    if data.dtype == np.bool_:
        return Written(path, data.copy(), "bilevel", True, 1, unit, photometric)
    return Written(path, data.copy(), "gray", False, data.dtype.itemsize * 8, unit, photometric)


def write_tiff_fillorder2(path, bits: np.ndarray, *, photometric="minisblack",
                          rowsperstrip=5) -> Written:
    """An uncompressed 1-bit TIFF with FillOrder = 2 (LSB2MSB), built by hand.

    tifffile refuses to write tag 266, so the file is assembled here: the rows are packed most
    significant bit first, then every byte is bit-reversed, as a fill order of 2 stores them.
    """
    path = Path(path)
    height, width = bits.shape
    packed = np.packbits(bits.astype(np.uint8), axis=1, bitorder="little")  # = reversed MSB-first
    strips = [packed[r:r + rowsperstrip].tobytes() for r in range(0, height, rowsperstrip)]
    _write_classic_tiff(path, strips, width=width, height=height, bits=1,
                        photometric=0 if photometric == "miniswhite" else 1, fillorder=2,
                        rowsperstrip=rowsperstrip)
    return Written(path, bits.copy(), "bilevel", True, 1, min(rowsperstrip, height), photometric)


def _write_classic_tiff(path, strips: list[bytes], *, width, height, bits, photometric, fillorder,
                        rowsperstrip, compression=1):
    """A little-endian classic TIFF with one uncompressed strip-organised page."""
    n = len(strips)
    tags = [  # (tag, type, values); 3 = SHORT, 4 = LONG
        (256, 4, [width]), (257, 4, [height]), (258, 3, [bits]), (259, 3, [compression]),
        (262, 3, [photometric]), (266, 3, [fillorder]), (273, 4, None), (277, 3, [1]),
        (278, 4, [rowsperstrip]), (279, 4, [len(s) for s in strips]),
    ]
    ifd_size = 2 + 12 * len(tags) + 4
    extra_at = 8 + ifd_size
    arrays = {}
    # Arrays of more than one LONG live after the IFD; the strip data follows them.
    offsets_array_at = extra_at
    counts_array_at = offsets_array_at + (4 * n if n > 1 else 0)
    data_at = counts_array_at + (4 * n if n > 1 else 0)
    strip_offsets, pos = [], data_at
    for s in strips:
        strip_offsets.append(pos)
        pos += len(s)
    arrays[273] = strip_offsets
    out = bytearray(b"II" + struct.pack("<HI", 42, 8))
    out += struct.pack("<H", len(tags))
    for tag, typ, values in tags:
        values = arrays.get(tag, values)
        if len(values) == 1:
            field_ = struct.pack("<H2x", values[0]) if typ == 3 else struct.pack("<I", values[0])
        else:
            field_ = struct.pack("<I", offsets_array_at if tag == 273 else counts_array_at)
        out += struct.pack("<HHI", tag, typ, len(values)) + field_
    out += struct.pack("<I", 0)
    if n > 1:
        out += struct.pack(f"<{n}I", *strip_offsets)
        out += struct.pack(f"<{n}I", *[len(s) for s in strips])
    assert len(out) == data_at
    for s in strips:
        out += s
    Path(path).write_bytes(bytes(out))


# -- HDF5 ------------------------------------------------------------------------------------------
def write_h5(path, data: np.ndarray, *, dataset="image", chunks=None, compression=None,
             shuffle=False, extra_datasets: dict | None = None) -> Written:
    """A plain HDF5 dataset: uint8/uint16 gray values, or bool (a mask)."""
    path = Path(path)
    kwargs = {}
    if compression is not None:
        kwargs["compression"] = compression
    chunks = _fit(chunks, data.shape)
    with h5py.File(path, "w") as f:
        ds = f.create_dataset(dataset, data=data, chunks=chunks, shuffle=shuffle, **kwargs)
        unit = ds.chunks[0] if ds.chunks else 1
        for name, value in (extra_datasets or {}).items():
            f.create_dataset(name, data=value)
    kw = {"dataset": dataset} if extra_datasets else {}
    if data.dtype == np.bool_:
        return Written(path, data.copy(), "mask", False, 1, unit, open_kwargs=kw)
    return Written(path, data.copy(), "gray", False, data.dtype.itemsize * 8, unit,
                   open_kwargs=kw)


def write_h5_packed(path, bits: np.ndarray, *, dataset="mask", chunks=None, compression=None,
                    garbage_padding=True, rng=None) -> Written:
    """A packed-bit HDF5 mask (uint8 rows, most significant bit first, ``width`` attribute).

    With ``garbage_padding`` the bits past the width in each row's last byte are random: they
    are undefined by the format and must never count.
    """
    path = Path(path)
    packed = pack_rows(bits, garbage_padding=garbage_padding, rng=rng)
    chunks = _fit(chunks, packed.shape)
    with h5py.File(path, "w") as f:
        ds = f.create_dataset(dataset, data=packed, chunks=chunks, compression=compression)
        for key, value in PACKED_ATTRS.items():
            ds.attrs[key] = value
        ds.attrs["width"] = bits.shape[1]
        unit = ds.chunks[0] if ds.chunks else 1
    return Written(path, bits.copy(), "mask", True, 1, unit)


def _fit(chunks, shape):
    """Chunks no larger than the dataset (h5py refuses larger ones)."""
    return None if chunks is None else tuple(min(c, n) for c, n in zip(chunks, shape))


def pack_rows(bits: np.ndarray, *, garbage_padding=False, rng=None) -> np.ndarray:
    """Rows packed most significant bit first; optionally random bits in the row padding."""
    packed = np.packbits(bits.astype(np.uint8), axis=1)
    pad = (-bits.shape[1]) % 8
    if garbage_padding and pad:
        rng = rng or np.random.default_rng(1)
        junk = rng.integers(0, 256, size=packed.shape[0], dtype=np.uint8) & ((1 << pad) - 1)
        packed[:, -1] |= junk.astype(np.uint8)
    return packed


def unpack_rows(rows: np.ndarray, width: int) -> np.ndarray:
    """Inverse of :func:`pack_rows` (padding dropped)."""
    return np.unpackbits(rows, axis=1, count=width).astype(bool)


# -- random content --------------------------------------------------------------------------------
def random_gray(rng, shape, dtype=np.uint8) -> np.ndarray:
    dtype = np.dtype(dtype)
    native = dtype.newbyteorder("=")
    values = rng.integers(0, int(np.iinfo(dtype).max) + 1, size=shape, dtype=native)
    return values.astype(dtype)


def random_bits(rng, shape, p=0.5) -> np.ndarray:
    return rng.random(shape) < p


#: Writers of one image each: name -> (writer(path, rng, shape) -> Written). They cover every
#: encoding the SPEC lists; the reader conformance suite and the pipeline tests iterate over them.
Writer = Callable[[Path, np.random.Generator, tuple[int, int]], Written]


def _w(fn, **kw) -> Writer:
    return lambda path, rng, shape: fn(path, rng, shape, **kw)


def _tiff_gray(path, rng, shape, dtype=np.uint8, **kw):
    return write_tiff(Path(path).with_suffix(".tif"), random_gray(rng, shape, dtype), **kw)


def _tiff_bits(path, rng, shape, **kw):
    return write_tiff(Path(path).with_suffix(".tif"), random_bits(rng, shape), **kw)


def _tiff_fill2(path, rng, shape, **kw):
    return write_tiff_fillorder2(Path(path).with_suffix(".tif"), random_bits(rng, shape), **kw)


def _h5_gray(path, rng, shape, dtype=np.uint8, **kw):
    return write_h5(Path(path).with_suffix(".h5"), random_gray(rng, shape, dtype), **kw)


def _h5_bool(path, rng, shape, **kw):
    return write_h5(Path(path).with_suffix(".h5"), random_bits(rng, shape), **kw)


def _h5_packed(path, rng, shape, **kw):
    return write_h5_packed(Path(path).with_suffix(".h5"), random_bits(rng, shape), rng=rng, **kw)


TIFF_WRITERS: dict[str, Writer] = {
    "tiff-u8-raw-strips": _w(_tiff_gray, rowsperstrip=4),
    "tiff-u8-deflate-pred": _w(_tiff_gray, compression="zlib", predictor=True, rowsperstrip=5),
    "tiff-u8-lzw": _w(_tiff_gray, compression="lzw", rowsperstrip=3),
    "tiff-u8-packbits-1strip": _w(_tiff_gray, compression="packbits"),
    "tiff-u8-zstd-tiles": _w(_tiff_gray, compression="zstd", tile=(16, 32)),
    "tiff-u8-miniswhite": _w(_tiff_gray, photometric="miniswhite", rowsperstrip=6),
    "tiff-u16-deflate": _w(_tiff_gray, dtype=np.uint16, compression="zlib", rowsperstrip=7),
    "tiff-u16-pred-bigendian": _w(_tiff_gray, dtype=np.uint16, compression="lzw", predictor=True,
                                  rowsperstrip=4, byteorder=">"),
    "tiff-u16-tiles-bigtiff": _w(_tiff_gray, dtype=np.uint16, tile=(16, 16), bigtiff=True),
    "tiff-1bit-miniswhite-raw": _w(_tiff_bits, photometric="miniswhite", rowsperstrip=6),
    "tiff-1bit-minisblack-deflate": _w(_tiff_bits, photometric="minisblack", compression="zlib",
                                       rowsperstrip=5),
    "tiff-1bit-miniswhite-lzw": _w(_tiff_bits, photometric="miniswhite", compression="lzw",
                                   rowsperstrip=8),
    "tiff-1bit-minisblack-packbits": _w(_tiff_bits, photometric="minisblack",
                                        compression="packbits", rowsperstrip=3),
    "tiff-1bit-miniswhite-zstd-tiles": _w(_tiff_bits, photometric="miniswhite",
                                          compression="zstd", tile=(16, 32)),
    "tiff-1bit-fillorder2-minisblack": _w(_tiff_fill2, photometric="minisblack", rowsperstrip=5),
    "tiff-1bit-fillorder2-miniswhite": _w(_tiff_fill2, photometric="miniswhite", rowsperstrip=4),
}

HDF5_WRITERS: dict[str, Writer] = {
    "h5-bool-contiguous": _w(_h5_bool),
    "h5-bool-gzip": _w(_h5_bool, chunks=(6, 40), compression="gzip"),
    "h5-u8-contiguous": _w(_h5_gray),
    "h5-u8-gzip-shuffle": _w(_h5_gray, chunks=(5, 64), compression="gzip", shuffle=True),
    "h5-u8-lzf": _w(_h5_gray, chunks=(9, 17), compression="lzf"),
    "h5-u16-gzip": _w(_h5_gray, dtype=np.uint16, chunks=(4, 50), compression="gzip"),
    "h5-u16-shuffle-lzf": _w(_h5_gray, dtype=np.uint16, chunks=(7, 300), compression="lzf",
                             shuffle=True),
    "h5-u16-bigendian": _w(_h5_gray, dtype=np.dtype(">u2"), chunks=(8, 8)),
    "h5-packed-contiguous": _w(_h5_packed),
    "h5-packed-gzip": _w(_h5_packed, chunks=(3, 4), compression="gzip"),
}

ALL_WRITERS: dict[str, Writer] = {**TIFF_WRITERS, **HDF5_WRITERS}
