"""What the GPU must inflate for one row block: segments, their framing and their filters.

The readers already know every strip, tile and chunk of a file (byte offset, stored size, codec,
predictor, shuffle, FillOrder). :func:`plan_input` turns an open reader into an
:class:`InputPlan`, or says why its codec stays on the CPU. :meth:`InputPlan.batch` lists the
segments that cover a block with where they go in a contiguous compressed buffer and in a
contiguous decoded buffer, and :func:`frame` reads each segment's framing (zlib header and
Adler-32 trailer, the HDF5 LZ4 filter's block table) from the bytes read into that buffer,
giving the entries one batched decode call inflates. Pure NumPy: no CuPy, no GPU.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

from ....errors import CorruptInputError
from ....io.codecs import HDF5_SHUFFLE, hdf5_codec

#: Every compressed and decoded entry starts at a multiple of this (nvCOMP's decode alignment
#: is at most 16 bytes for every codec used here).
ALIGN = 16

_REVERSE_BITS = np.array([int(f"{i:08b}"[::-1], 2) for i in range(256)], dtype=np.uint8)


def aligned(n):
    """``n`` rounded up to :data:`ALIGN` (ints or integer arrays)."""
    return -(-n // ALIGN) * ALIGN


@dataclass(frozen=True)
class InputPlan:
    """How the segments of one input decode on the GPU.

    Rows of the image are a grid of segments ``seg_rows`` rows by ``seg_row_bytes`` stored bytes;
    segment ``band * across + col`` covers rows ``band * seg_rows ...`` and row bytes
    ``col * seg_row_bytes ...`` (tiles and chunks may reach past the image; strips are as wide
    as the image and the last one holds only the rows left).
    """

    path: str
    fd: int
    codec: str                 # "deflate" (zlib streams), "zstd" or "lz4" (HDF5 LZ4 filter)
    offsets: np.ndarray        # int64 byte offset of each segment in the file
    counts: np.ndarray         # int64 stored bytes of each segment
    height: int
    row_bytes: int             # bytes of one delivered row
    seg_rows: int
    seg_row_bytes: int
    across: int
    full_segments: bool        # False for strips: the last one is short
    itemsize: int = 1
    predictor: bool = False    # TIFF horizontal differencing, per row of each segment
    swap: bool = False         # stored big-endian 16-bit values
    shuffle: bool = False      # HDF5 byte shuffle of elements of ``itemsize`` bytes
    reverse_bits: bool = False  # TIFF FillOrder=2: the stored bytes are bit-reversed
    unit: str = "segment"      # how errors name a segment: "segment" (TIFF) or "chunk" (HDF5)
    dataset: str | None = None

    def decoded_size(self, index: np.ndarray) -> np.ndarray:
        """Decoded bytes of segments ``index``."""
        full = self.seg_rows * self.seg_row_bytes
        size = np.full(len(index), full, dtype=np.int64)
        if not self.full_segments:
            band = index // self.across
            rows = np.minimum(self.seg_rows, self.height - band * self.seg_rows)
            size = rows * self.seg_row_bytes
        return size

    def batch(self, row_start: int, row_stop: int) -> "BlockBatch":
        """The segments that cover rows ``[row_start, row_stop)`` and where their bytes go."""
        first, last = row_start // self.seg_rows, (row_stop - 1) // self.seg_rows
        index = (np.arange(first, last + 1, dtype=np.int64)[:, None] * self.across
                 + np.arange(self.across, dtype=np.int64)[None, :]).reshape(-1)
        counts = self.counts[index]
        decoded = self.decoded_size(index)
        # A zlib stream starts 2 bytes before an aligned address, so its deflate body (what
        # the GPU inflates) is aligned.
        lead = ALIGN - 2 if self.codec == "deflate" else 0
        comp_at = np.concatenate([[0], np.cumsum(aligned(lead + counts))])
        dec_at = np.concatenate([[0], np.cumsum(aligned(decoded))])
        return BlockBatch(row_start, row_stop, first, index, self.offsets[index], counts,
                          comp_at[:-1] + lead, int(comp_at[-1]), decoded, dec_at[:-1],
                          int(dec_at[-1]))

    def damaged(self, index: int, why: str) -> CorruptInputError:
        """The reader's own one-line error for a segment that cannot be decoded."""
        if self.unit == "chunk":
            band, col = divmod(int(index), self.across)
            return CorruptInputError(
                f"chunk at row {band * self.seg_rows}, column "
                f"{col * self.seg_row_bytes // self.itemsize} of {self.dataset!r} cannot be "
                f"decoded ({why})", self.path)
        return CorruptInputError(f"segment {int(index)} cannot be decoded ({why})", self.path)


