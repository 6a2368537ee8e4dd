"""Small Zarr and OME-Zarr test images written by zarr-python itself (and ome-zarr-py).

Each writer has the signature of :data:`~tests.helpers.files.Writer` and returns a
:class:`Written` whose ``source`` is the NumPy array given to zarr, so expectations never come
from the reader.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import zarr
from zarr.codecs import (BloscCodec, BytesCodec, Crc32cCodec, GzipCodec, TransposeCodec,
                         ZstdCodec)

from tests.helpers.files import Written, random_bits, random_gray


def write_zarr(path, data: np.ndarray, *, chunks=(8, 16), zarr_format=3, zip_store=False,
               plane=None, **kwargs) -> Written:
    """An array written by ``zarr.create_array``; ``plane`` stacks it as channel 1 of 3."""
    path = Path(path)
    stored = data
    if plane is not None:
        others = [np.zeros_like(data), np.full_like(data, 1)]
        stored = np.stack([others[0], data, others[1]])
        chunks = (1,) + tuple(chunks)
    chunks = tuple(min(c, n) for c, n in zip(chunks, stored.shape))
    store = zarr.storage.ZipStore(path, mode="w") if zip_store else path
    arr = zarr.create_array(store, shape=stored.shape, chunks=chunks, dtype=stored.dtype,
                            zarr_format=zarr_format, **kwargs)
    arr[...] = stored
    if zip_store:
        store.close()
    unit = min(chunks[-2], data.shape[0])
    name = str(path) + (f"#{plane}" if plane else "")
    if data.dtype == np.bool_:
        return Written(Path(name), data.copy(), "mask", False, 1, unit)
    return Written(Path(name), data.copy(), "gray", False, data.dtype.itemsize * 8, unit)


def _zg(path, rng, shape, dtype=np.uint8, **kw):
    return write_zarr(Path(path).with_suffix(".zarr"), random_gray(rng, shape, dtype), **kw)


def _zb(path, rng, shape, **kw):
    return write_zarr(Path(path).with_suffix(".zarr"), random_bits(rng, shape), **kw)


def _zip(path, rng, shape, **kw):
    return write_zarr(Path(path).with_suffix(".zip"), random_gray(rng, shape), zip_store=True,
                      **kw)


def _w(fn, **kw):
    return lambda path, rng, shape: fn(path, rng, shape, **kw)


def _numcodecs():
    import numcodecs

    return numcodecs


ZARR_WRITERS = {
    "zarr2-u8-zstd": _w(_zg, zarr_format=2, compressors=_numcodecs().Zstd(level=1)),
    "zarr2-u16-blosc-shuffle": _w(_zg, dtype=np.uint16, zarr_format=2, chunks=(5, 7),
                                  compressors=_numcodecs().Blosc(cname="lz4", shuffle=1)),
    "zarr2-bool-gzip": _w(_zb, zarr_format=2, compressors=_numcodecs().GZip(level=1)),
    "zarr2-u16-bigendian-zlib": _w(_zg, dtype=np.dtype(">u2"), zarr_format=2,
                                   compressors=_numcodecs().Zlib(level=1)),
    "zarr2-u8-lz4-slash-keys": _w(_zg, zarr_format=2, compressors=_numcodecs().LZ4(),
                                  chunk_key_encoding={"name": "v2", "separator": "/"}),
    "zarr2-u8-raw": _w(_zg, zarr_format=2, compressors=None),
    "zarr3-u8-zstd": _w(_zg, compressors=ZstdCodec(level=1)),
    "zarr3-u16-gzip": _w(_zg, dtype=np.uint16, chunks=(9, 40), compressors=GzipCodec(level=1)),
    "zarr3-u16-bigendian-blosc": _w(_zg, dtype=np.uint16, serializer=BytesCodec(endian="big"),
                                    compressors=BloscCodec(cname="zstd", shuffle="bitshuffle")),
    "zarr3-bool-zstd": _w(_zb, compressors=ZstdCodec()),
    "zarr3-u8-raw": _w(_zg, compressors=None),
    "zarr3-u8-transpose-crc32c": _w(_zg, filters=[TransposeCodec(order=(1, 0))],
                                    compressors=[ZstdCodec(), Crc32cCodec()]),
    "zarr3-u8-sharded-zstd": _w(_zg, chunks=(4, 8), shards=(8, 32), compressors=ZstdCodec()),
    "zarr3-u16-sharded-gzip": _w(_zg, dtype=np.uint16, chunks=(3, 5), shards=(6, 10),
                                 compressors=GzipCodec()),
    "zarr3-u8-zip": _w(_zip, compressors=ZstdCodec()),
    "zarr2-u8-zip": _w(_zip, zarr_format=2),
    "zarr3-u8-channel": _w(_zg, plane="c=1", compressors=ZstdCodec(),
                           dimension_names=["c", "y", "x"]),
}


# -- OME-Zarr ------------------------------------------------------------------------------------
def write_ome_image(path, channels: np.ndarray, *, version="0.5", labels: dict | None = None,
                    chunks=(16, 16), names=None):
    """An OME-Zarr image of shape (c, rows, cols) written with ome-zarr-py, plus label images.

    The full resolution and one downsampled level are written (``scale_factors``), so a reader
    must pick the first dataset of ``multiscales``.
    """
    from ome_zarr.format import FormatV04, FormatV05
    from ome_zarr.io import parse_url
    from ome_zarr.writer import write_image, write_labels

    fmt = FormatV05() if version == "0.5" else FormatV04()
    path = Path(path)
    store = parse_url(str(path), mode="w", fmt=fmt).store
    root = zarr.group(store=store, zarr_format=3 if version == "0.5" else 2)
    meta = {"channels": [{"label": n} for n in names]} if names else None
    write_image(channels, group=root, axes="cyx", fmt=fmt, scale_factors=[2],
                storage_options={"chunks": (1,) + tuple(chunks)},
                **({"metadata": {"omero": meta}} if meta else {}))
    if meta:  # ome-zarr-py writes omero only through its own metadata argument
        attrs = dict(root.attrs)
        target = attrs["ome"] if "ome" in attrs else attrs
        target["omero"] = meta
        root.attrs.update(attrs)
    for name, lab in (labels or {}).items():
        write_labels(lab, group=root, name=name, axes="yx", fmt=fmt, scale_factors=[2],
                     storage_options={"chunks": tuple(chunks)})
    return path
