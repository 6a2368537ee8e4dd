"""Parallel decoding of HDF5 chunks without h5py's global lock.

h5py serialises every call behind one lock, so reading a compressed dataset through it uses one
core. Here the chunk index is asked for each chunk's byte range (cheap, under the lock), and the
bytes are read with ``os.pread`` and un-filtered with imagecodecs on the decode pool. Filter
pipelines made only of the filters the codec table decodes (and shuffle) are decoded this way;
any other falls back to h5py.
"""

from __future__ import annotations

import numpy as np

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