@dataclass(frozen=True)
class BlockBatch:
    """The segments of one block: file ranges, and offsets in the block's two buffers."""

    row_start: int
    row_stop: int
    first_band: int
    index: np.ndarray       # segment numbers, band-major
    file_offsets: np.ndarray
    counts: np.ndarray      # stored bytes
    comp_at: np.ndarray     # where each segment's stored bytes lie in the compressed buffer
    comp_nbytes: int
    decoded: np.ndarray     # decoded bytes of each segment
    dec_at: np.ndarray      # where each segment decodes to in the decoded buffer
    dec_nbytes: int


@dataclass(frozen=True)
class Entries:
    """What one batched decode call inflates, and what is checked after it.

    ``comp_*`` index the compressed buffer, ``dec_*`` the decoded one. ``adler`` holds each
    segment's Adler-32 trailer (deflate only). ``stored`` lists ``(src, dst, nbytes)`` pieces
    that are copied, not decoded (LZ4 filter blocks kept raw).
    """

    comp_at: np.ndarray
    comp_size: np.ndarray
    dec_at: np.ndarray
    dec_size: np.ndarray
    adler: np.ndarray | None
    stored: list[tuple[int, int, int]]
    #: position in the batch of the segment each entry belongs to
    owner: np.ndarray


def zlib_body(head: bytes, tail: bytes, count: int) -> tuple[int, int, int]:
    """(body offset, body size, Adler-32) of a zlib stream of ``count`` bytes.

    ``head`` is its first 2 bytes and ``tail`` its last 4. Raises ``ValueError`` for a stream
    the GPU must not inflate: not deflate (CM), a window over 32 KiB (CINFO), a bad header
    check, or a preset dictionary (FDICT), which no TIFF or HDF5 writer uses.
    """
    if count < 6:
        raise ValueError(f"a zlib stream of {count} bytes is too short")
    cmf, flg = head[0], head[1]
    if cmf & 0x0F != 8:
        raise ValueError(f"zlib header names compression method {cmf & 0x0F}, not deflate")
    if cmf >> 4 > 7:
        raise ValueError(f"zlib header declares a {1 << ((cmf >> 4) + 8)}-byte window")
    if (cmf * 256 + flg) % 31:
        raise ValueError("zlib header check fails")
    if flg & 0x20:
        raise ValueError("zlib stream needs a preset dictionary")
    return 2, count - 6, struct.unpack(">I", tail)[0]


ZSTD_MAGIC = 0xFD2FB528


def zstd_content_size(head: bytes) -> int | None:
    """The decoded size a Zstandard frame header declares (None when it declares none).

    ``head`` is the frame's first bytes (up to 18). nvCOMP's zstd decoder assumes valid input,
    so what the header says is checked on the host first. Raises ``ValueError`` for a stream
    that is not one zstd frame the GPU may inflate: another magic number (a skippable frame),
    a reserved bit set, or a dictionary.
    """
    if len(head) < 5 or struct.unpack("<I", head[:4])[0] != ZSTD_MAGIC:
        raise ValueError("not a zstd frame (bad magic number)")
    fhd = head[4]
    if fhd & 0x08:
        raise ValueError("zstd frame header sets a reserved bit")
    single = (fhd >> 5) & 1
    dict_size = (0, 1, 2, 4)[fhd & 3]
    fcs_size = (single, 2, 4, 8)[fhd >> 6]
    at = 5 + (0 if single else 1)
    if len(head) < at + dict_size + fcs_size:
        raise ValueError("zstd frame header is cut short")
    if dict_size and int.from_bytes(head[at:at + dict_size], "little"):
        raise ValueError("zstd frame needs a dictionary")
    at += dict_size
    if not fcs_size:
        return None
    value = int.from_bytes(head[at:at + fcs_size], "little")
    return value + 256 if fcs_size == 2 else value


