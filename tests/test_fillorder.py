"""FillOrder=2 (LSB2MSB) applies to the stored bytes, before decompression, at every bit depth.

The files are written the way libtiff writes FillOrder=2 (each stored byte bit-reversed), and the
expected pixels come from tifffile's own reading of them, which follows libtiff.
"""

from __future__ import annotations


import numpy as np
import pytest
import tifffile

from dragon_gpu.io import open_mask
from tests.helpers.files import FILLORDER_PLACEHOLDER, make_fillorder2



def _write_lsb2msb(path, data, compression):
    tifffile.imwrite(path, data, photometric="minisblack", compression=compression,
                     rowsperstrip=8, extratags=[FILLORDER_PLACEHOLDER])
    make_fillorder2(path)


@pytest.mark.parametrize("compression", [None, "packbits", "deflate", "lzw", "zstd"])
@pytest.mark.parametrize("bits", [1, 8, 16])
def test_lsb2msb_reads_like_tifffile(tmp_path, compression, bits):
    rng = np.random.default_rng(bits)
    height, width = 40, 37
    if bits == 1:
        data = rng.random((height, width)) < 0.5
    else:
        dtype = np.uint8 if bits == 8 else np.uint16
        data = rng.integers(0, np.iinfo(dtype).max, (height, width), dtype=dtype)
    path = tmp_path / "lsb2msb.tif"
    _write_lsb2msb(path, data, compression)
    expected = tifffile.imread(path)
    assert np.array_equal(expected, data)  # the file really is the image, bit-reversed on disk
    with open_mask(path) as reader:
        assert reader.describe()["fillorder"] == "LSB2MSB"
        rows = reader.read_rows(0, height)
    got = np.unpackbits(rows, axis=1, count=width).astype(bool) if bits == 1 else rows
    assert np.array_equal(got, expected)
