"""What the HDF5 reader and the channel selector both need of an h5py object: opening it under
the external-file prefix already in use, its filters' names, its integer layout, and the names
of what it lists in messages."""

from __future__ import annotations

import numpy as np

from ..errors import UnsupportedInputError
from .codecs import hdf5_filter_name

#: Names listed in one error message.
MAX_LISTED = 8

#: HDF5's external-file prefix for a dataset with external raw storage: the HDF5 file's folder.
ORIGIN_PREFIX = b"${ORIGIN}"


def open_object(group, name: str):
    """``group[name]``, also when the dataset is already open under another external-file prefix.

    HDF5 shares one open dataset between every handle of a file (the same file opened twice, or
    reached again through a link or a virtual dataset) and refuses a second open whose access
    properties name another external-file prefix. The only prefix this module sets is
    :data:`ORIGIN_PREFIX` (on datasets with external raw storage), so that one is tried next.
    """
    import h5py

    try:
        return group[name]
    except KeyError as exc:
        if "external file prefix" not in str(exc):
            raise
    dapl = h5py.h5p.create(h5py.h5p.DATASET_ACCESS)
    dapl.set_efile_prefix(ORIGIN_PREFIX)
    return h5py.Dataset(h5py.h5d.open(group.id, name.encode(), dapl))


def filter_names(ds) -> list[str]:
    names = []
    try:
        plist = ds.id.get_create_plist()
        for i in range(plist.get_nfilters()):
            code, _flags, _values, name = plist.get_filter(i)
            names.append(hdf5_filter_name(code) or (name.decode(errors="replace")
                                                    if isinstance(name, bytes) else str(name)))
    except Exception:  # pragma: no cover - exotic plists
        pass
    return names


def check_integer_layout(ds, name: str, where: str) -> None:
    """Refuse integers that use only part of their bytes (HDF5 precision and bit offset).

    An HDF5 integer type may declare, say, 2 significant bits at offset 0 of a byte; HDF5 then
    masks every value it converts, while a reader of the raw bytes would not. No image writer
    does this, so it is refused rather than read two ways.
    """
    from h5py import h5t

    tid = ds.id.get_type()
    if isinstance(tid, h5t.TypeEnumID):
        tid = tid.get_super()
    if not isinstance(tid, h5t.TypeIntegerID):
        return
    bits = tid.get_size() * 8
    if tid.get_precision() != bits or tid.get_offset() != 0:
        raise UnsupportedInputError(
            f"dataset {name!r} stores {tid.get_precision()}-bit values at bit offset "
            f"{tid.get_offset()} of {bits}-bit integers; expected full-width integers", where)


def split_path(path: str) -> list[str]:
    return [p for p in path.split("/") if p not in ("", ".")]


def listing_of(names: list[str]) -> str:
    shown = ", ".join(names[:MAX_LISTED])
    return shown + (f" and {len(names) - MAX_LISTED} more" if len(names) > MAX_LISTED else "")


def dtype_name(dtype: np.dtype) -> str:
    if dtype.names:
        return "compound"
    kind = {"f": "float", "i": "signed integer", "c": "complex", "S": "string", "U": "string",
            "O": "object", "V": "opaque"}.get(dtype.kind)
    return f"{kind} ({dtype})" if kind else str(dtype)