def lz4_blocks(data: np.ndarray, decoded: int) -> list[tuple[int, int, int, int, bool]]:
    """The blocks of one chunk in the HDF5 LZ4 filter's framing.

    Framing: 8-byte big-endian total size, 4-byte big-endian block size, then per block a
    4-byte big-endian compressed size and the data; a block whose compressed size equals its
    decoded size is stored raw. Returns ``(src, nbytes, dst, decoded, raw)`` per block, relative
    to the chunk. Raises ``ValueError`` when the framing does not describe ``decoded`` bytes
    inside ``data``.
    """
    if data.nbytes < 12:
        raise ValueError(f"LZ4 chunk of {data.nbytes} bytes is shorter than its header")
    total, block = struct.unpack(">QI", data[:12].tobytes())
    if total != decoded:
        raise ValueError(f"LZ4 header declares {total} bytes, the chunk holds {decoded}")
    if total and block == 0:
        raise ValueError("LZ4 header declares blocks of 0 bytes")
    out = []
    at, dst = 12, 0
    while dst < total:
        if at + 4 > data.nbytes:
            raise ValueError(f"LZ4 block at byte {at} is cut short")
        size = struct.unpack(">I", data[at:at + 4].tobytes())[0]
        at += 4
        want = min(block, total - dst)
        if size == 0 or size > want or at + size > data.nbytes:
            raise ValueError(f"LZ4 block at byte {at - 4} declares {size} bytes")
        out.append((at, size, dst, want, size == want))
        at += size
        dst += want
    return out


def frame(plan: InputPlan, batch: BlockBatch, ring: np.ndarray) -> Entries:
    """Read the framing of every segment of ``batch`` from its bytes in ``ring`` (the compressed
    buffer as read from the file, before any bit reversal).

    Raises
    ------
    CorruptInputError
        The reader's one-line error for the first segment whose framing is damaged.
    """
    n = len(batch.index)
    if plan.codec == "zstd":
        for i in range(n):
            at, count = int(batch.comp_at[i]), int(batch.counts[i])
            head = ring[at:at + min(count, 18)]
            if plan.reverse_bits:
                head = _REVERSE_BITS[head]
            try:
                size = zstd_content_size(head.tobytes())
            except ValueError as exc:
                raise plan.damaged(batch.index[i], str(exc)) from None
            if size is not None and size != int(batch.decoded[i]):
                raise plan.damaged(batch.index[i], f"zstd frame declares {size} bytes, the "
                                   f"segment holds {int(batch.decoded[i])}")
        return Entries(batch.comp_at, batch.counts, batch.dec_at, batch.decoded, None, [],
                       np.arange(n))
    if plan.codec == "deflate":
        adler = np.empty(n, dtype=np.uint32)
        body_at = batch.comp_at + 2
        body_size = batch.counts - 6
        for i in range(n):
            at, count = int(batch.comp_at[i]), int(batch.counts[i])
            head = ring[at:at + 2]
            tail = ring[at + count - 4:at + count] if count >= 6 else ring[:0]
            if plan.reverse_bits:  # FillOrder=2 applies to every stored byte, header too
                head, tail = _REVERSE_BITS[head], _REVERSE_BITS[tail]
            try:
                _, _, adler[i] = zlib_body(head.tobytes(), tail.tobytes(), count)
            except ValueError as exc:
                raise plan.damaged(batch.index[i], str(exc)) from None
        return Entries(body_at, body_size, batch.dec_at, batch.decoded, adler, [], np.arange(n))
    comp_at, comp_size, dec_at, dec_size, stored, owner = [], [], [], [], [], []
    for i in range(n):
        at, count = int(batch.comp_at[i]), int(batch.counts[i])
        try:
            blocks = lz4_blocks(ring[at:at + count], int(batch.decoded[i]))
        except ValueError as exc:
            raise plan.damaged(batch.index[i], str(exc)) from None
        base = int(batch.dec_at[i])
        for src, size, dst, want, raw in blocks:
            if raw:
                stored.append((at + src, base + dst, want))
            else:
                comp_at.append(at + src)
                comp_size.append(size)
                dec_at.append(base + dst)
                dec_size.append(want)
                owner.append(i)
    as64 = lambda v: np.asarray(v, dtype=np.int64)  # noqa: E731
    return Entries(as64(comp_at), as64(comp_size), as64(dec_at), as64(dec_size), None, stored,
                   as64(owner))


