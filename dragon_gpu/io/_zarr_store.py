"""Opening a Zarr store defensively: local folder, ``.zip`` or HTTP(S), behind a guard.

The guard (:class:`GuardedStore`) sits between zarr-python and the store. It sees every key zarr
asks for, so it can

* count the chunks that are absent (Zarr reads them as the fill value) and refuse them under
  ``strict``;
* refuse keys that would leave the store (``..``, absolute paths) and, in a local folder, files
  reached through a symbolic link;
* check a chunk's stored bytes against what they can decode to before zarr decodes them: a zstd
  or blosc header declaring more bytes than the chunk holds, a gzip/zlib stream that inflates past
  it, or more stored bytes than any encoder writes, is refused (a decompression bomb).
"""

from __future__ import annotations

import os
import struct
import threading
import zlib

from ..errors import CorruptInputError, MissingInputError, UnsafeInputError
from .selector import is_url

_METADATA_NAMES = ("zarr.json", ".zarray", ".zgroup", ".zattrs", ".zmetadata")
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


def looks_like_zarr(path: str) -> bool:
    """True for a folder holding Zarr metadata, or a zip file whose members include it."""
    if os.path.isdir(path):
        return any(os.path.isfile(os.path.join(path, n)) for n in _METADATA_NAMES[:3])
    return False


