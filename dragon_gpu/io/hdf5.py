"""HDF5 reader (h5py): any 2-D uint8/uint16/bool dataset, or a packed-bit mask written by this tool.

Untrusted files are opened defensively: links to other files, external raw storage and virtual
datasets are refused unless ``allow_external`` is true, because they make HDF5 read files the
user did not name.
"""

from __future__ import annotations

import os

import numpy as np

from ..errors import CorruptInputError, InputError, UnsafeInputError, UnsupportedInputError
from . import _hdf5_chunks
from ._decode import pread_exact
from ._segments import Segment, SegmentedReader
from .base import Kind

#: Attributes of a packed-bit mask dataset written by dragon-gpu. The dataset is uint8 of shape
#: (rows, ceil(width / 8)), most significant bit first; ``width`` is the image width in pixels.
PACKED_ENCODING_ATTR = "dragon_gpu_encoding"
PACKED_ENCODING = "packed-bits"
PACKED_WIDTH_ATTR = "width"
PACKED_BITORDER_ATTR = "bitorder"


class Hdf5Reader(SegmentedReader):
    """Rows of one 2-D dataset of an HDF5 file.

    Parameters
    ----------
    path : str
        The file.
    dataset : str, optional
        Path of the dataset inside the file; without it the file's only 2-D dataset is used.
    allow_external : bool
        Follow external links and accept external storage and virtual datasets.
    """

    def __init__(self, path: str, dataset: str | None = None, allow_external: bool = False):
        import h5py

        super().__init__()
        try:  # registers the lz4, zstd, blosc... filters with HDF5 where the package is installed
            import hdf5plugin  # noqa: F401
        except ImportError:
            pass
        self.path = str(path)
        self.allow_external = allow_external
        self._fd = None
        try:
            self._file = h5py.File(self.path, "r")
        except Exception as exc:
            raise CorruptInputError(f"not a readable HDF5 file ({_why(exc)})", self.path) from None
        try:
            name = self._resolve(dataset)
            self._open_dataset(name)
        except InputError:
            self._file.close()
            raise
        except Exception as exc:
            self._file.close()
            raise CorruptInputError(f"damaged HDF5 structure ({_why(exc)})", self.path) from None

    # -- finding the dataset --------------------------------------------------------------------
    def _resolve(self, dataset: str | None) -> str:
        import h5py

        if dataset is not None:
            self._check_link_path(dataset)
            obj = self._file.get(dataset)
            if obj is None:
                found = self._datasets_2d()
                listing = ", ".join(found) if found else "none"
                raise UnsupportedInputError(f"has no dataset {dataset!r} (2-D datasets: {listing})",
                                            self.path)
            if not isinstance(obj, h5py.Dataset):
                raise UnsupportedInputError(f"{dataset!r} is a group, not a dataset", self.path)
            return obj.name
        found = self._datasets_2d()
        if not found:
            raise UnsupportedInputError("has no 2-D dataset", self.path)
        if len(found) > 1:
            raise UnsupportedInputError(
                f"has {len(found)} 2-D datasets ({', '.join(found)}); name one with "
                "--body-dataset / --dye-dataset", self.path)
        return found[0]

    def _check_link_path(self, dataset: str) -> None:
        import h5py

        group = self._file
        parts = [p for p in dataset.split("/") if p]
        for i, part in enumerate(parts):
            link = group.get(part, getlink=True)
            if link is None:
                return
            if isinstance(link, h5py.ExternalLink) and not self.allow_external:
                raise UnsafeInputError(
                    f"{'/'.join(parts[:i + 1])!r} is an external link to {link.filename!r}; refused "
                    "(use --allow-external to follow it)", self.path)
            if i < len(parts) - 1:
                group = group.get(part)
                if not isinstance(group, h5py.Group):
                    return

    def _datasets_2d(self) -> list[str]:
        """2-D datasets reachable through hard links (external links are never followed here)."""
        import h5py

        found: list[str] = []
        stack = [self._file]
        seen = set()
        while stack:
            group = stack.pop()
            for name in group:
                link = group.get(name, getlink=True)
                if not isinstance(link, h5py.HardLink):
                    continue
                obj = group.get(name)
                if isinstance(obj, h5py.Group):
                    key = obj.id.__hash__()
                    if key not in seen:
                        seen.add(key)
                        stack.append(obj)
                elif isinstance(obj, h5py.Dataset) and obj.ndim == 2:
                    found.append(obj.name)
        return sorted(found)

    # -- the dataset --------------------------------------------------------------------------
    def _open_dataset(self, name: str) -> None:
        import h5py

        ds = self._file[name]
        where = f"{self.path}"
        self.dataset_name = name
        if ds.ndim != 2:
            raise UnsupportedInputError(f"dataset {name!r} has {ds.ndim} dimensions; expected 2",
                                        where)
        if not self.allow_external:
            if ds.is_virtual:
                raise UnsafeInputError(f"dataset {name!r} is a virtual dataset (it reads other "
                                       "files); refused (use --allow-external)", where)
            if ds.external:
                raise UnsafeInputError(f"dataset {name!r} keeps its data in external files; "
                                       "refused (use --allow-external)", where)
        attrs = ds.attrs
        encoding = attrs.get(PACKED_ENCODING_ATTR)
        if isinstance(encoding, bytes):
            encoding = encoding.decode()
        rows, cols = (int(n) for n in ds.shape)
        if encoding == PACKED_ENCODING:
            if ds.dtype != np.uint8:
                raise CorruptInputError(f"packed dataset {name!r} has dtype {ds.dtype}; expected "
                                        "uint8", where)
            width = int(attrs.get(PACKED_WIDTH_ATTR, cols * 8))
            order = attrs.get(PACKED_BITORDER_ATTR, "big")
            order = order.decode() if isinstance(order, bytes) else str(order)
            if not (cols * 8 - 7 <= width <= cols * 8) or order != "big":
                raise CorruptInputError(
                    f"packed dataset {name!r} declares width {width} and bit order {order!r} for "
                    f"{cols} bytes a row", where)
            self.shape, self.bits, self.packed = (rows, width), 1, True
            self.dtype, self.kind = np.dtype(np.uint8), Kind.mask
        elif ds.dtype == np.bool_:
            self.shape, self.bits, self.packed = (rows, cols), 1, False
            self.dtype, self.kind = np.dtype(np.uint8), Kind.mask
        elif ds.dtype.kind == "u" and ds.dtype.itemsize in (1, 2):  # either byte order
            self.shape, self.bits, self.packed = (rows, cols), ds.dtype.itemsize * 8, False
            self.dtype, self.kind = np.dtype(ds.dtype).newbyteorder("="), Kind.gray
        else:
            raise UnsupportedInputError(f"dataset {name!r} has dtype {ds.dtype}; expected uint8, "
                                        "uint16, bool or a dragon-gpu packed mask", where)
        if rows < 1 or cols < 1:
            raise CorruptInputError(f"dataset {name!r} is empty ({rows} x {cols})", where)
        self._storage_dtype = ds.dtype
        self._chunks = ds.chunks
        self.row_granularity = int(ds.chunks[0]) if ds.chunks else 1
        self._compression = ds.compression
        self._filters = _filter_names(ds)
        # Size the chunk cache so a band of chunk rows that blocks cut through is decoded once.
        chunk_nbytes = int(np.prod(ds.chunks)) * ds.dtype.itemsize if ds.chunks else 0
        across = -(-cols // ds.chunks[1]) if ds.chunks else 0
        cache = max(1 << 20, chunk_nbytes * across + chunk_nbytes)
        self.chunk_cache_nbytes = cache
        dapl = h5py.h5p.create(h5py.h5p.DATASET_ACCESS)
        dapl.set_chunk_cache(max(521, 2 * across + 1), cache, 1.0)
        self._ds = h5py.Dataset(h5py.h5d.open(self._file.id, name.encode(), dapl))
        # Chunks whose filters we can undo are read by byte range and decoded on every core.
        self._parallel = _hdf5_chunks.can_decode(ds)
        if self._parallel:
            self._filters_ids = _hdf5_chunks.filter_ids(ds)
            self.seg_rows, self.seg_cols = int(ds.chunks[0]), int(ds.chunks[1])
            self._itemsize = ds.dtype.itemsize
            self._fill = ds.fillvalue
            self._fd = os.open(self.path, os.O_RDONLY)
        if not ds.chunks and not ds.is_virtual and not ds.external:
            stored, need = ds.id.get_storage_size(), rows * cols * ds.dtype.itemsize
            offset = ds.id.get_offset()
            if offset is not None and offset + need > os.path.getsize(self.path):
                raise CorruptInputError(
                    f"is truncated: dataset {name!r} needs bytes up to {offset + need}, the file "
                    f"has {os.path.getsize(self.path)}", where)
            del stored

    @property
    def chunks(self):
        return self._chunks

    def describe(self) -> dict:
        layout = (f"chunks of {self._chunks[0]} x {self._chunks[1]}" if self._chunks
                  else "contiguous")
        return {
            "format": "HDF5",
            "dataset": self.dataset_name,
            "storage_dtype": str(self._storage_dtype),
            "encoding": "packed bits" if self.packed else str(self._storage_dtype),
            "layout": layout,
            "compression": "+".join(self._filters) if self._filters else "none",
            "stored_bytes": int(self._ds.id.get_storage_size()),
        }

    def decode_segment(self, seg: Segment, dest: np.ndarray | None = None) -> np.ndarray:
        nbytes = seg.rows * seg.cols * self._itemsize
        try:
            info = self._ds.id.get_chunk_info_by_coord((seg.row0, seg.col0))
            if info.byte_offset is None:  # never written: the fill value
                data = self.scratch(nbytes, "fill").view(self._storage_dtype)
                data[...] = self._fill
                return data.view(self.dtype).reshape(seg.rows, seg.cols)
            raw = pread_exact(self._fd, info.byte_offset, info.size, self.scratch(info.size, "raw"))
            data = _hdf5_chunks.unfilter(raw, self._filters_ids, info.filter_mask, nbytes,
                                         self._itemsize, self.scratch)
        except Exception as exc:
            raise CorruptInputError(
                f"chunk at row {seg.row0}, column {seg.col0} of {self.dataset_name!r} cannot be "
                f"decoded ({_why(exc)})", self.path) from None
        return data.view(self._storage_dtype.newbyteorder("=") if self._storage_dtype != np.bool_
                         else np.uint8).reshape(seg.rows, seg.cols).view(self.dtype)

    def read_rows(self, row_start, row_stop, out=None):
        if self._parallel and self._storage_dtype.byteorder in ("=", "|", "<"):
            return SegmentedReader.read_rows(self, row_start, row_stop, out)
        out = self._check_range(row_start, row_stop, out)
        if row_start == row_stop:
            return out
        target = out.view(np.bool_) if self._storage_dtype == np.bool_ else out
        try:
            self._ds.read_direct(target, np.s_[row_start:row_stop, :])
        except Exception as exc:
            raise CorruptInputError(f"rows {row_start}-{row_stop} of {self.dataset_name!r} cannot "
                                    f"be read ({_why(exc)})", self.path) from None
        return out

    def close(self):
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        try:
            self._file.close()
        except Exception:  # pragma: no cover - closing a damaged file
            pass


def _filter_names(ds) -> list[str]:
    names = []
    try:
        plist = ds.id.get_create_plist()
        for i in range(plist.get_nfilters()):
            code, _flags, _values, name = plist.get_filter(i)
            known = {1: "gzip", 2: "shuffle", 3: "fletcher32", 4: "szip", 32000: "lzf",
                     32001: "blosc", 32004: "lz4", 32008: "bitshuffle", 32015: "zstd"}
            names.append(known.get(code, name.decode(errors="replace") if isinstance(name, bytes)
                                   else str(name)))
    except Exception:  # pragma: no cover - exotic plists
        pass
    return names


def _why(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
