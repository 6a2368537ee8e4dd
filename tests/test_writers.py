"""Streaming writers: files read back pixel for pixel by tifffile, Pillow and h5py; atomic output."""

from __future__ import annotations

import os

import h5py
import numpy as np
import pytest
import tifffile
from PIL import Image

from dragon_gpu.io.writers import (AtomicOutput, Hdf5RowWriter, TiffRowWriter, segment_rows_for,
                                   write_hdf5, write_tiff)


def _bits(rows, cols, seed=0, p=0.3):
    return np.random.default_rng(seed).random((rows, cols)) < p


def _blocks(arr, sizes):
    """Split ``arr`` into row blocks of the given heights (the last takes the rest)."""
    out, start = [], 0
    for n in sizes:
        out.append(arr[start:start + n])
        start += n
    out.append(arr[start:])
    return out


def _leftovers(folder):
    return [n for n in os.listdir(folder) if n.endswith(".part")]


@pytest.mark.parametrize("compression", ["deflate", "lzw", "packbits", "zstd", "none"])
@pytest.mark.parametrize("photometric", ["minisblack", "miniswhite"])
@pytest.mark.parametrize("bigtiff", [False, True])
def test_1bit_tiff_round_trip(tmp_path, compression, photometric, bigtiff):
    rows, cols = 103, 77  # strips of 16 do not divide the rows; width not a multiple of 8
    bits = _bits(rows, cols)
    packed = np.packbits(bits, axis=1)
    path = tmp_path / "m.tif"
    info = write_tiff(path, _blocks(packed, [5, 40, 1]), (rows, cols), bits=1,
                      photometric=photometric, compression=compression, rows_per_strip=16,
                      bigtiff=bigtiff, workers=2)
    assert info["segments"] == 7 and info["bytes"] == path.stat().st_size
    with tifffile.TiffFile(path) as tif:
        page = tif.pages[0]
        assert tif.is_bigtiff == bigtiff
        assert page.bitspersample == 1 and page.rowsperstrip == 16
        assert page.photometric == (1 if photometric == "minisblack" else 0)
        assert page.compression == {"deflate": 8, "lzw": 5, "packbits": 32773, "zstd": 50000,
                                    "none": 1}[compression]
        # tifffile returns the stored bits, whatever the photometric.
        np.testing.assert_array_equal(page.asarray(), bits)
    if compression != "zstd":  # Pillow's libtiff may lack zstd
        with Image.open(path) as im:
            white = np.asarray(im.convert("L")) == 255
        np.testing.assert_array_equal(white, bits if photometric == "minisblack" else ~bits)
    assert _leftovers(tmp_path) == []


@pytest.mark.parametrize("compression", ["deflate", "lzw", "packbits", "zstd", "none"])
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_gray_tiff_round_trip(tmp_path, compression, dtype):
    rng = np.random.default_rng(1)
    arr = rng.integers(0, np.iinfo(dtype).max, (45, 31), dtype=dtype)
    path = tmp_path / "g.tif"
    write_tiff(path, _blocks(arr, [7, 7]), arr.shape, bits=arr.itemsize * 8,
               compression=compression, rows_per_strip=10)
    np.testing.assert_array_equal(tifffile.imread(path), arr)
    if compression != "zstd":
        with Image.open(path) as im:
            np.testing.assert_array_equal(np.asarray(im), arr)


