"""Tiled pairs (TIFF tiles, HDF5 chunk grids narrower than the image) are counted tile by tile.

Expected counts come from plain NumPy on the arrays the files were written from. Each test of the
tile path also checks that no row block was assembled (``read_rows`` is never called), so it
fails if the pair silently takes the row path; pairs that do not share a grid must take the row
path and count the same.
"""

from __future__ import annotations


import h5py
import numpy as np
import pytest
import tifffile

from dragon_gpu.engines.cpu import CpuEngine
from dragon_gpu.engines.cpu_tiles import shared_grid
from dragon_gpu.errors import CorruptInputError
from dragon_gpu.io import open_mask
from dragon_gpu.io._segments import SegmentedReader
from dragon_gpu.model import RowRange
from dragon_gpu.pipeline import count_range, detect
from tests.helpers.engine_cases import PAIRS, ArrayReader, numpy_counts, random_block
from tests.helpers.files import FILLORDER_PLACEHOLDER, make_fillorder2

H, W = 301, 517  # neither a multiple of any tile side below


@pytest.fixture
def rows_path_calls(monkeypatch):
    """How many times a segmented reader assembled a row block."""
    calls = []
    real = SegmentedReader.read_rows

    def spy(self, *args, **kwargs):
        calls.append(self.path)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(SegmentedReader, "read_rows", spy)
    return calls


def _gray(seed, dtype=np.uint8, shape=(H, W)):
    rng = np.random.default_rng(seed)
    return rng.integers(0, np.iinfo(dtype).max, shape, dtype=dtype, endpoint=True)


def _counts(body_members, dye_members):
    b, d = body_members, dye_members
    return int(b.sum()), int((b & d).sum()), int(d.sum())


def _got(result):
    c = result.counts
    return c.body, c.dye_in_body, c.dye


@pytest.mark.parametrize("compression,predictor", [(None, None), ("zlib", None),
                                                   ("zlib", 2), ("lzw", 2), ("zstd", None)])
def test_tiled_u8_tiff_pair_counts_like_numpy(tmp_path, rows_path_calls, compression, predictor):
    body, dye = _gray(1), _gray(2)
    for name, data in (("body", body), ("dye", dye)):
        tifffile.imwrite(tmp_path / f"{name}.tif", data, tile=(64, 48), compression=compression,
                         predictor=predictor, photometric="minisblack")
    got = detect(tmp_path / "body.tif", tmp_path / "dye.tif", device="cpu", threshold=100)
    assert _got(got) == _counts(body < 100, dye >= 100)
    assert rows_path_calls == []


@pytest.mark.parametrize("byteorder", ["<", ">"])
def test_tiled_u16_tiff_pair_with_predictor_and_either_byte_order(tmp_path, rows_path_calls,
                                                                   byteorder):
    body, dye = _gray(3, np.uint16), _gray(4, np.uint16)
    for name, data in (("body", body), ("dye", dye)):
        tifffile.imwrite(tmp_path / f"{name}.tif", data, tile=(32, 64), compression="zlib",
                         predictor=2, byteorder=byteorder, photometric="minisblack")
    got = detect(tmp_path / "body.tif", tmp_path / "dye.tif", device="cpu",
                 body_threshold=20000, dye_threshold=50000)
    assert _got(got) == _counts(body < 20000, dye >= 50000)
    assert rows_path_calls == []


def test_miniswhite_tiles_follow_displayed_brightness(tmp_path, rows_path_calls):
    body, dye = _gray(5), _gray(6)
    tifffile.imwrite(tmp_path / "body.tif", body, tile=(48, 32), photometric="miniswhite",
                     compression="zlib")
    tifffile.imwrite(tmp_path / "dye.tif", dye, tile=(48, 32), photometric="minisblack")
    got = detect(tmp_path / "body.tif", tmp_path / "dye.tif", device="cpu")
    # brightness = 255 - value; body is brightness < 128
    assert _got(got) == _counts(255 - body.astype(int) < 128, dye >= 128)
    assert rows_path_calls == []


