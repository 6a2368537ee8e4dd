"""Readers of body and dye images, behind one interface (:class:`MaskReader`).

:func:`open_mask` picks the reader by the file's first bytes (its magic number), not its suffix,
so a mislabelled file is read as what it is or refused with a clear message.
"""

from __future__ import annotations

import os
import stat
from typing import Callable

from ..errors import CorruptInputError, MissingInputError, UnsupportedInputError
from .base import Encoding, Kind, MaskReader, PixelRule, Polarity, default_threshold, resolve_rule
from .selector import is_url, split_selector

__all__ = ["Encoding", "Kind", "MaskReader", "PixelRule", "Polarity", "default_threshold",
           "open_mask", "resolve_rule", "sniff_format",
           "split_selector", "is_url"]

_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
_TIFF_MAGICS = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")
_ZIP_MAGIC = b"PK\x03\x04"


def _open_tiff(path, *, page=0, dataset=None, allow_external=False, selection=None, strict=False):
    if selection:
        from .channels import open_tiff_plane

        return open_tiff_plane(path, selection)
    from .tiff import TiffReader

    return TiffReader(path, page=page)


def _open_hdf5(path, *, page=0, dataset=None, allow_external=False, selection=None,
               strict=False):
    if selection:
        from .channels import Hdf5PlaneReader

        return Hdf5PlaneReader(path, selection, dataset=dataset, allow_external=allow_external)
    from .hdf5 import Hdf5Reader

    return Hdf5Reader(path, dataset=dataset, allow_external=allow_external)


def _open_zarr(path, *, page=0, dataset=None, allow_external=False, selection=None,
               strict=False):
    try:
        from .zarr import open_zarr
    except ImportError as exc:  # zarr is an optional extra
        raise UnsupportedInputError(f"is a Zarr store, but zarr-python is not installed "
                                    f"({exc.name}): pip install 'dragon-gpu[zarr]'",
                                    path) from None
    return open_zarr(path, dataset=dataset, selection=selection, strict=strict)


#: format name -> opener ``opener(path, *, page, dataset, allow_external, selection, strict)``;
#: a new format adds its opener here (and to :func:`sniff_format`) and subclasses the reader
#: conformance suite.
_OPENERS: dict[str, Callable[..., MaskReader]] = {"tiff": _open_tiff, "hdf5": _open_hdf5,
                                                   "zarr": _open_zarr}


def sniff_format(path: str) -> str:
    """``"tiff"``, ``"hdf5"`` or ``"zarr"`` from the file's content; raises :class:`InputError`.

    A folder holding ``zarr.json``, ``.zarray`` or ``.zgroup``, a zip file holding them, and an
    ``http(s)://`` URL are Zarr stores.
    """
    from ._zarr_store import looks_like_zarr, zip_holds_zarr

    path = os.fspath(path)
    if is_url(path):
        return "zarr"
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise MissingInputError("no such file", path) from None
    except OSError as exc:
        raise MissingInputError(f"cannot be read ({exc.strerror or exc})", path) from None
    if stat.S_ISDIR(mode):
        if looks_like_zarr(path):
            return "zarr"
        raise MissingInputError("is a directory, not an image file (nor a Zarr store: no "
                                "zarr.json, .zarray or .zgroup in it)", path)
    if not stat.S_ISREG(mode):
        # A FIFO or a device would block or never end; an image is a regular file.
        raise MissingInputError("is not a regular file (a pipe, socket or device?)", path)
    try:
        with open(path, "rb") as fh:
            head = fh.read(8)
    except OSError as exc:
        raise MissingInputError(f"cannot be read ({exc.strerror or exc})", path) from None
    if not head:
        raise CorruptInputError("is an empty file", path)
    if head[:4] in _TIFF_MAGICS:
        return "tiff"
    if head == _HDF5_MAGIC:
        return "hdf5"
    if head[:4] == _ZIP_MAGIC and zip_holds_zarr(path):
        return "zarr"
    # HDF5 may start at a user block of 512, 1024, ... bytes.
    size = os.path.getsize(path)
    with open(path, "rb") as fh:
        offset = 512
        while offset + 8 <= size:
            fh.seek(offset)
            if fh.read(8) == _HDF5_MAGIC:
                return "hdf5"
            offset *= 2
    raise UnsupportedInputError("is not a TIFF or HDF5 file, nor a Zarr store", path)


def open_mask(path, *, page: int = 0, dataset: str | None = None,
              allow_external: bool = False, strict: bool = False) -> MaskReader:
    """Open one image (or one plane of it) as a :class:`MaskReader`.

    Parameters
    ----------
    path : str or PathLike
        A TIFF or HDF5 file, a Zarr store (folder, ``.zip``, ``http(s)://`` URL), optionally
        followed by a plane selector ``#c=1,z=0`` (see :mod:`dragon_gpu.io.selector`).
    page : int
        TIFF page (IFD) index.
    dataset : str, optional
        HDF5 dataset path; without it the file's only 2-D dataset.
    allow_external : bool
        Let HDF5 read other files (external links, external storage, virtual datasets).
    strict : bool
        Refuse absent Zarr chunks instead of reading them as the fill value.
    """
    path, selection = split_selector(path)
    fmt = sniff_format(path)
    return _OPENERS[fmt](path, page=page, dataset=dataset, allow_external=allow_external,
                         selection=selection, strict=strict)
