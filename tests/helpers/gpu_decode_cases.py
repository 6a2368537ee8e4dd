"""Files of every layout the GPU decode path plans, and a CPU decoder of its batch layout.

:func:`cpu_rows` decodes a block exactly as the GPU path lays it out (one compressed buffer,
offset tables, framing entries, then filters and assembly), but with the CPU codecs (raw
inflate with ``zlib.decompressobj(-15)``, zstd and LZ4 blocks from imagecodecs) and plain
NumPy for the filters, so the layout can be compared with today's readers on any machine.
"""

from __future__ import annotations

import zlib

import h5py
import hdf5plugin
import imagecodecs
import numpy as np
import tifffile

from dragon_gpu.engines.gpu.decode import _adler
from dragon_gpu.engines.gpu.decode._plan import frame
from tests.helpers.files import FILLORDER_PLACEHOLDER, REVERSED_BYTES, make_fillorder2
from dragon_gpu.engines.gpu.decode._stream import _read_segments

REV = REVERSED_BYTES
HEIGHT, WIDTH = 37, 45


def _data(rng, kind, shape=(HEIGHT, WIDTH)):
    if kind == "bits":
        return rng.random(shape) < 0.4
    if kind == "u8":
        # smooth enough that deflate and the predictor have something to do
        base = np.add.outer(np.arange(shape[0]), np.arange(shape[1])) * 3
        return ((base + rng.integers(0, 9, shape)) % 256).astype(np.uint8)
    return (np.add.outer(np.arange(shape[0]) * 700, np.arange(shape[1]) * 13)
            + rng.integers(0, 300, shape)).astype(np.uint16)


def write_tiff_case(path, rng, kind, compression, *, predictor=None, tile=None, rowsperstrip=5,
                    byteorder="<", fillorder2=False, level=None):
    data = _data(rng, kind)
    kw = {"tile": tile} if tile else {"rowsperstrip": rowsperstrip}
    if predictor:
        kw["predictor"] = predictor
    if fillorder2:
        kw["extratags"] = [FILLORDER_PLACEHOLDER]
    if level is not None:
        kw["compressionargs"] = {"level": level}
    tifffile.imwrite(path, data, photometric="minisblack", compression=compression,
                     byteorder=byteorder, **kw)
    if fillorder2:
        make_fillorder2(path)
    return data


def write_h5_case(path, rng, kind, compression, *, chunks=(8, 16), shuffle=False, dtype=None,
                  packed=False):
    data = _data(rng, kind)
    stored = data
    if packed:
        stored = np.packbits(data.astype(np.uint8), axis=1)
        chunks = (chunks[0], min(chunks[1], stored.shape[1]))
    elif dtype is not None:
        stored = data.astype(dtype)
    kw = {}
    if compression == "gzip":
        kw = {"compression": "gzip"}
    elif compression == "zstd":
        kw = dict(hdf5plugin.Zstd())
    elif compression == "lz4":
        kw = dict(hdf5plugin.LZ4(nbytes=48))  # several LZ4 blocks a chunk, some kept raw
    with h5py.File(path, "w") as f:
        ds = f.create_dataset("image", data=stored, chunks=chunks, shuffle=shuffle, **kw)
        if packed:
            ds.attrs["dragon_gpu_encoding"] = "packed-bits"
            ds.attrs["width"] = data.shape[1]
            ds.attrs["bitorder"] = "big"
    return data


#: name -> writer(path, rng) of every layout the GPU decode path plans.
CASES = {
    "tiff-u8-deflate-strips": lambda p, r: write_tiff_case(p, r, "u8", "zlib"),
    "tiff-u8-deflate-predictor": lambda p, r: write_tiff_case(p, r, "u8", "zlib", predictor=2),
    "tiff-u8-deflate-stored": lambda p, r: write_tiff_case(p, r, "u8", "zlib", level=0),
    "tiff-u16-deflate-predictor-be": lambda p, r: write_tiff_case(
        p, r, "u16", "zlib", predictor=2, byteorder=">"),
    "tiff-u16-zstd-tiles": lambda p, r: write_tiff_case(p, r, "u16", "zstd", tile=(16, 16)),
    "tiff-u16-zstd-tiles-be": lambda p, r: write_tiff_case(p, r, "u16", "zstd", tile=(16, 16),
                                                           byteorder=">"),
    "tiff-u8-deflate-tiles-predictor": lambda p, r: write_tiff_case(
        p, r, "u8", "zlib", tile=(16, 32), predictor=2),
    "tiff-bits-deflate-strips": lambda p, r: write_tiff_case(p, r, "bits", "zlib", rowsperstrip=7),
    "tiff-bits-deflate-tiles": lambda p, r: write_tiff_case(p, r, "bits", "zlib", tile=(16, 16)),
    "tiff-u8-deflate-fillorder2": lambda p, r: write_tiff_case(p, r, "u8", "zlib",
                                                               fillorder2=True),
    "tiff-bits-zstd-fillorder2": lambda p, r: write_tiff_case(p, r, "bits", "zstd",
                                                              fillorder2=True),
    "h5-u8-gzip": lambda p, r: write_h5_case(p, r, "u8", "gzip"),
    "h5-u16-gzip-shuffle": lambda p, r: write_h5_case(p, r, "u16", "gzip", shuffle=True),
    "h5-u16be-gzip-shuffle": lambda p, r: write_h5_case(p, r, "u16", "gzip", shuffle=True,
                                                        dtype=">u2"),
    "h5-u16-zstd": lambda p, r: write_h5_case(p, r, "u16", "zstd", chunks=(10, 45)),
    "h5-u8-lz4": lambda p, r: write_h5_case(p, r, "u8", "lz4"),
    "h5-u16-lz4-shuffle": lambda p, r: write_h5_case(p, r, "u16", "lz4", shuffle=True),
    "h5-bool-gzip": lambda p, r: write_h5_case(p, r, "bits", "gzip"),
    "h5-packed-zstd": lambda p, r: write_h5_case(p, r, "bits", "zstd", packed=True),
}
CPU_ONLY = {
    "tiff-u8-lzw": lambda p, r: write_tiff_case(p, r, "u8", "lzw"),
    "tiff-u8-none": lambda p, r: write_tiff_case(p, r, "u8", None),
    "h5-u8-lzf": lambda p, r: _h5_lzf(p, r),
}


