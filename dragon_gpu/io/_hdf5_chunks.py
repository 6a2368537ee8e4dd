"""Parallel decoding of HDF5 chunks without h5py's global lock.

h5py serialises every call behind one lock, so reading a compressed dataset through it uses one
core. Here the chunk index is asked for each chunk's byte range (cheap, under the lock), and the
bytes are read with ``os.pread`` and un-filtered with imagecodecs on the decode pool. Filter
pipelines made only of the filters the codec table decodes (and shuffle) are decoded this way;
any other falls back to h5py.
"""

from __future__ import annotations

import array

import numpy as np

from ..errors import CorruptInputError
from .codecs import HDF5_SHUFFLE, hdf5_codec, hdf5_decodable

#: HDF5 filter ids undone here (in reverse order of the pipeline).
_DECODABLE = hdf5_decodable()


def filter_ids(ds) -> list[int]:
    plist = ds.id.get_create_plist()
    return [plist.get_filter(i)[0] for i in range(plist.get_nfilters())]


def can_decode(ds) -> bool:
    """True when every chunk of ``ds`` can be read by byte range and decoded here."""
    if ds.chunks is None or ds.is_virtual or ds.external:
        return False
    return all(f in _DECODABLE for f in filter_ids(ds))


def unfilter(raw: np.ndarray, filters: list[int], mask: int, nbytes: int, itemsize: int,
             scratch) -> np.ndarray:
    """Undo the filter pipeline of one chunk; returns ``nbytes`` bytes (a view of scratch).

    ``mask`` has bit ``i`` set when filter ``i`` was skipped for this chunk (HDF5 skips an
    optional filter that would not shrink it). Every decompressor writes into a buffer of
    exactly ``nbytes``, so a chunk that claims to expand further is an error, not an allocation.
    """
    data = raw
    slot = 0
    for i in reversed(range(len(filters))):
        if mask & (1 << i):
            continue
        fid = filters[i]
        if fid == HDF5_SHUFFLE:
            if itemsize > 1:
                if data.nbytes != nbytes:
                    raise ValueError(f"shuffled chunk has {data.nbytes} bytes, expected {nbytes}")
                out = scratch(nbytes, f"u{slot}")
                out.reshape(-1, itemsize)[...] = data.reshape(itemsize, -1).T
                data = out
                slot ^= 1
            continue
        codec = hdf5_codec(fid)
        if codec is None or codec.decode is None:  # pragma: no cover - excluded by can_decode
            raise ValueError(f"filter {fid} cannot be decoded here")
        out = scratch(nbytes, f"u{slot}")
        got = codec.decode(data, out=out)
        data = np.frombuffer(got, np.uint8) if not isinstance(got, np.ndarray) else got
        data = data.reshape(-1).view(np.uint8)
        slot ^= 1
    if data.nbytes < nbytes:
        raise ValueError(f"chunk decodes to {data.nbytes} bytes, expected {nbytes}")
    return data[:nbytes]


def _read_index(ds) -> tuple[np.ndarray, ...] | None:
    """(row, column, byte offset, stored bytes, filter mask) of every stored chunk, as int64
    arrays, from one pass over the chunk index (about a microsecond a chunk); None where HDF5
    is older than 1.14 and cannot walk it."""
    fields = [array.array("q") for _ in range(5)]
    r_add, c_add, at_add, size_add, mask_add = (f.append for f in fields)

    def visit(info) -> None:
        offset = info.chunk_offset
        r_add(offset[0])
        c_add(offset[1])
        at_add(info.byte_offset)
        size_add(info.size)
        mask_add(info.filter_mask)

    try:
        ds.id.chunk_iter(visit)
    except AttributeError:  # pragma: no cover - HDF5 older than 1.14
        return None
    return tuple(np.frombuffer(f, dtype=np.int64) for f in fields)


