"""HDF5 reader (h5py): any 2-D uint8/uint16/bool dataset, or a packed-bit mask written by this tool.

Untrusted files are opened defensively: links to other files, external raw storage and virtual
datasets are refused unless ``allow_external`` is true, because they make HDF5 read files the
user did not name.
"""

from __future__ import annotations

import os

import numpy as np

from ..errors import (CorruptInputError, InputError, UnsafeInputError, UnsupportedInputError,
                      one_line)
from . import _hdf5_chunks
from ._decode import pread_exact
from ._hdf5_meta import (ORIGIN_PREFIX, check_integer_layout, dtype_name,
                         filter_names, listing_of, open_object, split_path)
from ._segments import Segment, SegmentedReader
from .base import Kind

#: Attributes of a packed-bit mask dataset written by dragon-gpu. The dataset is uint8 of shape
#: (rows, ceil(width / 8)), most significant bit first; ``width`` is the image width in pixels.
PACKED_ENCODING_ATTR = "dragon_gpu_encoding"
PACKED_ENCODING = "packed-bits"
PACKED_WIDTH_ATTR = "width"
PACKED_BITORDER_ATTR = "bitorder"

#: Soft links followed on one dataset path before it is called a loop.
MAX_LINK_HOPS = 40


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
            raise CorruptInputError(f"not a readable HDF5 file ({one_line(exc)})",
                                    self.path) from None
        try:
            open_path, name = self._resolve(dataset)
            self._open_dataset(open_path, name)
        except InputError:
            self._file.close()
            raise
        except Exception as exc:
            self._file.close()
            raise CorruptInputError(f"damaged HDF5 structure ({one_line(exc)})",
                                    self.path) from None

    # -- finding the dataset --------------------------------------------------------------------
    def _resolve(self, dataset: str | None) -> tuple[str, str]:
        """(path to open, name to show) of the dataset to read."""
        import h5py

        if dataset is not None:
            hard_path, external = self._walk_links(dataset)
            open_path = dataset if external else hard_path
            try:
                obj = open_object(self._file, open_path) if open_path is not None else None
            except KeyError:
                obj = None
            if obj is None:
                found, _others, _links = self._survey()
                listing = listing_of(found) if found else "none"
                raise UnsupportedInputError(f"has no dataset {dataset!r} (2-D datasets: {listing})",
                                            self.path)
            if not isinstance(obj, h5py.Dataset):
                raise UnsupportedInputError(f"{dataset!r} is a group, not a dataset", self.path)
            return open_path, dataset
        found, others, links = self._survey()
        if not found:
            extra = f" (other datasets: {listing_of(others)})" if others else ""
            if any(int(o.rsplit(" (", 1)[1].split("-")[0]) >= 3 for o in others
                   if "-D, " in o):
                extra += "; one plane of an N-D dataset is named like FILE#c=0 (docs/zarr.md)"
            if links:
                extra += (f"; external links were not followed ({listing_of(links)}): name the "
                          "dataset with {option:dataset}"
                          + ("" if self.allow_external else " and add {option:allow_external}"))
            raise UnsupportedInputError(f"has no 2-D dataset{extra}", self.path)
        if len(found) > 1:
            raise UnsupportedInputError(
                f"has {len(found)} 2-D datasets ({listing_of(found)}); name one with "
                "{option:dataset}", self.path)
        return found[0], found[0]

    def _walk_links(self, dataset: str) -> tuple[str | None, bool]:
        """Follow ``dataset`` one link at a time, the way HDF5 will, before HDF5 does.

        A soft link may lead into an external link (``/s -> /a/x`` with ``/a`` external), so soft
        links are expanded here and every component is checked. Returns the path through hard
        links only (None when a component does not exist) and whether an external link, allowed
        by ``allow_external``, is on the way (then HDF5 resolves the rest).
        """
        import h5py
        from h5py import h5l

        parts = split_path(dataset)
        group = self._file
        done: list[str] = []
        hops = 0
        while parts:
            part = parts.pop(0)
            if not isinstance(group, h5py.Group):
                return None, False
            name = part.encode()
            if not group.id.links.exists(name):
                return None, False
            kind = group.id.links.get_info(name).type
            if kind == h5l.TYPE_SOFT:
                hops += 1
                if hops > MAX_LINK_HOPS:
                    raise CorruptInputError(f"the soft links of {dataset!r} form a loop", self.path)
                target = group.id.links.get_val(name).decode(errors="replace")
                if target.startswith("/"):
                    group, done = self._file, []
                parts = split_path(target) + parts
                continue
            if kind == h5l.TYPE_EXTERNAL:
                filename, inner = (v.decode(errors="replace") for v in group.id.links.get_val(name))
                if not self.allow_external:
                    shown = "/" + "/".join(done + [part])
                    via = "" if not parts else f" (on the way to {dataset!r})"
                    raise UnsafeInputError(
                        f"{shown!r}{via} is an external link to {filename}:{inner}; refused (use "
                        "{option:allow_external} to follow it)", self.path)
                return dataset, True
            if kind != h5l.TYPE_HARD:
                raise UnsafeInputError(f"{dataset!r} goes through a user-defined link; refused",
                                       self.path)
            done.append(part)
            group = open_object(group, part)
        return "/" + "/".join(done), False

    def _survey(self) -> tuple[list[str], list[str], list[str]]:
        """2-D datasets, other datasets and external links, found through hard links only.

        External links are listed, never followed; soft links only alias what hard links reach
        (or lead outside the file), so they are skipped.
        """
        import h5py
        from h5py import h5l

        found: list[str] = []
        others: list[str] = []
        links: list[str] = []
        stack = [self._file]
        seen = set()
        while stack:
            group = stack.pop()
            for name in list(group.id):
                kind = group.id.links.get_info(name).type
                text = name.decode(errors="replace")
                path = group.name.rstrip("/") + "/" + text
                if kind == h5l.TYPE_EXTERNAL:
                    filename, inner = (v.decode(errors="replace")
                                       for v in group.id.links.get_val(name))
                    links.append(f"{path} -> {filename}:{inner}")
                    continue
                if kind != h5l.TYPE_HARD:
                    continue
                obj = open_object(group, text)
                if isinstance(obj, h5py.Group):
                    key = (obj.id.fileno, h5py.h5o.get_info(obj.id).addr)
                    if key not in seen:
                        seen.add(key)
                        stack.append(obj)
                elif isinstance(obj, h5py.Dataset):
                    if obj.ndim == 2:
                        found.append(obj.name)
                    else:
                        shape = " x ".join(str(n) for n in obj.shape) or "scalar"
                        others.append(f"{obj.name} ({obj.ndim}-D, {shape})")
        return sorted(found), sorted(others), sorted(links)

    # -- the dataset --------------------------------------------------------------------------
    def _open_dataset(self, open_path: str, name: str) -> None:
        import h5py

        self._read_metadata(open_object(self._file, open_path), name)
        # The first handle is gone (CPython frees it on return): HDF5 applies the access
        # properties below only when it opens a dataset that is not open yet.
        chunks = self._chunks
        chunk_nbytes = int(np.prod(chunks)) * self._storage_dtype.itemsize if chunks else 0
        across = -(-self._stored_shape[1] // chunks[1]) if chunks else 0
        # Size the chunk cache so a band of chunk rows that blocks cut through is decoded once.
        cache = max(1 << 20, chunk_nbytes * across + chunk_nbytes)
        self.chunk_cache_nbytes = cache
        self._unit_nbytes = (chunk_nbytes * across if chunks
                             else self.row_granularity * self.row_nbytes)
        dapl = h5py.h5p.create(h5py.h5p.DATASET_ACCESS)
        dapl.set_chunk_cache(max(521, 2 * across + 1), cache, 1.0)
        if self.allow_external and self._external_raw:
            # Relative external raw files lie next to the HDF5 file (as with links and virtual
            # datasets), not in whatever folder the command runs from. Only such a dataset gets
            # the prefix: HDF5 refuses to open a dataset already open under another prefix, and
            # it opens the sources of a virtual dataset with none.
            dapl.set_efile_prefix(ORIGIN_PREFIX)
        self._ds = h5py.Dataset(h5py.h5d.open(self._file.id, open_path.encode(), dapl))
        self._chunk_table = None  # set by _check_storage when the chunk index can be walked
        self._check_storage(self._ds, name)
        # Chunks whose filters we can undo are read by byte range and decoded on every core.
        ds = self._ds
        self._parallel = _hdf5_chunks.can_decode(ds)
        if self._parallel:
            self._filters_ids = _hdf5_chunks.filter_ids(ds)
            self.seg_rows, self.seg_cols = int(ds.chunks[0]), int(ds.chunks[1])
            self._itemsize = ds.dtype.itemsize
            try:
                self._fill = ds.fillvalue
            except RuntimeError:  # "fill value is undefined": every chunk is stored (checked)
                self._fill = 0
            # Behind an allowed external link the chunks' byte offsets are in the other file.
            self._fd = os.open(ds.file.filename, os.O_RDONLY)

    def _read_metadata(self, ds, name: str) -> None:
        """Validate the dataset's shape, type and links to other files; set the reader's facts."""
        where = f"{self.path}"
        self.dataset_name = name
        if ds.ndim != 2:
            shape = " x ".join(str(n) for n in ds.shape) or "scalar"
            raise UnsupportedInputError(f"dataset {name!r} has {ds.ndim} dimensions ({shape}); "
                                        "expected 2", where)
        if not self.allow_external:
            if ds.is_virtual:
                raise UnsafeInputError(f"dataset {name!r} is a virtual dataset (it reads other "
                                       "files); refused (use {option:allow_external})", where)
            if ds.external:
                raise UnsafeInputError(f"dataset {name!r} keeps its data in external files; "
                                       "refused (use {option:allow_external})", where)
        attrs = ds.attrs
        encoding = attrs.get(PACKED_ENCODING_ATTR)
        if isinstance(encoding, bytes):
            encoding = encoding.decode()
        rows, cols = (int(n) for n in ds.shape)
        unsigned = ds.dtype.kind == "u" and ds.dtype.itemsize in (1, 2)
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
        elif unsigned:
            # Any byte order: HDF5 converts big-endian values while reading into native buffers.
            self.shape, self.bits, self.packed = (rows, cols), ds.dtype.itemsize * 8, False
            self.dtype, self.kind = np.dtype(ds.dtype).newbyteorder("="), Kind.gray
        else:
            raise UnsupportedInputError(f"dataset {name!r} has dtype {dtype_name(ds.dtype)}; "
                                        "expected uint8, uint16, bool or a dragon-gpu packed mask",
                                        where)
        if rows < 1 or cols < 1:
            raise CorruptInputError(f"dataset {name!r} is empty ({rows} x {cols})", where)
        check_integer_layout(ds, name, where)
        self._stored_shape = (rows, cols)
        self._storage_dtype = ds.dtype
        self._external_raw = bool(ds.external)
        self._chunks = ds.chunks
        self.row_granularity = int(ds.chunks[0]) if ds.chunks else 1
        self._filters = filter_names(ds)

    def _check_storage(self, ds, name: str) -> None:
        """Check where the data lies before any of it is read.

        The contiguous block must lie inside the file and be written; chunks are checked by
        :func:`._hdf5_chunks.chunk_table`, which also keeps where each lies.
        """
        from h5py import h5d

        if ds.is_virtual or ds.external:
            return  # only with allow_external: the data lies in other files
        layout = ds.id.get_create_plist().get_layout()
        if layout == h5d.COMPACT:
            return  # the data lies in the object header, which HDF5 has already read
        size = os.path.getsize(ds.file.filename)
        where = self.path
        if not ds.chunks:
            need = int(np.prod(ds.shape)) * ds.dtype.itemsize
            offset = ds.id.get_offset()
            if offset is None:
                raise CorruptInputError(f"dataset {name!r} was never written (no data is stored)",
                                        where)
            if offset + need > size:
                raise CorruptInputError(
                    f"is truncated: dataset {name!r} needs bytes up to {offset + need}, the file "
                    f"has {size}", where)
            return
        self._chunk_table = _hdf5_chunks.chunk_table(ds, name, where, size)

    @property
    def unit_nbytes(self) -> int:
        """Decoded bytes of one row of chunks: HDF5 decodes whole chunks."""
        return self._unit_nbytes

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

    @property
    def tile_grid(self) -> tuple[int, int] | None:
        """Chunks in pixels when they are decoded here and narrower than the image, else None
        (full-width chunks are rows already; h5py's own path reads rows)."""
        if not self._parallel or self.seg_cols >= self.row_items:
            return None
        return self.seg_rows, self.seg_cols * 8 if self.packed else self.seg_cols

    @property
    def strip_rows(self) -> int | None:
        return self.seg_rows if self._parallel and self.seg_cols >= self.row_items else None

    def decode_segment(self, seg: Segment, dest: np.ndarray | None = None) -> np.ndarray:
        nbytes = seg.rows * seg.cols * self._itemsize
        try:
            table = self._chunk_table
            if table is not None:
                at, size, mask = (int(v) for v in table[seg.index])
                raw = pread_exact(self._fd, at, size, self.scratch(size, "raw"))
                data = _hdf5_chunks.unfilter(raw, self._filters_ids, mask, nbytes,
                                             self._itemsize, self.scratch)
                return self._native(data, seg, nbytes)
            info = self._ds.id.get_chunk_info_by_coord((seg.row0, seg.col0))
            if info.byte_offset is None:  # never written: the fill value
                data = self.scratch(nbytes, "fill").view(self.dtype)
                data[...] = self._fill
                return data.reshape(seg.rows, seg.cols)
            raw = pread_exact(self._fd, info.byte_offset, info.size, self.scratch(info.size, "raw"))
            data = _hdf5_chunks.unfilter(raw, self._filters_ids, info.filter_mask, nbytes,
                                         self._itemsize, self.scratch)
        except Exception as exc:
            raise CorruptInputError(
                f"chunk at row {seg.row0}, column {seg.col0} of {self.dataset_name!r} cannot be "
                f"decoded ({one_line(exc)})", self.path) from None
        return self._native(data, seg, nbytes)

    def _native(self, data: np.ndarray, seg: Segment, nbytes: int) -> np.ndarray:
        """Decoded chunk bytes as native-order values of shape (rows, cols)."""
        stored = data.view(np.uint8 if self._storage_dtype == np.bool_ else self._storage_dtype)
        stored = stored.reshape(seg.rows, seg.cols)
        if stored.dtype == self.dtype:
            return stored
        # Big-endian values: swapped into native order through this thread's second buffer.
        native = self.scratch(nbytes, "b").view(self.dtype).reshape(seg.rows, seg.cols)
        np.copyto(native, stored)
        return native

    def read_rows(self, row_start, row_stop, out=None):
        if self._parallel:
            return SegmentedReader.read_rows(self, row_start, row_stop, out)
        out = self._check_range(row_start, row_stop, out)
        if row_start == row_stop:
            return out
        target = out.view(np.bool_) if self._storage_dtype == np.bool_ else out
        try:
            self._ds.read_direct(target, np.s_[row_start:row_stop, :])
        except Exception as exc:
            raise CorruptInputError(f"rows {row_start}-{row_stop} of {self.dataset_name!r} cannot "
                                    f"be read ({one_line(exc)})", self.path) from None
        return out

    def close(self):
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        try:
            self._file.close()
        except Exception:  # pragma: no cover - closing a damaged file
            pass