def _h5_lzf(path, rng):
    data = _data(rng, "u8")
    with h5py.File(path, "w") as f:
        f.create_dataset("image", data=data, chunks=(8, 16), compression="lzf")
    return data


# -- the batch layout decoded on the CPU -----------------------------------------------------------
def inflate_entries(codec, comp: np.ndarray, entries, dec: np.ndarray) -> list[int]:
    """Decode every entry of ``entries`` from ``comp`` into ``dec`` with the CPU codecs; returns
    the bytes each decoded to (what nvCOMP reports)."""
    sizes = []
    for at, n, dst, want in zip(entries.comp_at, entries.comp_size, entries.dec_at,
                                entries.dec_size):
        src = comp[int(at):int(at) + int(n)].tobytes()
        try:
            if codec == "deflate":
                out = zlib.decompressobj(-15).decompress(src, int(want) + 1)
            elif codec == "zstd":
                out = imagecodecs.zstd_decode(src)
            else:
                out = imagecodecs.lz4_decode(src, header=False, out=int(want))
        except Exception:
            out = b""
        out = np.frombuffer(out, np.uint8)
        keep = min(out.size, int(want))
        dec[int(dst):int(dst) + keep] = out[:keep]
        sizes.append(int(out.size))
    for src, dst, n in entries.stored:
        dec[dst:dst + n] = comp[src:src + n]
    return sizes


def cpu_rows(plan, row_start: int, row_stop: int) -> np.ndarray:
    """Rows ``[row_start, row_stop)`` through the GPU path's layout, decoded on the CPU."""
    batch = plan.batch(row_start, row_stop)
    ring = np.zeros(max(1, batch.comp_nbytes), np.uint8)
    _read_segments(plan.fd, batch, ring)
    entries = frame(plan, batch, ring)
    if plan.reverse_bits:
        ring = REV[ring]
    dec = np.zeros(max(1, batch.dec_nbytes), np.uint8)
    sizes = inflate_entries(plan.codec, ring, entries, dec)
    assert sizes == [int(v) for v in entries.dec_size]
    if entries.adler is not None:
        for k, (at, n) in enumerate(zip(batch.dec_at, batch.decoded)):
            got = _adler.adler32(dec[int(at):int(at) + int(n)])
            assert got == zlib.adler32(dec[int(at):int(at) + int(n)].tobytes())
            assert got == int(entries.adler[k])
    rows = row_stop - row_start
    out = np.zeros((rows, plan.row_bytes), np.uint8)
    itemsize = plan.itemsize
    for k, seg in enumerate(batch.index):
        at, n = int(batch.dec_at[k]), int(batch.decoded[k])
        raw = dec[at:at + n]
        if plan.shuffle:
            raw = raw.reshape(itemsize, -1).T.reshape(-1)
        srows = n // plan.seg_row_bytes
        if itemsize == 2:
            vals = raw.view(">u2" if plan.swap else "<u2").reshape(srows, -1)
            if plan.predictor:
                vals = np.cumsum(vals, axis=1, dtype=np.uint16)
            tile = vals.astype("<u2").view(np.uint8).reshape(srows, -1)
        else:
            tile = raw.reshape(srows, -1)
            if plan.predictor:
                tile = np.cumsum(tile, axis=1, dtype=np.uint8)
        band, col = divmod(int(seg), plan.across)
        r0, c0 = band * plan.seg_rows, col * plan.seg_row_bytes
        lo, hi = max(row_start, r0), min(row_stop, r0 + srows)
        c1 = min(plan.row_bytes, c0 + plan.seg_row_bytes)
        out[lo - row_start:hi - row_start, c0:c1] = tile[lo - r0:hi - r0, :c1 - c0]
    return out
