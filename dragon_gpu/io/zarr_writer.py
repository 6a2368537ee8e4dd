"""Writing Zarr v3 arrays and OME-Zarr 0.5 images from row blocks, streaming and atomically.

The store is built in a temporary folder next to the output (``.NAME.xxxx.part``) and renamed
to its name when complete, so an interrupted run never leaves a half-written store under the
final name. Rows arrive in blocks; each block is written at once (zarr encodes and stores its
chunks concurrently) and, for a pyramid, decimated (every 2nd, 4th... row and column: nearest
neighbour, right for masks and labels) into the lower levels, so nothing is held but one block.

OME-Zarr output is an image group with ``multiscales`` (axes ``c, y, x`` or ``y, x``, one
``scale`` transformation a level), ``omero`` channel names, and optionally label images under
``labels/NAME`` (``image-label`` metadata, same levels).
"""

from __future__ import annotations

import os
import secrets
import shutil

import numpy as np

from ..errors import UsageError
from .codecs import ZARR_WRITABLE

#: Zarr compression names (the codec table's Zarr rows).
COMPRESSIONS = tuple(ZARR_WRITABLE)
NGFF_VERSION = "0.5"


def _compressors(compression: str):
    from zarr.codecs import BloscCodec, GzipCodec, ZstdCodec

    if compression not in COMPRESSIONS:
        raise UsageError(f"choose one of {', '.join(COMPRESSIONS)} for Zarr, got "
                         f"{compression!r}", param="compression")
    level = ZARR_WRITABLE[compression].level
    if compression == "zstd":
        return ZstdCodec(level=level)
    if compression == "gzip":
        return GzipCodec(level=level)
    if compression == "blosc":
        return BloscCodec(cname="zstd", clevel=level, shuffle="bitshuffle")
    return None


def _tmp_folder(path: str) -> str:
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise UsageError(f"the folder {folder} does not exist", path)
    if os.path.lexists(path):
        from ._zarr_store import looks_like_zarr

        if os.path.islink(path) or not looks_like_zarr(path):
            from ..errors import OutputError

            raise OutputError("exists and is not a Zarr store; refusing to replace it", path)
    tmp = os.path.join(folder, f".{os.path.basename(path)}.{secrets.token_hex(4)}.part")
    os.mkdir(tmp)
    return tmp