def plan_input(reader) -> tuple[InputPlan | None, str]:
    """The GPU decode plan of an open reader, or ``(None, why it stays on the CPU)``."""
    from ....io.hdf5 import Hdf5Reader
    from ....io.tiff import TiffReader

    if isinstance(reader, TiffReader):
        return _plan_tiff(reader)
    if isinstance(reader, Hdf5Reader):
        return _plan_hdf5(reader)
    return None, f"{type(reader).__name__} is not a TIFF or HDF5 reader"


def _plan_tiff(r) -> tuple[InputPlan | None, str]:
    codec = r._codec  # the codec table says which codecs a GPU decoder inflates
    if not codec.gpu:
        return None, f"{codec.name} is decoded on the CPU"
    itemsize = r._file_dtype.itemsize
    return InputPlan(
        path=r.path, fd=r._fd, codec=codec.name, offsets=r._offsets, counts=r._counts,
        height=r.height, row_bytes=r.row_nbytes, seg_rows=r.seg_rows,
        seg_row_bytes=r.seg_cols * itemsize, across=r.segs_across, full_segments=r._tiled,
        itemsize=itemsize, predictor=r._predictor == 2,
        swap=itemsize == 2 and r._file_dtype.byteorder == ">",
        reverse_bits=r._fillorder == 2, unit="segment"), ""


def _plan_hdf5(r) -> tuple[InputPlan | None, str]:
    if not r._parallel or r._chunk_table is None:
        return None, "the chunks are read through HDF5 on the CPU"
    filters = list(r._filters_ids)
    shuffle = HDF5_SHUFFLE in filters
    rest = [f for f in filters if f != HDF5_SHUFFLE]
    codec = hdf5_codec(rest[0]) if len(rest) == 1 else None
    if codec is None or not codec.gpu:
        names = "+".join(r._filters) or "no compression"
        return None, f"{names} is decoded on the CPU"
    if shuffle and filters.index(HDF5_SHUFFLE) > filters.index(rest[0]):
        return None, "shuffle after compression is decoded on the CPU"
    table = r._chunk_table
    if (table[:, 2] != 0).any():
        return None, "some chunks skip a filter; they are decoded on the CPU"
    itemsize = r._itemsize
    storage = np.dtype(r._storage_dtype)
    return InputPlan(
        path=r.path, fd=r._fd, codec=codec.name, offsets=table[:, 0].copy(),
        counts=table[:, 1].copy(), height=r.height, row_bytes=r.row_nbytes,
        seg_rows=r.seg_rows, seg_row_bytes=r.seg_cols * itemsize, across=r.segs_across,
        full_segments=True, itemsize=itemsize,
        swap=itemsize == 2 and storage.byteorder == ">",
        shuffle=shuffle and itemsize > 1, unit="chunk", dataset=r.dataset_name), ""