def zip_holds_zarr(path: str) -> bool:
    """True when the zip file at ``path`` holds Zarr metadata at its top level or one below."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as zf:
            for name in zf.namelist()[:10000]:
                parts = name.strip("/").split("/")
                if parts[-1] in _METADATA_NAMES[:3] and len(parts) <= 2:
                    return True
    except (zipfile.BadZipFile, OSError, ValueError):
        return False
    return False


def safe_node_path(path: str, where: str, what: str) -> str:
    """``path`` (from metadata) if it stays inside the store, else :class:`UnsafeInputError`."""
    text = str(path)
    parts = text.replace("\\", "/").split("/")
    if (text.startswith(("/", "\\")) or ":" in text or ".." in parts or "\x00" in text
            or not text.strip("/")):
        raise UnsafeInputError(f"{what} {text!r} points outside the store (absolute path, '..' "
                               "or a URL); refused", where)
    return "/".join(p for p in parts if p not in ("", "."))


class ChunkCheck:
    """What a chunk of one array may hold: its decoded size and the codec that stores it."""

    def __init__(self, prefix: str, decoded_nbytes: int, outer: str | None, crc_tail: int,
                 sharded: bool):
        self.prefix = prefix.strip("/")
        self.decoded_nbytes = decoded_nbytes
        self.outer = outer           # "zstd", "blosc", "gzip", "zlib" or None (other / none)
        self.crc_tail = crc_tail     # bytes of checksum after the stream (crc32c codecs)
        self.sharded = sharded

    def is_chunk_key(self, key: str) -> bool:
        name = key.rsplit("/", 1)[-1]
        inside = not self.prefix or key.startswith(self.prefix + "/")
        return inside and name not in _METADATA_NAMES

    def check(self, key: str, data: bytes | memoryview, where: str) -> None:
        """Refuse ``data`` (the stored bytes of chunk ``key``) that cannot be an honest chunk."""
        n = len(data)
        limit = self.decoded_nbytes
        if n > 2 * limit + 4096:
            raise CorruptInputError(f"chunk {key!r} stores {n} bytes for {limit} decoded bytes, "
                                    "more than any encoder writes", where)
        body = memoryview(data)[:n - self.crc_tail] if self.crc_tail else memoryview(data)
        declared = None
        if self.outer == "zstd":
            declared = _zstd_content_size(body)
        elif self.outer == "blosc" and len(body) >= 16:
            declared = struct.unpack_from("<I", body, 4)[0]
        elif self.outer in ("gzip", "zlib"):
            declared = _inflated_size(body, limit, gzip=self.outer == "gzip")
        if declared is not None and declared > limit:
            raise CorruptInputError(
                f"chunk {key!r} decodes to more than its {limit} bytes ({self.outer} stream of "
                f"{n} bytes): damaged, or a decompression bomb", where)


def _zstd_content_size(data: memoryview) -> int | None:
    """The content size a zstd frame header declares (None when it declares none)."""
    if len(data) < 6 or bytes(data[:4]) != _ZSTD_MAGIC:
        return None
    fhd = data[4]
    fcs_flag, single, dict_flag = fhd >> 6, (fhd >> 5) & 1, fhd & 3
    pos = 5 + (0 if single else 1) + (0, 1, 2, 4)[dict_flag]
    size = (1 if single else 0, 2, 4, 8)[fcs_flag]
    if size == 0 or len(data) < pos + size:
        return None
    value = int.from_bytes(bytes(data[pos:pos + size]), "little")
    return value + 256 if size == 2 else value


def _inflated_size(data: memoryview, limit: int, gzip: bool) -> int | None:
    """Bytes a deflate stream inflates to, counted up to ``limit + 1`` (bounded: never more)."""
    d = zlib.decompressobj(31 if gzip else 15)
    try:
        out = d.decompress(data, limit + 1)
    except zlib.error:
        return None  # zarr's decoder reports the damage
    return len(out)


class GuardStats:
    """Chunks found absent while reading (shared by the guard's copies)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.missing: set[str] = set()


def guarded_store(store, where: str, check: "list[ChunkCheck]", strict: bool,
                  local_root: str | None, stats: GuardStats):
    """``store`` wrapped by the guard described in the module docstring."""
    from zarr.storage import WrapperStore

    class GuardedStore(WrapperStore):
        async def get(self, key, prototype, byte_range=None):
            name = safe_node_path(key, where, "key")
            if local_root is not None:
                _refuse_links(local_root, name, where)
            chunk = next((c for c in check if c.is_chunk_key(name)), None)
            try:
                value = await self._store.get(key, prototype, byte_range)
            except OSError as exc:
                raise MissingInputError(f"{key!r} cannot be read ({exc})", where) from None
            if chunk is None:
                return value
            if value is None:
                if strict:
                    raise CorruptInputError(f"chunk {key!r} is absent (--strict refuses chunks "
                                            "read as the fill value)", where)
                with stats.lock:
                    stats.missing.add(key)
                return value
            if not chunk.sharded or _is_inner_chunk(byte_range):
                chunk.check(key, value.as_numpy_array().data, where)
            return value

    return GuardedStore(store)


def _is_inner_chunk(byte_range) -> bool:
    """A ranged get of a shard is an inner chunk unless it reads the shard's index."""
    from zarr.abc.store import RangeByteRequest

    return isinstance(byte_range, RangeByteRequest) and byte_range.start > 0


def _refuse_links(root: str, key: str, where: str) -> None:
    path = root
    for part in key.split("/"):
        path = os.path.join(path, part)
        if os.path.islink(path):
            raise UnsafeInputError(f"{key!r} is reached through a symbolic link; refused", where)


def open_store(location: str, where: str):
    """(store, local_root or None, kind) for a folder, a ``.zip`` file or an HTTP(S) URL."""
    from zarr.storage import FsspecStore, LocalStore, ZipStore

    if is_url(location):
        try:
            return FsspecStore.from_url(location.rstrip("/"), read_only=True), None, "http"
        except Exception as exc:
            raise MissingInputError(f"cannot be opened ({type(exc).__name__}: {exc})",
                                    where) from None
    if os.path.isdir(location):
        if os.path.islink(location.rstrip("/")):
            location = os.path.realpath(location)
        return LocalStore(location, read_only=True), os.path.abspath(location), "folder"
    try:
        return ZipStore(location, mode="r"), None, "zip"
    except Exception as exc:
        raise CorruptInputError(f"not a readable zip file ({type(exc).__name__}: {exc})",
                                where) from None