@pytest.mark.parametrize("width", [517, 512, 509])
def test_one_bit_tiles_with_padding_bits_and_a_gray_partner(tmp_path, rows_path_calls, width):
    rng = np.random.default_rng(width)
    body = rng.random((H, width)) < 0.6
    dye = rng.random((H, width)) < 0.3
    gray = _gray(7, shape=(H, width))
    tifffile.imwrite(tmp_path / "body.tif", body, tile=(32, 64), photometric="miniswhite",
                     compression="zlib")
    tifffile.imwrite(tmp_path / "dye.tif", dye, tile=(32, 64), photometric="minisblack",
                     compression="packbits")
    tifffile.imwrite(tmp_path / "gray.tif", gray, tile=(32, 64), photometric="minisblack")
    # MINISWHITE body: a set bit is black, which is the body; MINISBLACK dye: set is white.
    got = detect(tmp_path / "body.tif", tmp_path / "dye.tif", device="cpu")
    assert _got(got) == _counts(body, dye)
    # 1-bit body tiles against 8-bit dye tiles of the same grid in pixels
    got = detect(tmp_path / "body.tif", tmp_path / "gray.tif", device="cpu")
    assert _got(got) == _counts(body, gray >= 128)
    assert rows_path_calls == []


def _write_lsb2msb_tiled(path, data):
    tifffile.imwrite(path, data, photometric="minisblack", compression="zlib", tile=(32, 48),
                     extratags=[FILLORDER_PLACEHOLDER])
    make_fillorder2(path)


def test_fillorder_lsb2msb_tiles(tmp_path, rows_path_calls):
    body, dye = _gray(8), _gray(9)
    _write_lsb2msb_tiled(tmp_path / "body.tif", body)
    tifffile.imwrite(tmp_path / "dye.tif", dye, tile=(32, 48), compression="zlib")
    with open_mask(tmp_path / "body.tif") as r:
        assert r.describe()["fillorder"] == "LSB2MSB"
    got = detect(tmp_path / "body.tif", tmp_path / "dye.tif", device="cpu")
    assert _got(got) == _counts(body < 128, dye >= 128)
    assert rows_path_calls == []


def _h5(path, data, chunks, **kwargs):
    with h5py.File(path, "w") as f:
        f.create_dataset("mask", data=data, chunks=chunks, **kwargs)


@pytest.mark.parametrize("filters", [dict(compression="gzip"), dict(compression="gzip",
                                                                     shuffle=True), {}])
def test_hdf5_chunk_grid_narrower_than_the_image(tmp_path, rows_path_calls, filters,
                                                 monkeypatch):
    from dragon_gpu.engines import cpu_tiles

    monkeypatch.setattr(cpu_tiles, "SLICE_PIXELS", 700)  # tiles counted in slices of 7 rows
    body, dye = _gray(10, np.uint16), _gray(11, np.uint16).astype(">u2")
    _h5(tmp_path / "body.h5", body, (40, 100), **filters)
    _h5(tmp_path / "dye.h5", dye, (40, 100), **filters)
    got = detect(tmp_path / "body.h5", tmp_path / "dye.h5", device="cpu", threshold=30000)
    assert _got(got) == _counts(body < 30000, dye.astype(np.uint16) >= 30000)
    assert rows_path_calls == []


def test_bool_hdf5_chunks_against_tiff_tiles_of_the_same_grid(tmp_path, rows_path_calls):
    rng = np.random.default_rng(12)
    mask = rng.random((H, W)) < 0.5
    dye = _gray(13)
    _h5(tmp_path / "body.h5", mask, (64, 48), compression="gzip")
    tifffile.imwrite(tmp_path / "dye.tif", dye, tile=(64, 48), compression="zlib")
    got = detect(tmp_path / "body.h5", tmp_path / "dye.tif", device="cpu")
    assert _got(got) == _counts(mask, dye >= 128)
    assert rows_path_calls == []


@pytest.mark.parametrize("layout", ["other-tiles", "strips", "full-width-chunks"])
def test_pairs_without_a_shared_grid_take_the_row_path(tmp_path, rows_path_calls, layout):
    body, dye = _gray(14), _gray(15)
    tifffile.imwrite(tmp_path / "body.tif", body, tile=(64, 48), compression="zlib")
    if layout == "other-tiles":
        tifffile.imwrite(tmp_path / "dye.tif", dye, tile=(64, 64), compression="zlib")
        other = tmp_path / "dye.tif"
    elif layout == "strips":
        tifffile.imwrite(tmp_path / "dye.tif", dye, rowsperstrip=16, compression="zlib")
        other = tmp_path / "dye.tif"
    else:
        _h5(tmp_path / "dye.h5", dye, (64, W), compression="gzip")
        other = tmp_path / "dye.h5"
    with open_mask(tmp_path / "body.tif") as b, open_mask(other) as d:
        assert shared_grid((b, d)) is None
    got = detect(tmp_path / "body.tif", other, device="cpu")
    assert _got(got) == _counts(body < 128, dye >= 128)
    assert rows_path_calls  # the rows were assembled


