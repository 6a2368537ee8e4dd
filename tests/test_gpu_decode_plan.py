"""The GPU decode path's planner and framing, checked on the CPU.

Every layout the GPU inflates (TIFF strips and tiles, HDF5 chunk grids; 1-bit, uint8, uint16;
predictor, shuffle, big-endian, FillOrder=2, stored deflate and raw LZ4 blocks) is decoded
through the batch layout the GPU gets (one compressed buffer, offset tables, framing entries)
with the CPU codecs, and must give exactly today's readers' rows for every block split. The
framing checks (zlib header, LZ4 block table) and the parallel Adler-32 formula are tested
directly, corrupt streams included.
"""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest

from dragon_gpu.engines.gpu.decode import _adler, plan_input
from dragon_gpu.engines.gpu.decode._plan import frame, lz4_blocks, zlib_body
from dragon_gpu.errors import CorruptInputError
from dragon_gpu.io import open_mask
from tests.helpers.gpu_decode_cases import CASES, CPU_ONLY, HEIGHT, cpu_rows


def _suffix(name):
    return ".h5" if name.startswith("h5") else ".tif"


@pytest.fixture(params=sorted(CASES))
def case(request, tmp_path):
    name = request.param
    path = tmp_path / (name + _suffix(name))
    CASES[name](path, np.random.default_rng(len(name)))
    return name, path


def test_batch_layout_decodes_to_the_readers_rows(case):
    name, path = case
    with open_mask(path) as reader:
        plan, why = plan_input(reader)
        assert plan is not None, why
        want = reader.read_rows(0, reader.height)
        for rows in (1, 3, 8, 16, HEIGHT):
            for start in range(0, reader.height, rows):
                stop = min(reader.height, start + rows)
                got = cpu_rows(plan, start, stop).view(reader.dtype)
                assert np.array_equal(got, want[start:stop]), (name, start, stop)


def test_plan_facts(tmp_path):
    path = tmp_path / "t.tif"
    CASES["tiff-u16-deflate-predictor-be"](path, np.random.default_rng(0))
    with open_mask(path) as reader:
        plan, _ = plan_input(reader)
    assert (plan.codec, plan.predictor, plan.swap, plan.itemsize) == ("deflate", True, True, 2)
    assert plan.seg_rows == 5 and not plan.full_segments
    batch = plan.batch(4, 11)  # rows 4..10 touch strips 0, 1 and 2
    assert list(batch.index) == [0, 1, 2]
    assert list(batch.decoded) == [5 * 90] * 3
    # zlib streams start 2 bytes before an aligned address: their deflate bodies are aligned
    assert all(a % 16 == 14 for a in batch.comp_at) and all(a % 16 == 0 for a in batch.dec_at)
    last = plan.batch(35, 37)
    assert list(last.decoded) == [2 * 90]  # the last strip holds the 2 rows left


@pytest.mark.parametrize("name", sorted(CPU_ONLY))
def test_codecs_nvcomp_cannot_decode_stay_on_the_cpu(tmp_path, name):
    path = tmp_path / (name + _suffix(name))
    CPU_ONLY[name](path, np.random.default_rng(1))
    with open_mask(path) as reader:
        plan, why = plan_input(reader)
    assert plan is None and "CPU" in why


# -- zlib framing -----------------------------------------------------------------------------
def test_zlib_header_and_trailer():
    data = bytes(range(200)) * 3
    stream = zlib.compress(data)
    at, size, adler = zlib_body(stream[:2], stream[-4:], len(stream))
    assert zlib.decompressobj(-15).decompress(stream[at:at + size]) == data
    assert adler == zlib.adler32(data)


@pytest.mark.parametrize("head, problem", [
    (bytes([0x79, 0x00]), "compression method"),
    (bytes([0x88, 0x00]), "window"),
    (bytes([0x78, 0x9D]), "header check"),
    (bytes([0x78, 0xBB]), "preset dictionary"),  # 0x78BB % 31 == 0, FDICT set
])
def test_zlib_header_refusals(head, problem):
    if problem == "compression method":
        head = bytes([0x79, (31 - (0x79 * 256) % 31) % 31])
    if problem == "window":
        head = bytes([0x88, (31 - (0x88 * 256) % 31) % 31])
    with pytest.raises(ValueError, match=problem):
        zlib_body(head, b"\0\0\0\0", 20)


def test_zlib_too_short():
    with pytest.raises(ValueError, match="too short"):
        zlib_body(b"\x78\x9c", b"", 5)


def test_damaged_zlib_header_is_the_readers_error(tmp_path):
    path = tmp_path / "t.tif"
    CASES["tiff-u8-deflate-strips"](path, np.random.default_rng(0))
    with open_mask(path) as reader:
        plan, _ = plan_input(reader)
        batch = plan.batch(0, 10)
        ring = np.zeros(batch.comp_nbytes, np.uint8)
        from dragon_gpu.engines.gpu.decode._stream import _read_segments

        _read_segments(plan.fd, batch, ring)
        ring[int(batch.comp_at[1])] = 0x79  # strip 1: compression method 9
        with pytest.raises(CorruptInputError, match=r"segment 1 cannot be decoded \(zlib"):
            frame(plan, batch, ring)