@pytest.mark.parametrize("compression", ["gzip", "lzf", "lz4", "zstd", "none"])
def test_hdf5_packed_and_plain_round_trip(tmp_path, compression):
    if compression in ("lz4", "zstd"):
        pytest.importorskip("hdf5plugin")
    rows, cols = 70, 29
    bits = _bits(rows, cols, seed=2)
    packed = np.packbits(bits, axis=1)
    path = tmp_path / "p.h5"
    write_hdf5(path, _blocks(packed, [3, 30]), (rows, cols), packed=True,
               compression=compression, chunk_rows=16)
    with h5py.File(path, "r") as f:
        ds = f["mask"]
        assert ds.shape == (rows, 4) and ds.chunks == (16, 4)
        assert ds.attrs["dragon_gpu_encoding"] == "packed-bits"
        assert int(ds.attrs["width"]) == cols and ds.attrs["bitorder"] == "big"
        np.testing.assert_array_equal(np.unpackbits(ds[...], axis=1, count=cols).astype(bool),
                                      bits)
    plane = np.random.default_rng(3).integers(0, 256, (rows, cols), dtype=np.uint8)
    write_hdf5(path, [plane], plane.shape, packed=False, compression=compression, chunk_rows=9)
    with h5py.File(path, "r") as f:
        np.testing.assert_array_equal(f["mask"][...], plane)
        assert "dragon_gpu_encoding" not in f["mask"].attrs


class _Boom(Exception):
    pass


def _interrupting(arr, after, exc):
    for i in range(arr.shape[0]):
        if i == after:
            raise exc
        yield arr[i:i + 1]


@pytest.mark.parametrize("exc", [KeyboardInterrupt(), _Boom()])
@pytest.mark.parametrize("fmt", ["tiff", "hdf5"])
def test_interrupted_write_leaves_nothing(tmp_path, fmt, exc):
    packed = np.packbits(_bits(64, 40), axis=1)
    path = tmp_path / ("x.tif" if fmt == "tiff" else "x.h5")
    write = write_tiff if fmt == "tiff" else write_hdf5
    rows = {"rows_per_strip": 8} if fmt == "tiff" else {"chunk_rows": 8}
    with pytest.raises(type(exc)):
        write(path, _interrupting(packed, 40, exc), (64, 40), **rows)
    assert os.listdir(tmp_path) == []


def test_interrupted_write_keeps_the_previous_file(tmp_path):
    path = tmp_path / "x.tif"
    path.write_bytes(b"previous")
    packed = np.packbits(_bits(64, 40), axis=1)
    with pytest.raises(KeyboardInterrupt):
        write_tiff(path, _interrupting(packed, 30, KeyboardInterrupt()), (64, 40),
                   rows_per_strip=8)
    assert path.read_bytes() == b"previous"
    assert _leftovers(tmp_path) == []


def test_wrong_number_of_rows_is_refused(tmp_path):
    packed = np.packbits(_bits(20, 16), axis=1)
    with pytest.raises(ValueError, match="19 rows"):
        write_tiff(tmp_path / "short.tif", [packed[:19]], (20, 16), rows_per_strip=8)
    with pytest.raises(ValueError, match="more than"):
        write_tiff(tmp_path / "long.tif", [packed, packed], (20, 16), rows_per_strip=8)
    assert os.listdir(tmp_path) == []


def test_bigtiff_is_chosen_when_the_file_may_pass_4_gib(tmp_path):
    cases = [((100_000, 100_000), 8, True),     # 10 GB of 8-bit pixels
             ((100_000, 100_000), 1, False),    # 1.25 GB packed: 1.9 GB worst case
             ((200_000, 200_000), 1, True)]     # 5 GB packed
    for shape, bits, expect in cases:
        out = AtomicOutput(tmp_path / "big.tif")
        writer = TiffRowWriter(out.tmp, shape, bits=bits)
        assert writer.bigtiff is expect, (shape, bits)
        writer.abort()
        out.discard()
    assert os.listdir(tmp_path) == []


def test_segment_rows_aim_at_a_mebibyte():
    assert segment_rows_for(12_500) == 80          # packed row of 100k pixels
    assert segment_rows_for(100_000) == 16         # floor of 16 rows
    assert segment_rows_for(32) == 4096            # cap of 4096 rows


def test_hdf5_unknown_compression_is_a_usage_error(tmp_path):
    from dragon_gpu.errors import UsageError

    with pytest.raises(UsageError, match="not an HDF5 compression"):
        Hdf5RowWriter(tmp_path / "x.h5", (8, 8), compression="lzw")
    with pytest.raises(UsageError, match="not a TIFF compression"):
        TiffRowWriter(tmp_path / "x.tif", (8, 8), compression="gzip")
