"""Zarr reader (zarr-python 3): v2 and v3 arrays and OME-Zarr images, local, zipped or over HTTP.

One 2-D plane of an array is read as row blocks. Plain chunks in a local folder (the common
layout) are read and decoded by the project's own path, :mod:`._zarr_chunks`, on the shared decode
pool; everything else is one chunk-aligned selection a block that zarr fetches and decodes with
its own concurrency (chunk reads are awaited together, codecs run on a thread pool) straight into
the block buffer. Either way nothing but the chunks of the block is held, and every key zarr asks
for passes the guard of :mod:`._zarr_store` first.

What is read:

* an array: the store itself, or ``dataset`` (a path inside it); a group without OME metadata
  must hold exactly one array, or ``dataset`` names it;
* an OME-Zarr image group: its full-resolution level (the first dataset of ``multiscales``), with
  its axes; ``#c=N,z=N,t=N`` selects the plane (:mod:`.selector`);
* an OME-Zarr label image (``IMAGE/labels/NAME``): a mask whose members are the labels > 0, or the
  one label ``#label=V``.
"""

from __future__ import annotations

import os

import numpy as np

from ..errors import CorruptInputError, InputError, MissingInputError, UnsupportedInputError
from . import ome
from ._decode import decode_workers
from ._segments import SegmentedReader
from ._zarr_store import ChunkCheck, GuardStats, guarded_store, open_store, safe_node_path
from .base import Kind
from .codecs import zarr_v3_names
from .selector import Selection, describe_axes, plane_index

#: Arrays listed in one error message.
MAX_LISTED = 8
#: Bytes of labels converted to a mask at once (labels may be 8 bytes a pixel).
LABEL_STEP_NBYTES = 16 << 20


def configure_concurrency() -> None:
    """Let zarr fetch and decode as many chunks at once as the decode pool has threads."""
    import zarr

    workers = decode_workers()
    zarr.config.set({"async.concurrency": max(16, 4 * workers),
                     "threading.max_workers": workers})


