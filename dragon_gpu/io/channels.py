"""One plane (channel, z, t) of a multi-dimensional TIFF or HDF5 image, named by a selector.

* (OME-)TIFF: the planes of a series are pages (tifffile's ``series`` knows the axes, from OME-XML
  or tifffile's own metadata); the selected page is read by :class:`~.tiff.TiffReader`, with every
  guarantee of a single-page file. ``#series=N`` picks the series of a multi-series file.
* HDF5: an N-D dataset (``(c, rows, cols)`` and the like) is read one plane at a time through
  h5py's hyperslab selection, whole chunks decoded by HDF5 into a chunk cache that holds one row
  of chunks. Axis names come from the dataset's dimension labels (``ds.dims[i].label``); an
  unlabelled 3-D dataset's axes are ``c, y, x``.

See :mod:`.selector` for the syntax.
"""

from __future__ import annotations

import os

import numpy as np

from ..errors import (CorruptInputError, InputError, UnsafeInputError, UnsupportedInputError,
                      one_line)
from .base import Kind
from ._hdf5_meta import check_integer_layout, dtype_name, filter_names, listing_of, open_object
from .hdf5 import Hdf5Reader
from .selector import Selection, describe_axes, plane_index


def open_tiff_plane(path: str, selection: Selection):
    """A :class:`~.tiff.TiffReader` of the page that holds the selected plane."""
    import tifffile

    from .tiff import TiffReader, strict_tifffile, walk_ifds

    walk_ifds(path)  # the IFD chain is sound before tifffile follows it
    try:
        with strict_tifffile(), tifffile.TiffFile(path, is_ndpi=False) as tif:
            series_list = tif.series
            n = selection.series or 0
            if not 0 <= n < len(series_list):
                raise UnsupportedInputError(f"has {len(series_list)} series; #series={n} does not "
                                            "exist", path)
            series = series_list[n]
            axes = [a.lower() for a in series.axes]
            shape = tuple(int(s) for s in series.shape)
            if "s" in axes:
                raise UnsupportedInputError(
                    f"series {n} has samples a pixel (axes {describe_axes(axes, shape)}); "
                    "expected one grayscale channel a page", path)
            if axes[-2:] != ["y", "x"]:
                raise UnsupportedInputError(f"series {n} has axes {describe_axes(axes, shape)}; "
                                            "expected rows and columns (y, x) last", path)
            plane = plane_index(axes, shape, selection, path)
            flat = int(np.ravel_multi_index(plane, shape[:-2])) if plane else 0
            pages = series.pages
            page = pages[flat] if flat < len(pages) else None
            if page is None:
                raise CorruptInputError(f"plane {flat} of series {n} has no page", path)
            index = page.index
    except InputError:
        raise
    except Exception as exc:
        raise CorruptInputError(f"not a readable TIFF file ({one_line(exc)})", path) from None
    if not isinstance(index, int):
        raise UnsupportedInputError(f"plane {flat} of series {n} is a sub-IFD; expected a page",
                                    path)
    reader = TiffReader(path, page=index)
    facts = {"series": n, "axes": describe_axes(axes, shape),
             "plane": ", ".join(f"{a}={i}" for a, i in zip(axes, plane)) or None}
    plain = reader.describe
    reader.describe = lambda: {**plain(), **facts}
    return reader


