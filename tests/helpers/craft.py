"""Hand-made hostile inputs for the safety tests and the reader fuzzers.

:func:`tiff` writes a classic little-endian TIFF tag by tag, so a test can state exactly which
lie a header tells (a size its data cannot hold, offsets past the end, a loop of IFDs), which a
normal writer refuses to produce. :func:`valid_tiffs` and :func:`valid_hdf5` make the small,
correct files the fuzzers mutate.
"""

from __future__ import annotations

import io
import struct

import numpy as np

BYTE, ASCII, SHORT, LONG = 1, 2, 3, 4
_FORMATS = {BYTE: "B", ASCII: "B", SHORT: "H", LONG: "I"}

TAG_WIDTH, TAG_LENGTH, TAG_BITS, TAG_COMPRESSION, TAG_PHOTOMETRIC = 256, 257, 258, 259, 262
TAG_STRIP_OFFSETS, TAG_SAMPLES, TAG_ROWS_PER_STRIP, TAG_STRIP_COUNTS = 273, 277, 278, 279
TAG_TILE_WIDTH, TAG_TILE_LENGTH, TAG_TILE_OFFSETS, TAG_TILE_COUNTS = 322, 323, 324, 325
TAG_SAMPLE_FORMAT = 339


def tiff(width: int, height: int, segments: list[bytes], *, bits: int = 8, compression: int = 1,
         rows_per_strip: int | None = None, tile: tuple[int, int] | None = None,
         photometric: int = 1, samples: int = 1, sample_format: int | None = None,
         offsets: list[int] | None = None, counts: list[int] | None = None,
         next_ifd: int | str = 0, extra: list[tuple[int, int, list[int]]] = ()) -> bytes:
    """A one-page classic TIFF whose tags say exactly what the arguments say.

    Parameters
    ----------
    width, height : int
        ImageWidth and ImageLength, whatever the data holds.
    segments : list of bytes
        Strip or tile data, written after the header in order.
    offsets, counts : list of int, optional
        StripOffsets / StripByteCounts (or tile ones) overriding the true ones.
    next_ifd : int or "self"
        Offset of the next IFD; ``"self"`` makes the IFD point to itself (a loop).
    extra : list of (tag, type, values)
        More tags.
    """
    out = io.BytesIO()
    out.write(b"II*\x00\x00\x00\x00\x00")
    true_offsets = []
    for seg in segments:
        true_offsets.append(out.tell())
        out.write(seg)
    if out.tell() % 2:
        out.write(b"\x00")
    offsets = true_offsets if offsets is None else offsets
    counts = [len(s) for s in segments] if counts is None else counts
    tags = [(TAG_WIDTH, LONG, [width]), (TAG_LENGTH, LONG, [height]),
            (TAG_BITS, SHORT, [bits] * samples), (TAG_COMPRESSION, SHORT, [compression]),
            (TAG_PHOTOMETRIC, SHORT, [photometric]), (TAG_SAMPLES, SHORT, [samples])]
    if tile is None:
        tags += [(TAG_STRIP_OFFSETS, LONG, offsets), (TAG_STRIP_COUNTS, LONG, counts),
                 (TAG_ROWS_PER_STRIP, LONG, [rows_per_strip or height])]
    else:
        tags += [(TAG_TILE_LENGTH, LONG, [tile[0]]), (TAG_TILE_WIDTH, LONG, [tile[1]]),
                 (TAG_TILE_OFFSETS, LONG, offsets), (TAG_TILE_COUNTS, LONG, counts)]
    if sample_format is not None:
        tags.append((TAG_SAMPLE_FORMAT, SHORT, [sample_format] * samples))
    tags += list(extra)
    tags.sort(key=lambda t: t[0])
    ifd = out.tell()
    values_at = ifd + 2 + 12 * len(tags) + 4
    table = io.BytesIO()
    blob = io.BytesIO()
    for code, kind, values in tags:
        packed = struct.pack(f"<{len(values)}{_FORMATS[kind]}", *values)
        if len(packed) <= 4:
            field = packed.ljust(4, b"\x00")
        else:
            field = struct.pack("<I", values_at + blob.tell())
            blob.write(packed)
            if blob.tell() % 2:
                blob.write(b"\x00")
        table.write(struct.pack("<HHI", code, kind, len(values)) + field)
    out.write(struct.pack("<H", len(tags)))
    out.write(table.getvalue())
    out.write(struct.pack("<I", ifd if next_ifd == "self" else next_ifd))
    out.write(blob.getvalue())
    data = bytearray(out.getvalue())
    data[4:8] = struct.pack("<I", ifd)
    return bytes(data)