class ZarrReader(SegmentedReader):
    """Rows of one 2-D plane of a Zarr array.

    Parameters
    ----------
    location : str
        A folder, a ``.zip`` file or an ``http(s)://`` URL of a Zarr store.
    dataset : str, optional
        Path of the array or image group inside the store.
    selection : Selection, optional
        The plane of an N-D array (``#c=1``), or the label of a label image.
    strict : bool
        Refuse absent chunks instead of reading them as the fill value.
    """

    def __init__(self, location: str, dataset: str | None = None,
                 selection: Selection | None = None, strict: bool = False):
        import zarr

        SegmentedReader.__init__(self)
        configure_concurrency()
        self._chunk_files = None
        self.path = str(location)
        self.selection = selection or Selection()
        self.strict = strict
        self._stats = GuardStats()
        self._checks: list[ChunkCheck] = []
        store, self._local_root, self._store_kind = open_store(self.path, self.path)
        self._store = guarded_store(store, self.path, self._checks, strict, self._local_root,
                                    self._stats)
        try:
            node = safe_node_path(dataset, self.path, "dataset") if dataset else ""
            self._resolve(zarr, node)
            self._read_array_facts()
        except InputError:
            self.close()
            raise
        except Exception as exc:
            self.close()
            raise CorruptInputError(f"not a readable Zarr store ({type(exc).__name__}: "
                                    f"{_first_line(exc)})", self.path) from None

    # -- finding the array ---------------------------------------------------------------------
    def _open(self, zarr, node: str):
        try:
            return zarr.open(store=self._store, path=node or None, mode="r")
        except (FileNotFoundError, KeyError) as exc:
            raise MissingInputError(f"has no Zarr array or group at {node or '/'!r} "
                                    f"({_first_line(exc)})", self.path) from None

    def _resolve(self, zarr, node: str) -> None:
        obj = self._open(zarr, node)
        self.ome_image = None
        self.labels: list[str] = []
        self.node = node
        if isinstance(obj, zarr.Group):
            attrs = dict(obj.attrs)
            image = ome.parse_image(attrs, self.path)
            if image is not None:
                self.ome_image = image
                self.labels = self._label_names(obj)
                node = "/".join(p for p in (node, image.dataset_paths[0]) if p)
                obj = self._open(zarr, node)
                if not isinstance(obj, zarr.Array):
                    raise CorruptInputError(f"multiscales dataset {node!r} is not an array",
                                            self.path)
            else:
                node, obj = self._only_array(obj, node)
        self.array_path = node
        self._array = obj

    def _label_names(self, group) -> list[str]:
        try:
            labels = group["labels"]
        except (KeyError, FileNotFoundError):
            return []
        return ome.label_names(dict(labels.attrs), self.path)

    def _only_array(self, group, node: str):
        import zarr

        found = []
        for name, member in group.members(max_depth=None):
            if isinstance(member, zarr.Array):
                found.append(("/".join(p for p in (node, name) if p), member))
        if len(found) == 1:
            return found[0]
        names = sorted(n for n, _ in found)
        if not names:
            raise UnsupportedInputError("is a Zarr group without arrays", self.path)
        shown = ", ".join(names[:MAX_LISTED]) + (
            f" and {len(names) - MAX_LISTED} more" if len(names) > MAX_LISTED else "")
        raise UnsupportedInputError(f"has {len(names)} Zarr arrays ({shown}); name one with "
                                    "{option:dataset}", self.path)

    # -- the array ----------------------------------------------------------------------------
    def _read_array_facts(self) -> None:
        arr = self._array
        where = self.path
        meta = arr.metadata
        self.zarr_format = int(meta.zarr_format)
        dtype = np.dtype(arr.dtype)
        shape = tuple(int(n) for n in arr.shape)
        if len(shape) < 2:
            raise UnsupportedInputError(f"array {self.array_path or '/'!r} has {len(shape)} "
                                        "dimension(s); expected an image of 2 or more", where)
        self.axes = self._axis_names(len(shape))
        is_label = bool(self.ome_image and self.ome_image.is_label)
        if self.selection.label is not None and not is_label:
            raise UnsupportedInputError("#label= selects a label value, but this is not an "
                                        "OME-Zarr label image (IMAGE/labels/NAME)", where)
        channels = self.ome_image.channels if self.ome_image else []
        self.plane = plane_index(self.axes, shape, self.selection, where, channels)
        rows, cols = shape[-2:]
        if rows < 1 or cols < 1:
            raise CorruptInputError(f"array {self.array_path or '/'!r} is empty ({rows} x {cols})",
                                    where)
        self._is_label = is_label
        if is_label:
            if dtype.kind not in "ui":
                raise UnsupportedInputError(f"label image has dtype {dtype}; expected integers",
                                            where)
            self.bits, self.kind = 1, Kind.mask
            self.dtype = np.dtype(np.uint8)
        elif dtype == np.bool_:
            self.bits, self.kind, self.dtype = 1, Kind.mask, np.dtype(np.uint8)
        elif dtype.kind == "u" and dtype.itemsize in (1, 2):
            self.bits, self.kind = dtype.itemsize * 8, Kind.gray
            self.dtype = dtype.newbyteorder("=")
        else:
            raise UnsupportedInputError(f"array {self.array_path or '/'!r} has dtype {dtype}; "
                                        "expected uint8, uint16 or bool", where)
        self.packed = False
        self.shape = (rows, cols)
        self._stored_dtype = dtype
        inner = tuple(int(c) for c in (arr.chunks or shape))
        shards = getattr(arr, "shards", None)
        self._shards = tuple(int(c) for c in shards) if shards else None
        self._inner = inner
        self.row_granularity = min(inner[-2], rows)
        self._fill = arr.fill_value
        codecs = _codec_names(meta)
        self._codecs = codecs
        self._add_check(meta, inner, dtype)
        self._use_chunk_files(meta, dtype)

    def _use_chunk_files(self, meta, dtype) -> None:
        """Take the project's decode path where the layout allows (see :mod:`._zarr_chunks`)."""
        from ._zarr_chunks import ChunkFiles, plain_codec

        if self._store_kind != "folder" or self._shards or self._is_label:
            return
        codec = plain_codec(meta, dtype)
        if codec is None:
            return
        folder = os.path.join(self._local_root, *self.array_path.split("/")) if \
            self.array_path else self._local_root
        for top, dirs, files in os.walk(folder):
            for name in dirs + files:
                if os.path.islink(os.path.join(top, name)):
                    rel = os.path.relpath(os.path.join(top, name), self._local_root)
                    from ..errors import UnsafeInputError

                    raise UnsafeInputError(f"{rel!r} is a symbolic link; refused", self.path)
        self._chunk_files = ChunkFiles(self, folder, codec)
        self.seg_rows, self.seg_cols = self._inner[-2], self._inner[-1]

    def _axis_names(self, ndim: int) -> list[str]:
        if self.ome_image and len(self.ome_image.axes) == ndim:
            return list(self.ome_image.axes)
        names = getattr(self._array.metadata, "dimension_names", None)
        if names and all(names) and len(names) == ndim:
            return [str(n) for n in names]
        if ndim == 3:
            return ["c", "y", "x"]
        return [f"dim{i}" for i in range(ndim - 2)] + ["y", "x"]

    def _add_check(self, meta, inner, dtype) -> None:
        decoded = int(np.prod(inner)) * dtype.itemsize
        outer, tail = _outer_codec(meta)
        self._checks.append(ChunkCheck(self.array_path, decoded, outer, tail,
                                       self._shards is not None))

    @property
    def unit_nbytes(self) -> int:
        """Decoded bytes of one row of chunks (every channel a chunk spans included)."""
        across = -(-self.width // self._inner[-1])
        return int(np.prod(self._inner)) * self._stored_dtype.itemsize * across

    # -- reading ------------------------------------------------------------------------------
    def decode_segment(self, seg, dest=None):
        return self._chunk_files.decode(seg, self.scratch)

    def read_rows(self, row_start, row_stop, out=None):
        if self._chunk_files is not None:
            return SegmentedReader.read_rows(self, row_start, row_stop, out)
        out = self._check_range(row_start, row_stop, out)
        if row_start == row_stop:
            return out
        try:
            if self._is_label:
                self._read_labels(row_start, row_stop, out)
            else:
                self._read_into(row_start, row_stop, out)
        except InputError:
            raise
        except Exception as exc:
            raise CorruptInputError(f"rows {row_start}-{row_stop} of {self.array_path or '/'!r} "
                                    f"cannot be read ({type(exc).__name__}: {_first_line(exc)})",
                                    self.path) from None
        return out

    def _read_into(self, r0: int, r1: int, out: np.ndarray) -> None:
        from zarr.core.buffer.cpu import NDBuffer

        sel = self.plane + (slice(r0, r1), slice(None))
        if self._stored_dtype == np.bool_:
            target = out.view(np.bool_)
        elif self._stored_dtype != self.dtype:  # big-endian values: read, then swap
            out[...] = np.asarray(self._array.get_basic_selection(sel))
            return
        else:
            target = out
        self._array.get_basic_selection(sel, out=NDBuffer.from_numpy_array(target))

    def _read_labels(self, r0: int, r1: int, out: np.ndarray) -> None:
        step = max(self.row_granularity,
                   LABEL_STEP_NBYTES // (self.width * self._stored_dtype.itemsize)
                   // self.row_granularity * self.row_granularity)
        wanted = self.selection.label
        for a in range(r0, r1, step):
            b = min(r1, a + step)
            labels = np.asarray(self._array.get_basic_selection(self.plane + (slice(a, b),
                                                                             slice(None))))
            dest = out[a - r0:b - r0].view(np.bool_)
            if wanted is None:
                np.greater(labels, 0, out=dest)
            else:
                np.equal(labels, wanted, out=dest)

    # -- facts ----------------------------------------------------------------------------------
    def absent_chunks(self) -> int:
        """Chunks (or shards) found absent so far, each counted once."""
        return len(self._stats.missing)

    def warnings(self, role: str, rule) -> list[str]:
        n = self.absent_chunks()
        if not n:
            return []
        fill = self._fill_value()
        counted = bool(rule.members(np.array([fill], dtype=self.dtype))[0])
        unit = ("shard" if self._shards else "chunk") + ("s" if n != 1 else "")
        verb = "were" if n != 1 else "was"
        return [f"{self.path}: {n} {unit} of the {role} image {verb} absent and read as the fill "
                f"value {fill}, which counts as {'' if counted else 'not '}{role} (--strict "
                "refuses absent chunks)"]

    def _fill_value(self) -> int:
        value = self._fill
        if value is None:
            return 0
        value = np.asarray(value).item()
        if self._is_label:
            wanted = self.selection.label
            return int(value == wanted) if wanted is not None else int(value > 0)
        return int(value)

    def describe(self) -> dict:
        inner = self._inner
        layout = f"chunks of {' x '.join(map(str, inner))}"
        if self._shards:
            layout += f" in shards of {' x '.join(map(str, self._shards))}"
        facts = {
            "format": (f"OME-Zarr {self.ome_image.version} (Zarr v{self.zarr_format})"
                       if self.ome_image else f"Zarr v{self.zarr_format}"),
            "store": self._store_kind,
            "array": self.array_path or "/",
            "storage_dtype": str(self._stored_dtype),
            "encoding": str(self._stored_dtype),
            "axes": describe_axes(self.axes, self._array.shape),
            "plane": ", ".join(f"{n}={i}" for n, i in zip(self.axes, self.plane)) or None,
            "layout": layout,
            "compression": "+".join(self._codecs) or "none",
            "decode_path": ("dragon-gpu (imagecodecs on the decode pool)" if self._chunk_files
                            else "zarr-python"),
            "fill_value": self._fill_value(),
            "stored_bytes": self._stored_bytes(),
        }
        if self.ome_image:
            facts["levels"] = self.ome_image.levels
            facts["channels"] = ", ".join(self.ome_image.channels) or None
            facts["labels"] = ", ".join(self.labels) or None
            if self._is_label:
                facts["label_rule"] = ("label > 0" if self.selection.label is None
                                       else f"label == {self.selection.label}")
        return facts

    def _stored_bytes(self) -> int | None:
        """Bytes the array's chunks store (listed; None where the store cannot list)."""
        from zarr.core.sync import sync

        async def total() -> int:
            n = 0
            prefix = (self.array_path + "/") if self.array_path else ""
            async for key in self._store.list_prefix(prefix):
                if key.rsplit("/", 1)[-1] not in ("zarr.json", ".zarray", ".zattrs"):
                    n += await self._store.getsize(key)
            return n

        if self._store_kind == "http":
            return None
        try:
            return int(sync(total()))
        except Exception:  # pragma: no cover - a store that cannot list
            return None

    def close(self) -> None:
        store = getattr(self, "_store", None)
        if store is not None:
            try:
                store.close()
            except Exception:  # pragma: no cover - closing a damaged store
                pass
            self._store = None


def _codec_names(meta) -> list[str]:
    names = []
    if meta.zarr_format == 2:
        for f in (meta.filters or ()):
            names.append(str(f.codec_id))
        if meta.compressor is not None:
            names.append(str(meta.compressor.codec_id))
        return names
    for codec in meta.codecs:
        names.append(_v3_name(codec))
    return names


def _v3_name(codec) -> str:
    name = type(codec).__name__
    from zarr.codecs import ShardingCodec

    if isinstance(codec, ShardingCodec):
        inner = "+".join(_v3_name(c) for c in codec.codecs)
        return f"sharding({inner})"
    known = {"BytesCodec": "bytes", "TransposeCodec": "transpose", "Crc32cCodec": "crc32c",
             **zarr_v3_names()}
    return known.get(name, getattr(codec, "codec_name", name))


def _outer_codec(meta) -> tuple[str | None, int]:
    """(name of the codec whose stream a stored chunk is, bytes of checksum after it)."""
    if meta.zarr_format == 2:
        comp = meta.compressor
        cid = getattr(comp, "codec_id", None)
        return ({"zstd": "zstd", "blosc": "blosc", "gzip": "gzip", "zlib": "zlib"}.get(cid), 0)
    from zarr.codecs import ShardingCodec

    codecs = list(meta.codecs)
    if codecs and isinstance(codecs[-1], ShardingCodec) and len(codecs) == 1:
        codecs = list(codecs[-1].codecs)
    tail = 0
    while codecs and type(codecs[-1]).__name__ == "Crc32cCodec":
        codecs.pop()
        tail += 4
    if not codecs:
        return None, tail
    name = _v3_name(codecs[-1])
    return (name if name in ("zstd", "blosc", "gzip") else None), tail


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def open_zarr(location: str, *, dataset=None, selection=None, strict=False) -> ZarrReader:
    """Open a Zarr store as a :class:`ZarrReader` (see its parameters)."""
    return ZarrReader(os.fspath(location), dataset=dataset, selection=selection, strict=strict)