def _strays(r0, c0, rows_c: int, cols_c: int, rows: int, cols: int) -> np.ndarray:
    """Chunks a damaged index lists outside the image, misaligned, or twice (then some chunk of
    the image is missing, and HDF5 would hand back memory it never wrote for it)."""
    stray = (r0 % rows_c != 0) | (c0 % cols_c != 0) | (r0 < 0) | (r0 >= rows) | (c0 < 0) | (
        c0 >= cols)
    if not stray.any():
        linear = (r0 // rows_c) * -(-cols // cols_c) + c0 // cols_c
        order = np.sort(linear)
        repeated = order[1:] == order[:-1]
        if repeated.any():
            twice = int(order[1:][repeated][0])
            stray = linear == twice
    return stray


def chunk_table(ds, name: str, where: str, size: int) -> np.ndarray | None:
    """Where each chunk of ``ds`` lies, checked: ``(byte offset, stored bytes, filter mask)`` by
    index in row-major chunk order; None where HDF5 cannot walk the chunk index.

    Every chunk must lie inside the file of ``size`` bytes, be stored exactly once (a chunk
    never written reads as the fill value: the file is incomplete), and may not store more
    bytes than its decoded size plus codec overhead (which no writer produces; a decompression
    bomb does); otherwise :class:`CorruptInputError` for ``where``.
    """
    chunk_nbytes = int(np.prod(ds.chunks)) * ds.dtype.itemsize
    limit = chunk_nbytes + chunk_nbytes // 64 + 1024
    nfilters = ds.id.get_create_plist().get_nfilters()
    all_skipped = (1 << nfilters) - 1
    rows_c, cols_c = (int(c) for c in ds.chunks)
    rows, cols = (int(n) for n in ds.shape)
    expected = -(-rows // rows_c) * -(-cols // cols_c)
    index = _read_index(ds)
    if index is None:  # pragma: no cover - HDF5 older than 1.14
        stored = ds.id.get_num_chunks()
        if stored < expected:
            raise CorruptInputError(f"dataset {name!r} is incomplete: {expected - stored} of "
                                    f"its {expected} chunks were never written", where)
        return None
    r0, c0, at, nbytes, mask = index
    raw = (mask & all_skipped) == all_skipped if nfilters else np.ones(len(r0), bool)
    checks = [
        (_strays(r0, c0, rows_c, cols_c, rows, cols),
         "the chunk index of {name!r} lists a chunk at {at}, which is not a chunk of the image"),
        (at + nbytes > size, "is truncated: the chunk at {at} of {name!r} ends at byte {end}, "
                             "the file has {size}"),
        # HDF5 would fill the difference from memory it never wrote.
        (raw & (nbytes != chunk_nbytes), "the unfiltered chunk at {at} of {name!r} stores "
                                         "{n} bytes; its {chunk} pixel bytes need exactly "
                                         "that many"),
        (nbytes == 0, "the chunk at {at} of {name!r} stores no bytes"),
        (nbytes > limit, "the chunk at {at} of {name!r} stores {n} bytes for {chunk} decoded "
                         "bytes: damaged, or a decompression bomb"),
    ]
    for bad, text in checks:
        if bad.any():
            i = int(np.argmax(bad))
            raise CorruptInputError(text.format(
                name=name, at=(int(r0[i]), int(c0[i])), end=int(at[i] + nbytes[i]), size=size,
                n=int(nbytes[i]), chunk=chunk_nbytes), where)
    if len(r0) < expected:
        raise CorruptInputError(
            f"dataset {name!r} is incomplete: {expected - len(r0)} of its {expected} chunks "
            "were never written", where)
    # Every chunk is stored exactly once (checked above): keep where each lies, so decoding asks
    # HDF5 nothing more.
    linear = (r0 // rows_c) * -(-cols // cols_c) + c0 // cols_c
    table = np.empty((expected, 3), dtype=np.int64)
    table[linear] = np.stack([at, nbytes, mask], axis=1)
    return table