def ifd_offset(data: bytes) -> int:
    """Offset of the first IFD of a little-endian classic TIFF."""
    return struct.unpack("<I", data[4:8])[0]


def valid_tiffs(tmp_path) -> dict[str, "np.ndarray"]:
    """Small correct TIFFs covering the layouts, depths and codecs the reader accepts.

    Returns ``{path: the image as read by plain NumPy (bool for 1-bit)}``.
    """
    import tifffile

    rng = np.random.default_rng(20240607)
    height, width = 37, 29  # neither divides a strip, tile or byte
    made = {}
    cases = [
        ("u8-none-strips", np.uint8, dict(rowsperstrip=5)),
        ("u8-deflate-strips", np.uint8, dict(rowsperstrip=8, compression="zlib")),
        ("u8-lzw-tiles", np.uint8, dict(tile=(16, 16), compression="lzw")),
        ("u8-packbits-strips", np.uint8, dict(rowsperstrip=4, compression="packbits")),
        ("u8-zstd-tiles", np.uint8, dict(tile=(16, 32), compression="zstd")),
        ("u8-deflate-predictor", np.uint8, dict(rowsperstrip=16, compression="zlib",
                                                predictor=True)),
        ("u16-deflate-strips", np.uint16, dict(rowsperstrip=9, compression="zlib")),
        ("u16-none-tiles-be", np.uint16, dict(tile=(16, 16), byteorder=">")),
        ("bit-none-strips", bool, dict(rowsperstrip=6)),
        ("bit-packbits-strips", bool, dict(rowsperstrip=10, compression="packbits")),
        ("bit-deflate-tiles", bool, dict(tile=(16, 16), compression="zlib")),
    ]
    for name, dtype, kwargs in cases:
        if dtype is bool:
            image = rng.random((height, width)) < 0.4
        else:
            image = rng.integers(0, np.iinfo(dtype).max, (height, width), dtype=dtype,
                                 endpoint=True)
        path = tmp_path / f"{name}.tif"
        tifffile.imwrite(path, image, photometric="minisblack", **kwargs)
        made[str(path)] = image
    return made


def valid_hdf5(tmp_path) -> dict[str, "np.ndarray"]:
    """Small correct HDF5 files (contiguous, chunked, gzip, lzf, shuffle, bool, packed)."""
    import h5py

    rng = np.random.default_rng(20240608)
    height, width = 37, 29
    made = {}
    cases = [
        ("u8-contiguous", np.uint8, {}),
        ("u8-gzip", np.uint8, dict(chunks=(8, 16), compression="gzip", shuffle=True)),
        ("u16-lzf", np.uint16, dict(chunks=(16, 8), compression="lzf")),
        ("u8-chunked", np.uint8, dict(chunks=(5, 29))),
        ("bool-gzip", bool, dict(chunks=(8, 8), compression="gzip")),
    ]
    for name, dtype, kwargs in cases:
        if dtype is bool:
            image = rng.random((height, width)) < 0.5
        else:
            image = rng.integers(0, np.iinfo(dtype).max, (height, width), dtype=dtype,
                                 endpoint=True)
        path = tmp_path / f"{name}.h5"
        with h5py.File(path, "w") as f:
            f.create_dataset("mask", data=image, **kwargs)
        made[str(path)] = image
    return made