@pytest.mark.parametrize("block_rows", [1, 7, 64, 1000])
def test_blocks_that_cut_tiles_and_row_ranges(tmp_path, rows_path_calls, block_rows):
    body, dye = _gray(16), _gray(17)
    for name, data in (("body", body), ("dye", dye)):
        tifffile.imwrite(tmp_path / f"{name}.tif", data, tile=(64, 48), compression="zlib")
    ticks = []
    got = detect(tmp_path / "body.tif", tmp_path / "dye.tif", device="cpu",
                 block_rows=block_rows, progress=lambda done, total: ticks.append((done, total)))
    assert _got(got) == _counts(body < 128, dye >= 128)
    assert ticks[-1] == (H, H)
    assert [d for d, _ in ticks] == sorted(d for d, _ in ticks)
    # ranges that cut tiles add up to the whole
    parts = [count_range(tmp_path / "body.tif", tmp_path / "dye.tif", RowRange(a, b),
                         device="cpu") for a, b in ((0, 50), (50, 51), (51, 200), (200, H))]
    assert (sum(p.body for p in parts), sum(p.dye_in_body for p in parts),
            sum(p.dye for p in parts)) == _counts(body < 128, dye >= 128)
    assert rows_path_calls == []


def test_threshold_methods_use_tile_histograms(tmp_path, rows_path_calls):
    from dragon_gpu.engines.cpu_hist import stream_histogram

    rng = np.random.default_rng(18)
    body = np.where(rng.random((H, W)) < 0.5, rng.integers(20, 70, (H, W)),
                    rng.integers(140, 230, (H, W))).astype(np.uint8)
    dye = _gray(19)
    body16 = body.astype(np.uint16) * 257
    tifffile.imwrite(tmp_path / "body.tif", body, tile=(64, 48), compression="zlib")
    tifffile.imwrite(tmp_path / "body16.tif", body16, tile=(64, 48), compression="zlib")
    tifffile.imwrite(tmp_path / "dye.tif", dye, tile=(64, 48), compression="zlib")
    with open_mask(tmp_path / "body.tif") as b, open_mask(tmp_path / "dye.tif") as d, \
            open_mask(tmp_path / "body16.tif") as b16:
        blocks = [RowRange(0, 100), RowRange(100, H)]
        joint = stream_histogram((b, d), blocks, 2)
        want = np.bincount((body.astype(np.int64) << 8 | dye).ravel(), minlength=1 << 16)
        assert np.array_equal(joint, want)
        assert np.array_equal(stream_histogram((b16,), blocks, 2),
                              np.bincount(body16.ravel(), minlength=1 << 16))
    from skimage.filters import threshold_otsu

    t = int(np.floor(threshold_otsu(body))) + 1
    for name, scale in (("body.tif", 1), ("body16.tif", 257)):
        got = detect(tmp_path / name, tmp_path / "dye.tif", device="cpu", body_threshold="otsu")
        t_got = got.thresholds.body
        assert abs(t_got - t * scale) <= scale  # otsu of the scaled image, one level apart
        assert _got(got) == _counts((body16 if scale > 1 else body) < t_got, dye >= 128)
    assert rows_path_calls == []


def test_a_corrupt_tile_is_an_input_error(tmp_path):
    body, dye = _gray(20), _gray(21)
    tifffile.imwrite(tmp_path / "body.tif", body, tile=(64, 48), compression="zlib")
    tifffile.imwrite(tmp_path / "dye.tif", dye, tile=(64, 48), compression="zlib")
    with tifffile.TiffFile(tmp_path / "dye.tif") as tif:
        offset = int(tif.pages[0].dataoffsets[17])
    raw = bytearray((tmp_path / "dye.tif").read_bytes())
    raw[offset:offset + 8] = b"\xff" * 8
    (tmp_path / "dye.tif").write_bytes(raw)
    with pytest.raises(CorruptInputError, match="segment 17"):
        detect(tmp_path / "body.tif", tmp_path / "dye.tif", device="cpu")


