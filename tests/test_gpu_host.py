"""The CUDA engine's host-side decisions, with plain NumPy (no CuPy, no GPU)."""

from __future__ import annotations

import re
import subprocess
import sys

import numpy as np
import pytest

from dragon_gpu.engines.gpu._kernels import KERNEL_DIR, kernel_source
from dragon_gpu.engines.gpu._plan import (ALIGN, BLOCKS_PER_SM, MAX_LAUNCH_PIXELS, device_nbytes,
                                          grid_size, kernel_for, max_rows, split_for_devices,
                                          sub_blocks, work_items)
from dragon_gpu.io.base import Encoding, PixelRule
from dragon_gpu.model import RowRange
from tests.helpers.engine_cases import make_encoding


def enc(tag: str, width: int = 10) -> Encoding:
    return make_encoding(tag, width, 1, True)


@pytest.mark.parametrize("body,dye,file,name", [
    ("packed", "packed", "packed_packed.cu", "count_packed_packed"),
    ("u8", "u8", "plane_plane.cu", "count_plane_plane_u8_u8"),
    ("u8", "u16", "plane_plane.cu", "count_plane_plane_u8_u16"),
    ("u16", "u8", "plane_plane.cu", "count_plane_plane_u16_u8"),
    ("u16", "u16", "plane_plane.cu", "count_plane_plane_u16_u16"),
    ("packed", "u8", "mixed.cu", "count_packed_plane_u8"),
    ("packed", "u16", "mixed.cu", "count_packed_plane_u16"),
    ("u8", "packed", "mixed.cu", "count_plane_packed_u8"),
    ("u16", "packed", "mixed.cu", "count_plane_packed_u16"),
])
def test_kernel_for_each_pair(body, dye, file, name):
    spec = kernel_for(enc(body), enc(dye))
    assert (spec.file, spec.name) == (file, name)
    assert re.search(rf"\b{name}\b", (KERNEL_DIR / file).read_text())


@pytest.mark.parametrize("dtype", [np.int16, np.float32, np.dtype(">u2"), np.uint32])
def test_kernel_for_refuses_other_dtypes(dtype):
    odd = Encoding(False, 10, np.dtype(dtype), PixelRule(1, True, "test"))
    with pytest.raises(ValueError, match="plane rows must be"):
        kernel_for(odd, enc("u8"))


def test_kernel_for_refuses_different_widths():
    with pytest.raises(ValueError, match="widths differ: 10 and 11"):
        kernel_for(enc("u8", 10), enc("u8", 11))


def test_work_items_by_hand():
    # 5 rows of width 17: packed rows are 3 bytes (15 bytes), planes 85 pixels.
    assert work_items(kernel_for(enc("packed", 17), enc("packed", 17)), 5, 17) == 0  # 15 // 16
    assert work_items(kernel_for(enc("packed", 130), enc("packed", 130)), 5, 130) == 5  # 85 // 16
    assert work_items(kernel_for(enc("u8", 17), enc("u16", 17)), 5, 17) == 10  # 85 // 8
    assert work_items(kernel_for(enc("packed", 17), enc("u8", 17)), 5, 17) == 15  # bytes


def test_grid_size():
    assert grid_size(0, 132) == 1  # thread 0 always runs: it counts the tail
    assert grid_size(1, 132) == 1
    assert grid_size(256 * 3 + 1, 132) == 4
    assert grid_size(10 ** 9, 132) == 132 * BLOCKS_PER_SM


def test_device_nbytes_is_aligned_and_large_enough():
    assert device_nbytes(5, enc("packed", 17)) == 16  # 15 bytes
    assert device_nbytes(3, enc("u16", 3)) == 32  # 18 bytes
    assert device_nbytes(4, enc("u8", 4)) == 16  # exactly 16
    for rows in range(1, 20):
        for width in (1, 7, 9, 33):
            for tag in ("packed", "u8", "u16"):
                e = enc(tag, width)
                n = device_nbytes(rows, e)
                assert n % ALIGN == 0 and rows * e.row_nbytes <= n < rows * e.row_nbytes + ALIGN


def test_max_rows_respects_bytes_and_the_32_bit_index():
    assert max_rows(100, 300, 3000) == 10
    assert max_rows(100, 300, 10) == 1  # never zero
    assert max_rows(100_000, 200_000, 1 << 40) == MAX_LAUNCH_PIXELS // 100_000 == 21474


def test_sub_blocks_cover_the_same_rows():
    blocks = [RowRange(0, 10), RowRange(10, 13), RowRange(13, 30)]
    pieces = sub_blocks(blocks, 4)
    assert pieces == [RowRange(0, 4), RowRange(4, 8), RowRange(8, 10), RowRange(10, 13),
                      RowRange(13, 17), RowRange(17, 21), RowRange(21, 25), RowRange(25, 29),
                      RowRange(29, 30)]
    with pytest.raises(ValueError):
        sub_blocks(blocks, 0)


@pytest.mark.parametrize("devices", [1, 2, 3, 4, 7])
@pytest.mark.parametrize("sizes", [[5] * 20, [1], [3, 100, 2, 2, 50], [7] * 3, [1] * 13])
def test_split_for_devices_is_contiguous_and_exact(devices, sizes):
    starts = np.concatenate([[0], np.cumsum(sizes)]).tolist()
    blocks = [RowRange(a, b) for a, b in zip(starts[:-1], starts[1:])]
    runs = split_for_devices(blocks, devices)
    assert len(runs) == devices
    assert [b for run in runs for b in run] == blocks  # every block once, in row order
    total = sum(sizes)
    for run in runs:
        if run:  # a run's rows are within one block of its fair share
            assert abs(sum(b.rows for b in run) - total / devices) <= max(sizes)


def test_split_for_devices_balances_equal_blocks():
    blocks = [RowRange(i * 10, i * 10 + 10) for i in range(8)]
    assert [len(run) for run in split_for_devices(blocks, 2)] == [4, 4]
    assert [len(run) for run in split_for_devices(blocks, 4)] == [2, 2, 2, 2]


def test_kernel_source_inlines_the_header_once():
    for file in ("packed_packed.cu", "plane_plane.cu", "mixed.cu"):
        text = kernel_source(file)
        assert "#include" not in text
        assert text.count("#define DRAGON_GPU_COMMON_CUH") == 1


def test_importing_the_engine_does_not_import_cupy():
    code = ("import sys, dragon_gpu.engines.gpu as g, dragon_gpu.cli; "
            "print('cupy' in sys.modules, 'cupyx' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