class Hdf5PlaneReader(Hdf5Reader):
    """Rows of one 2-D plane of an N-D HDF5 dataset (see the module docstring)."""

    def __init__(self, path: str, selection: Selection, dataset: str | None = None,
                 allow_external: bool = False):
        self.selection = selection
        super().__init__(path, dataset=dataset, allow_external=allow_external)

    def _resolve(self, dataset):
        if dataset is not None:
            return super()._resolve(dataset)
        import h5py

        found = []

        def visit(name, obj):
            if isinstance(obj, h5py.Dataset) and obj.ndim >= 3:
                found.append("/" + name)

        self._file.visititems(visit)  # hard links only: external links are never followed
        if len(found) != 1:
            what = f"{len(found)} datasets of 3 or more dimensions"
            listing = f" ({listing_of(sorted(found))})" if found else ""
            raise UnsupportedInputError(f"has {what}{listing}; a plane selector needs one (name "
                                        "it with {option:dataset})", self.path)
        return found[0], found[0]

    def _read_metadata(self, ds, name: str) -> None:
        where = self.path
        self.dataset_name = name
        if ds.ndim < 3:
            raise UnsupportedInputError(f"dataset {name!r} has {ds.ndim} dimensions; a plane "
                                        "selector needs 3 or more", where)
        if not self.allow_external and (ds.is_virtual or ds.external):
            raise UnsafeInputError(f"dataset {name!r} reads other files; refused (use "
                                    "{option:allow_external})", where)
        shape = tuple(int(n) for n in ds.shape)
        labels = [d.label for d in ds.dims]
        if all(labels):
            self.axes = [str(a).lower() for a in labels]
        elif ds.ndim == 3:
            self.axes = ["c", "y", "x"]
        else:
            self.axes = [f"dim{i}" for i in range(ds.ndim - 2)] + ["y", "x"]
        self.plane = plane_index(self.axes, shape, self.selection, where)
        rows, cols = shape[-2:]
        if ds.dtype == np.bool_:
            self.bits, self.kind, self.dtype = 1, Kind.mask, np.dtype(np.uint8)
        elif ds.dtype.kind == "u" and ds.dtype.itemsize in (1, 2):
            self.bits, self.kind = ds.dtype.itemsize * 8, Kind.gray
            self.dtype = np.dtype(ds.dtype).newbyteorder("=")
        else:
            raise UnsupportedInputError(f"dataset {name!r} has dtype {dtype_name(ds.dtype)}; "
                                        "expected uint8, uint16 or bool", where)
        if rows < 1 or cols < 1:
            raise CorruptInputError(f"dataset {name!r} is empty ({rows} x {cols})", where)
        check_integer_layout(ds, name, where)
        self.shape, self.packed = (rows, cols), False
        self._full_shape = shape
        self._stored_shape = (rows, cols)
        self._storage_dtype = ds.dtype
        self._chunks = ds.chunks
        self.row_granularity = int(ds.chunks[-2]) if ds.chunks else 1

        self._filters = filter_names(ds)

    def _open_dataset(self, open_path: str, name: str) -> None:
        import h5py

        self._read_metadata(open_object(self._file, open_path), name)
        chunks = self._chunks
        item = self._storage_dtype.itemsize
        chunk_nbytes = int(np.prod(chunks)) * item if chunks else 0
        across = -(-self.width // chunks[-1]) if chunks else 0
        self._unit_nbytes = (chunk_nbytes * across if chunks
                             else self.row_granularity * self.row_nbytes)
        dapl = h5py.h5p.create(h5py.h5p.DATASET_ACCESS)
        dapl.set_chunk_cache(max(521, 2 * across + 1),
                             max(1 << 20, chunk_nbytes * (across + 1)), 1.0)
        self._ds = h5py.Dataset(h5py.h5d.open(self._file.id, open_path.encode(), dapl))
        self._chunk_table = None
        self._parallel = False
        self._check_nd_storage(name, chunk_nbytes)

    def _check_nd_storage(self, name: str, chunk_nbytes: int) -> None:
        """Every chunk stored, inside the file, and no larger than an encoder writes."""
        ds = self._ds
        if ds.is_virtual or ds.external:
            return
        size = os.path.getsize(ds.file.filename)
        where = self.path
        if not ds.chunks:
            offset = ds.id.get_offset()
            need = int(np.prod(ds.shape)) * ds.dtype.itemsize
            if offset is None or offset + need > size:
                raise CorruptInputError(f"is truncated: dataset {name!r} needs {need} bytes "
                                        f"from byte {offset}, the file has {size}", where)
            return
        expected = int(np.prod([-(-n // c) for n, c in zip(ds.shape, ds.chunks)]))
        limit = chunk_nbytes + chunk_nbytes // 64 + 1024
        bad = []

        def visit(info) -> None:
            if info.byte_offset + info.size > size or info.size > limit or info.size == 0:
                bad.append(info)

        ds.id.chunk_iter(visit)
        if bad:
            info = bad[0]
            raise CorruptInputError(f"the chunk at {tuple(info.chunk_offset)} of {name!r} stores "
                                    f"{info.size} bytes at byte {info.byte_offset} (file: {size} "
                                    f"bytes, chunk: {chunk_nbytes}): truncated or damaged", where)
        stored = ds.id.get_num_chunks()
        if stored < expected:
            raise CorruptInputError(f"dataset {name!r} is incomplete: {expected - stored} of its "
                                    f"{expected} chunks were never written", where)

    def read_rows(self, row_start, row_stop, out=None):
        out = self._check_range(row_start, row_stop, out)
        if row_start == row_stop:
            return out
        target = out.view(np.bool_) if self._storage_dtype == np.bool_ else out
        sel = self.plane + (slice(row_start, row_stop), slice(None))
        try:
            self._ds.read_direct(target, np.s_[sel])
        except Exception as exc:
            raise CorruptInputError(f"rows {row_start}-{row_stop} of {self.dataset_name!r} cannot "
                                    f"be read ({one_line(exc)})", self.path) from None
        return out

    def describe(self) -> dict:
        facts = super().describe()
        facts["axes"] = describe_axes(self.axes, self._full_shape)
        facts["plane"] = ", ".join(f"{a}={i}" for a, i in zip(self.axes, self.plane)) or None
        facts["layout"] = (f"chunks of {' x '.join(map(str, self._chunks))}" if self._chunks
                           else "contiguous")
        return facts