def test_the_same_reader_twice(tmp_path):
    body = _gray(22)
    tifffile.imwrite(tmp_path / "body.tif", body, tile=(64, 48), compression="zlib")
    with open_mask(tmp_path / "body.tif") as r:
        from dragon_gpu.io import resolve_rule
        from dragon_gpu.io.base import Encoding

        enc = Encoding(False, W, r.dtype, resolve_rule(r, "dye", threshold=99))
        c = CpuEngine().count_pair(r, enc, r, enc, [RowRange(0, H)])
    n = int((body >= 99).sum())
    assert (c.body, c.dye_in_body, c.dye) == (n, n, n)


def test_one_tile_larger_than_the_image(tmp_path, rows_path_calls):
    body, dye = _gray(23, shape=(20, 21)), _gray(24, shape=(20, 21))
    for name, data in (("body", body), ("dye", dye)):
        tifffile.imwrite(tmp_path / f"{name}.tif", data, tile=(32, 32), compression="zlib")
    got = detect(tmp_path / "body.tif", tmp_path / "dye.tif", device="cpu", threshold=77)
    assert _got(got) == _counts(body < 77, dye >= 77)
    assert rows_path_calls == []


TILE = (32, 64)


def _patchwork(seed, levels, shape=(H, W), tile=TILE):
    """An image whose tiles are each one of ``levels`` (a uniform value) or random values from
    0 to ``max(levels)``, both included."""
    rng = np.random.default_rng(seed)
    out = np.empty(shape, np.int64)
    hi = max(levels)
    for r0 in range(0, shape[0], tile[0]):
        for c0 in range(0, shape[1], tile[1]):
            view = out[r0:r0 + tile[0], c0:c0 + tile[1]]
            pick = rng.integers(len(levels) + 1)
            if pick < len(levels):
                view[...] = levels[pick]
            else:  # random, holding both extremes, so never uniform
                view[...] = rng.integers(0, hi + 1, view.shape)
                view.flat[0], view.flat[-1] = 0, hi
    return out


@pytest.fixture(params=["compiled", "numpy"])
def counting(request, monkeypatch):
    """Each test twice: with the compiled counting kernel (where it is built) and without."""
    from dragon_gpu.engines import native

    if request.param == "compiled" and not native.available():
        pytest.skip("the compiled CPU kernel is not built")
    if request.param == "numpy":
        monkeypatch.setattr(native, "_kernel", None)
    return request.param


@pytest.mark.parametrize("dtype,threshold,photometric", [
    (np.uint8, 128, "minisblack"), (np.uint8, 128, "miniswhite"), (np.uint8, 1, "minisblack"),
    (np.uint16, 32768, "minisblack"), (np.uint16, 65535, "miniswhite")])