# -- LZ4 filter framing --------------------------------------------------------------------------
def _lz4_chunk(data: bytes, block: int) -> bytes:
    import imagecodecs

    out = struct.pack(">QI", len(data), block)
    for i in range(0, len(data), block):
        part = data[i:i + block]
        packed = imagecodecs.lz4_encode(part)
        if len(packed) >= len(part):
            packed = part
        out += struct.pack(">I", len(packed)) + packed
    return out


def test_lz4_blocks_compressed_and_raw():
    rng = np.random.default_rng(3)
    data = bytes(64) + rng.integers(0, 256, 64, dtype=np.uint8).tobytes() + bytes(52)
    chunk = np.frombuffer(_lz4_chunk(data, 64), np.uint8)
    blocks = lz4_blocks(chunk, len(data))
    assert [b[3] for b in blocks] == [64, 64, 52]
    assert [b[4] for b in blocks] == [False, True, False]  # the random block is kept raw
    import imagecodecs

    rebuilt = b"".join(chunk[s:s + n].tobytes() if raw else
                       imagecodecs.lz4_decode(chunk[s:s + n].tobytes(), header=False, out=w)
                       for s, n, _d, w, raw in blocks)
    assert rebuilt == data


@pytest.mark.parametrize("damage, problem", [
    (lambda c: c[:10], "shorter than its header"),
    (lambda c: struct.pack(">Q", 999) + c[8:], "declares 999 bytes"),
    (lambda c: c[:12] + struct.pack(">I", 10_000) + c[16:], "declares 10000 bytes"),
    (lambda c: c[:-5], "declares|cut short"),
])
def test_lz4_framing_damage(damage, problem):
    data = bytes(range(256)) * 2
    chunk = damage(_lz4_chunk(data, 200))
    with pytest.raises(ValueError, match=problem):
        lz4_blocks(np.frombuffer(chunk, np.uint8), len(data))


# -- parallel Adler-32 ---------------------------------------------------------------------------
@pytest.mark.parametrize("n", [0, 1, 2, 255, 5552, 5553, 100_000])
@pytest.mark.parametrize("chunks", [1, 3, 64])
def test_adler32_from_partial_sums(n, chunks):
    data = np.random.default_rng(n + chunks).integers(0, 256, n, dtype=np.uint8)
    assert _adler.adler32(data, chunks) == zlib.adler32(data.tobytes())
    worst = np.full(n, 255, np.uint8)  # the largest sums, where overflow would show
    assert _adler.adler32(worst, chunks) == zlib.adler32(worst.tobytes())


def test_adler32_finds_corruption():
    data = np.random.default_rng(9).integers(0, 256, 4096, dtype=np.uint8)
    good = zlib.adler32(data.tobytes())
    for i in (0, 1, 2047, 4095):
        bad = data.copy()
        bad[i] ^= 0x10
        assert _adler.adler32(bad, 8) == zlib.adler32(bad.tobytes()) != good
    swapped = data.copy()
    swapped[[10, 11]] = swapped[[11, 10]]  # reordered bytes: a plain sum would not see it
    if data[10] != data[11]:
        assert _adler.adler32(swapped, 8) != good


# -- zstd frame header ---------------------------------------------------------------------------
def test_zstd_content_size():
    import imagecodecs

    from dragon_gpu.engines.gpu.decode._plan import zstd_content_size

    for n in (0, 1, 255, 256, 300, 65_791, 70_000, 1 << 20):
        frame_bytes = imagecodecs.zstd_encode(bytes(n))
        assert zstd_content_size(frame_bytes[:18]) == n
    with pytest.raises(ValueError, match="magic"):
        zstd_content_size(b"\x50\x2a\x4d\x18" + bytes(8))  # a skippable frame
    with pytest.raises(ValueError, match="reserved"):
        zstd_content_size(struct.pack("<I", 0xFD2FB528) + b"\x08" + bytes(8))
    with pytest.raises(ValueError, match="dictionary"):
        zstd_content_size(struct.pack("<I", 0xFD2FB528) + b"\x21\x05" + bytes(8))


def test_zstd_frame_size_mismatch_is_the_readers_error(tmp_path):
    from dragon_gpu.engines.gpu.decode._stream import _read_segments

    path = tmp_path / "t.tif"
    CASES["tiff-u16-zstd-tiles"](path, np.random.default_rng(0))
    with open_mask(path) as reader:
        plan, _ = plan_input(reader)
        batch = plan.batch(0, 16)
        ring = np.zeros(batch.comp_nbytes, np.uint8)
        _read_segments(plan.fd, batch, ring)
        frame(plan, batch, ring)  # intact
        at = int(batch.comp_at[2])
        fhd = ring[at + 4]
        assert fhd >> 6 and (fhd >> 5) & 1  # content size present, single segment
        ring[at + 5] ^= 0x01  # the first byte of the declared size
        with pytest.raises(CorruptInputError, match=r"segment 2 cannot be decoded \(zstd frame "
                                                    r"declares \d+ bytes, the segment holds 512"):
            frame(plan, batch, ring)