class ZarrImageWriter:
    """A Zarr v3 array, or an OME-Zarr image of ``channels`` planes, filled by row blocks.

    Parameters
    ----------
    path : str
        The store folder to create (an existing Zarr store there is replaced on commit).
    shape : (rows, cols)
    dtype : numpy dtype
        ``uint8``, ``uint16`` or ``bool``.
    channels : list of str, optional
        OME channel names; the image is ``(c, rows, cols)``. Without it a 2-D image.
    ome : bool
        Write an OME-Zarr image group (array ``0``, ``1``... per level) instead of a bare array.
    levels : int
        Pyramid levels (OME-Zarr only), each half the size of the one above.
    chunk_rows, chunk_cols : int
        Chunk shape of the full-resolution level.
    labels : list of str
        Label images to create under ``labels/`` (OME-Zarr only), uint8, same levels.
    """

    def __init__(self, path, shape, dtype, *, channels=None, ome=False, levels=1,
                 chunk_rows=1024, chunk_cols=1024, compression="zstd", labels=()):
        import zarr

        self.path = os.fspath(path)
        rows, cols = (int(n) for n in shape)
        if levels < 1 or (levels > 1 and not ome):
            raise UsageError("a pyramid needs {option:fmt} ome-zarr and at least 1 level",
                             param="levels")
        self.shape, self.levels, self.ome = (rows, cols), int(levels), ome
        self.channels = list(channels) if channels else None
        self.label_names = list(labels)
        codec = _compressors(compression)
        self.compression = compression
        self.tmp = _tmp_folder(self.path)
        self.done = False
        lead = (len(self.channels),) if self.channels else ()
        names = (["c"] if self.channels else []) + ["y", "x"]
        try:
            root = zarr.open_group(self.tmp, mode="w", zarr_format=3) if ome else None
            self.arrays, self.label_arrays = [], {name: [] for name in self.label_names}
            for k in range(self.levels):
                f = 1 << k
                lshape = (-(-rows // f), -(-cols // f))
                chunks = lead and (1,)
                chunks = tuple(chunks) + (min(chunk_rows, lshape[0]), min(chunk_cols, lshape[1]))
                kw = dict(shape=lead + lshape, chunks=chunks, dtype=dtype, compressors=codec,
                          fill_value=0, dimension_names=names)
                self.arrays.append(root.create_array(str(k), **kw) if ome
                                   else zarr.create_array(self.tmp, overwrite=True,
                                                          zarr_format=3, **kw))
                for name in self.label_names:
                    self.label_arrays[name].append(root.create_array(
                        f"labels/{name}/{k}", shape=lshape, chunks=chunks[-2:], dtype="uint8",
                        compressors=codec, fill_value=0, dimension_names=["y", "x"]))
            self._root = root
        except BaseException:
            self.abort()
            raise

    def write(self, row_start: int, planes, labels=None) -> None:
        """Rows ``[row_start, row_start + n)``: one (n, cols) array a channel (or one array)."""
        planes = planes if self.channels else [planes]
        n = planes[0].shape[0]
        for k, arr in enumerate(self.arrays):
            f = 1 << k
            first = -(-row_start // f)
            stop = -(-(row_start + n) // f)
            if stop <= first:
                continue
            offset = first * f - row_start
            for c, plane in enumerate(planes):
                level = plane[offset::f, ::f]
                if self.channels:
                    arr[c, first:stop, :] = level
                else:
                    arr[first:stop, :] = level
            for name, lab in (labels or {}).items():
                self.label_arrays[name][k][first:stop, :] = lab[offset::f, ::f]

    def _ngff(self, axes: list[dict], lead: int) -> dict:
        datasets = [{"path": str(k), "coordinateTransformations": [
            {"type": "scale", "scale": [1.0] * lead + [float(1 << k)] * 2}]}
            for k in range(self.levels)]
        return {"version": NGFF_VERSION, "multiscales": [{
            "name": os.path.basename(self.path.rstrip("/")), "axes": axes, "datasets": datasets,
            "type": "nearest"}]}

    def commit(self) -> None:
        """Write the OME metadata and publish the store under its name."""
        if self.done:
            return
        space = [{"name": "y", "type": "space"}, {"name": "x", "type": "space"}]
        if self.ome:
            lead = [{"name": "c", "type": "channel"}] if self.channels else []
            meta = self._ngff(lead + space, len(lead))
            if self.channels:
                meta["omero"] = {"channels": [{"label": n, "active": True}
                                              for n in self.channels]}
            self._root.attrs["ome"] = meta
            if self.label_names:
                import zarr

                group = zarr.open_group(os.path.join(self.tmp, "labels"), mode="r+")
                group.attrs["ome"] = {"version": NGFF_VERSION, "labels": self.label_names}
                for name in self.label_names:
                    lg = zarr.open_group(os.path.join(self.tmp, "labels", name), mode="r+")
                    lmeta = self._ngff(space, 0)
                    lmeta["image-label"] = {"version": NGFF_VERSION, "source": {"image": "../../"}}
                    lg.attrs["ome"] = lmeta
        old = None
        if os.path.lexists(self.path):  # an existing Zarr store (checked in _tmp_folder)
            old = f"{self.tmp}.old"
            os.rename(self.path, old)
        os.rename(self.tmp, self.path)
        self.done = True
        if old:
            shutil.rmtree(old, ignore_errors=True)

    def abort(self) -> None:
        if not self.done:
            shutil.rmtree(self.tmp, ignore_errors=True)
            self.done = True

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.commit()
        else:
            self.abort()


def write_zarr_rows(path, blocks, shape, *, packed: bool, dtype, ome: bool = False,
                    levels: int = 1, compression: str = "zstd", chunk_rows: int = 1024,
                    chunk_cols: int = 1024, progress=None) -> dict:
    """Write one image from consecutive row blocks (packed bits become a bool mask).

    Returns
    -------
    dict
        ``path``, ``bytes`` stored, ``segment_rows`` (chunk rows), ``compression``.
    """
    height, width = (int(n) for n in shape)
    out_dtype = np.bool_ if packed else np.dtype(dtype)
    done = 0
    with ZarrImageWriter(path, shape, out_dtype, ome=ome, levels=levels, chunk_rows=chunk_rows,
                         chunk_cols=chunk_cols, compression=compression) as writer:
        for block in blocks:
            plane = (np.unpackbits(block, axis=1, count=width).view(np.bool_) if packed
                     else block)
            writer.write(done, plane)
            done += plane.shape[0]
            if progress is not None:
                progress(done, height)
        if done != height:
            raise ValueError(f"got {done} rows for an image of {height}")
    return {"path": path, "bytes": stored_bytes(path), "segment_rows": min(chunk_rows, height),
            "compression": compression}


def stored_bytes(path: str) -> int:
    """Bytes of every file under a store folder."""
    total = 0
    for folder, _dirs, files in os.walk(path):
        total += sum(os.path.getsize(os.path.join(folder, f)) for f in files)
    return total