def test_uniform_tiles_of_every_kind(tmp_path, rows_path_calls, monkeypatch, counting, dtype,
                                     threshold, photometric):
    """Tiles all inside, all outside, exactly at the threshold, one below it, or mixed, in every
    pairing of body and dye: without the compiled kernel, uniform tiles are decided from their
    extremes and the rest counted."""
    from dragon_gpu.engines import cpu

    full = np.iinfo(dtype).max
    levels = [0, full, threshold - 1, threshold, min(threshold + 1, full)]
    body, dye = (_patchwork(s, levels).astype(dtype) for s in (30, 31))
    for name, data in (("body", body), ("dye", dye)):
        tifffile.imwrite(tmp_path / f"{name}.tif", data, tile=TILE, compression="zlib",
                         photometric=photometric)
    counted = []
    real = cpu._count_planes
    monkeypatch.setattr(cpu, "_count_planes", lambda *a, **k: counted.append(1) or real(*a, **k))
    got = detect(tmp_path / "body.tif", tmp_path / "dye.tif", device="cpu", threshold=threshold)
    # brightness is the value for MINISBLACK and full - value for MINISWHITE
    bb, db = ((full - x.astype(np.int64) if photometric == "miniswhite" else x.astype(np.int64))
              for x in (body, dye))
    assert _got(got) == _counts(bb < threshold, db >= threshold)
    tiles = -(-H // TILE[0]) * -(-W // TILE[1])
    if counting == "numpy":  # most pairs had a uniform tile and skipped the full count
        assert 0 < len(counted) < tiles / 2
    else:  # one compiled pass over every pair
        assert len(counted) == tiles
    assert rows_path_calls == []


@pytest.mark.parametrize("width", [517, 512])
def test_uniform_one_bit_tiles(tmp_path, rows_path_calls, counting, width):
    """1-bit tiles all set, all clear or mixed, against 1-bit and 8-bit partners; a last tile
    column whose width is not a multiple of 8 carries padding bits and is always counted."""
    body = _patchwork(40, [0, 1], shape=(H, width)).astype(bool)
    dye = _patchwork(41, [0, 1], shape=(H, width)).astype(bool)
    gray = _patchwork(42, [0, 255, 127, 128], shape=(H, width)).astype(np.uint8)
    tifffile.imwrite(tmp_path / "body.tif", body, tile=TILE, photometric="miniswhite",
                     compression="zlib")
    tifffile.imwrite(tmp_path / "dye.tif", dye, tile=TILE, photometric="minisblack",
                     compression="packbits")
    tifffile.imwrite(tmp_path / "gray.tif", gray, tile=TILE, photometric="minisblack")
    got = detect(tmp_path / "body.tif", tmp_path / "dye.tif", device="cpu")
    assert _got(got) == _counts(body, dye)
    got = detect(tmp_path / "body.tif", tmp_path / "gray.tif", device="cpu")
    assert _got(got) == _counts(body, gray >= 128)
    got = detect(tmp_path / "gray.tif", tmp_path / "dye.tif", device="cpu")
    assert _got(got) == _counts(gray < 128, dye)
    assert rows_path_calls == []


class _TiledArray(ArrayReader):
    """Rows in memory served as a grid of tiles; tiles past the image hold garbage (0xA5)."""

    def __init__(self, data, enc, grid):
        super().__init__(data, enc)
        self._grid = grid

    @property
    def tile_grid(self):
        return self._grid

    def read_tile(self, band, col):
        rows, cols = self._grid
        items = cols // 8 if self.packed else cols
        tile = np.full((rows, items), 0xA5, self.dtype)
        part = self._data[band * rows:(band + 1) * rows, col * items:(col + 1) * items]
        tile[:part.shape[0], :part.shape[1]] = part
        return tile


def _patch_rows(rng, tag, rows, width, grid):
    """Rows in the storage encoding ``tag`` whose tiles are each all 0x00 / all 0xFF bytes (or
    0 / max values), or random; packed rows keep random padding bits in their last byte."""
    data, enc = random_block(rng, tag, rows, width, threshold=200 if tag == "u8" else 40000)
    items = grid[1] // 8 if tag == "packed" else grid[1]
    full = np.iinfo(data.dtype).max
    for r0 in range(0, rows, grid[0]):
        for c0 in range(0, data.shape[1], items):
            pick = rng.integers(3)
            if pick < 2:
                data[r0:r0 + grid[0], c0:c0 + items] = (0, full)[pick]
    if tag == "packed" and width % 8:
        data[:, -1] |= np.uint8(0xFF >> (width % 8)) & rng.integers(0, 256, rows, np.uint8)
    return data, enc


@pytest.mark.parametrize("body_tag,dye_tag", PAIRS)
@pytest.mark.parametrize("width", [517, 512])
def test_uniform_tiles_against_numpy_with_garbage_padding(counting, body_tag, dye_tag, width):
    """Tile by tile against the obvious NumPy count, with random padding bits in packed rows and
    garbage past the image: neither may count."""
    from dragon_gpu.engines.cpu import count_tiles

    rng = np.random.default_rng(width + len(body_tag) * 7 + len(dye_tag))
    grid = (32, 64)
    for _ in range(4):
        body, benc = _patch_rows(rng, body_tag, H, width, grid)
        dye, denc = _patch_rows(rng, dye_tag, H, width, grid)
        c = count_tiles(_TiledArray(body, benc, grid), benc, _TiledArray(dye, denc, grid), denc,
                        [RowRange(0, 100), RowRange(100, H)], grid)
        assert (c.body, c.dye, c.dye_in_body) == numpy_counts(body, benc, dye, denc)


@pytest.mark.parametrize("rows_per_strip", [1, 16, 64, H])
def test_strips_of_one_height_are_counted_strip_by_strip(tmp_path, rows_path_calls, counting,
                                                         rows_per_strip):
    """Full-width strips of the same height form a grid one tile wide: no rows are assembled,
    the short last strip counts only its rows."""
    body, dye = _patchwork(50, [0, 255, 127, 128]).astype(np.uint8), _gray(51)
    for name, data in (("body", body), ("dye", dye)):
        tifffile.imwrite(tmp_path / f"{name}.tif", data, rowsperstrip=rows_per_strip,
                         compression="zlib", photometric="minisblack")
    ticks = []
    got = detect(tmp_path / "body.tif", tmp_path / "dye.tif", device="cpu", threshold=128,
                 progress=lambda done, total: ticks.append(done))
    assert _got(got) == _counts(body < 128, dye >= 128)
    assert rows_path_calls == [] and ticks[-1] == H


@pytest.mark.parametrize("width", [517, 512])
def test_one_bit_strips_and_full_width_hdf5_chunks(tmp_path, rows_path_calls, counting, width):
    rng = np.random.default_rng(width)
    body, dye = rng.random((H, width)) < 0.6, rng.random((H, width)) < 0.3
    tifffile.imwrite(tmp_path / "body.tif", body, rowsperstrip=32, photometric="miniswhite",
                     compression="zlib")
    tifffile.imwrite(tmp_path / "dye.tif", dye, rowsperstrip=32, photometric="minisblack")
    got = detect(tmp_path / "body.tif", tmp_path / "dye.tif", device="cpu")
    assert _got(got) == _counts(body, dye)
    gb, gd = _gray(52, np.uint16, (H, width)), _gray(53, np.uint16, (H, width))
    _h5(tmp_path / "body.h5", gb, (40, width), compression="gzip")
    _h5(tmp_path / "dye.h5", gd, (40, width), compression="gzip", shuffle=True)
    got = detect(tmp_path / "body.h5", tmp_path / "dye.h5", device="cpu", threshold=30000)
    assert _got(got) == _counts(gb < 30000, gd >= 30000)
    assert rows_path_calls == []


def test_strips_that_do_not_fit_take_the_row_path(tmp_path, rows_path_calls, monkeypatch):
    """Strips of other heights, or strips larger than the blocks the memory budget allows,
    are read as rows, with the same counts."""
    from dragon_gpu.io import _decode

    body, dye = _gray(54), _gray(55)
    tifffile.imwrite(tmp_path / "body.tif", body, rowsperstrip=16, compression="zlib")
    tifffile.imwrite(tmp_path / "dye.tif", dye, rowsperstrip=32, compression="zlib")
    tifffile.imwrite(tmp_path / "dye16.tif", dye, rowsperstrip=16, compression="zlib")
    want = _counts(body < 128, dye >= 128)
    assert _got(detect(tmp_path / "body.tif", tmp_path / "dye.tif", device="cpu")) == want
    assert rows_path_calls
    rows_path_calls.clear()
    # 64 decode threads, each holding a strip of both inputs, against a ring of 2 blocks
    monkeypatch.setattr(_decode, "decode_workers", lambda: 64)
    assert _got(detect(tmp_path / "body.tif", tmp_path / "dye16.tif", device="cpu",
                       block_rows=32)) == want
    assert rows_path_calls


@pytest.mark.parametrize("rows_per_strip", [16, 61])
def test_strip_histograms_are_walked_strip_by_strip(tmp_path, rows_path_calls, rows_per_strip):
    """The histogram pass of the threshold methods walks strips of one height like tiles."""
    from dragon_gpu.engines.cpu_hist import stream_histogram

    body, dye = _gray(56), _gray(57)
    body16 = _gray(58, np.uint16)
    for name, data in (("body", body), ("dye", dye), ("body16", body16)):
        tifffile.imwrite(tmp_path / f"{name}.tif", data, rowsperstrip=rows_per_strip,
                         compression="zlib")
    with open_mask(tmp_path / "body.tif") as b, open_mask(tmp_path / "dye.tif") as d, \
            open_mask(tmp_path / "body16.tif") as b16:
        blocks = [RowRange(0, 100), RowRange(100, H)]
        want = np.bincount((body.astype(np.int64) << 8 | dye).ravel(), minlength=1 << 16)
        assert np.array_equal(stream_histogram((b, d), blocks, 2), want)
        assert np.array_equal(stream_histogram((b16,), blocks, 2),
                              np.bincount(body16.ravel(), minlength=1 << 16))
    assert rows_path_calls == []
