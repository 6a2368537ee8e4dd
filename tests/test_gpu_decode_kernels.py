"""The GPU decode kernels (Adler-32, FillOrder bit reversal, predictor undo, assembly of segments
into rows) compiled with nvcc for sm_90 and run as C++ on the CPU against plain NumPy."""

from __future__ import annotations

import re
import shutil
import subprocess
import zlib

import numpy as np
import pytest

from dragon_gpu.engines.gpu._kernels import KERNEL_DIR, kernel_source
from dragon_gpu.engines.gpu.decode import DECODE_KERNEL_FILES
from tests.helpers import cuda_emulation as emu
from tests.helpers.files import REVERSED_BYTES



@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc is not installed")
def test_decode_kernels_compile_for_sm90(tmp_path):
    for file in DECODE_KERNEL_FILES:
        (tmp_path / file).write_text(kernel_source(file))
    run = subprocess.run(["nvcc", "-arch=sm_90", "-Werror", "all-warnings", "--ptx",
                          *DECODE_KERNEL_FILES], cwd=tmp_path, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    entries = set()
    for file in DECODE_KERNEL_FILES:
        entries |= set(re.findall(r"\.entry\s+(\w+)",
                                  (tmp_path / file).with_suffix(".ptx").read_text()))
    assert entries == {"adler32_segments", "reverse_bits", "undo_predictor", "assemble_rows"}


def test_files_exist():
    assert all((KERNEL_DIR / f).is_file() for f in DECODE_KERNEL_FILES)


@pytest.fixture(scope="module")
def libs(tmp_path_factory):
    if emu.compiler() is None:
        pytest.skip("no C++ compiler to emulate the kernels on the CPU")
    out = tmp_path_factory.mktemp("decode-kernels")
    return {f: emu.build(kernel_source(f), out) for f in DECODE_KERNEL_FILES}


def ptr(a: np.ndarray) -> int:
    return a.ctypes.data


u32 = np.uint32


@pytest.mark.parametrize("grid", [1, 2, 5])
def test_adler32_segments(libs, grid):
    rng = np.random.default_rng(grid)
    sizes = [0, 1, 4095, 4096, 4097, 20_000, 70_001]
    at = np.cumsum([0] + [-(-n // 16) * 16 for n in sizes[:-1]]).astype(np.uint64)
    data = rng.integers(0, 256, int(at[-1]) + sizes[-1], dtype=np.uint8)
    data[int(at[5]):int(at[5]) + sizes[5]] = 255  # the largest running sums
    out = np.zeros(len(sizes), np.uint32)
    emu.launch(libs["adler32.cu"], "adler32_segments", grid, 1,
               [ptr(data), ptr(at), u32(len(sizes)), ptr(np.asarray(sizes, np.uint32)),
                ptr(out)])
    want = [zlib.adler32(data[int(a):int(a) + n].tobytes()) for a, n in zip(at, sizes)]
    assert out.tolist() == want
    data[int(at[6]) + 12345] ^= 1  # one flipped bit is seen
    emu.launch(libs["adler32.cu"], "adler32_segments", grid, 1,
               [ptr(data), ptr(at), u32(len(sizes)), ptr(np.asarray(sizes, np.uint32)),
                ptr(out)])
    assert out[6] != want[6] and out[:6].tolist() == want[:6]


@pytest.mark.parametrize("grid", [1, 3])
def test_reverse_bits(libs, grid):
    data = np.arange(256, dtype=np.uint8).repeat(3)
    want = REVERSED_BYTES[data]
    emu.launch(libs["decode_filters.cu"], "reverse_bits", grid, 1,
               [ptr(data), u32(0), u32(data.size - 5)])
    assert np.array_equal(data[:-5], want[:-5]) and np.array_equal(data[-5:], np.arange(256,
                          dtype=np.uint8).repeat(3)[-5:])


@pytest.mark.parametrize("itemsize, swap", [(1, 0), (2, 0), (2, 1)])
@pytest.mark.parametrize("grid", [1, 4])
def test_undo_predictor(libs, itemsize, swap, grid):
    rng = np.random.default_rng(itemsize * 10 + swap)
    seg_rows, samples = 5, 23
    row_bytes = samples * itemsize
    sizes = [seg_rows * row_bytes, seg_rows * row_bytes, 2 * row_bytes]  # a short last strip
    at = np.array([0, 240, 480], np.uint64)
    buf = rng.integers(0, 256, 480 + sizes[2] + 7, dtype=np.uint8)
    dtype = np.uint8 if itemsize == 1 else np.dtype(">u2" if swap else "<u2")
    want = buf.copy()
    for a, n in zip(at, sizes):
        diffs = buf[int(a):int(a) + n].view(dtype).reshape(-1, samples)
        sums = np.cumsum(diffs.astype(np.int64), axis=1) % (256 ** itemsize)
        want[int(a):int(a) + n] = sums.astype("<u2" if itemsize == 2 else np.uint8).view(
            np.uint8).reshape(-1)
    emu.launch(libs["decode_filters.cu"], "undo_predictor", grid, 1,
               [ptr(buf), ptr(at), u32(3), ptr(np.asarray(sizes, np.uint32)), u32(seg_rows),
                u32(row_bytes), u32(itemsize), u32(swap)])
    assert np.array_equal(buf, want)


@pytest.mark.parametrize("shuffle, swap", [(1, 0), (1, 1), (2, 0), (2, 1)])
@pytest.mark.parametrize("grid", [1, 7])
def test_assemble_rows(libs, shuffle, swap, grid):
    """A 3 x 2 grid of 4-row, 6-byte segments (past the image's 10 bytes a row), rows 2..9."""
    rng = np.random.default_rng(shuffle + 2 * swap)
    seg_rows, seg_row_bytes, across, row_bytes = 4, 6, 2, 10
    segs = [rng.integers(0, 256, (seg_rows, seg_row_bytes), dtype=np.uint8) for _ in range(6)]
    at = (np.arange(6) * 32).astype(np.uint64)
    dec = np.zeros(6 * 32, np.uint8)
    for k, s in enumerate(segs):
        flat = s.reshape(-1)
        if swap:
            flat = flat.reshape(-1, 2)[:, ::-1].reshape(-1)  # stored big-endian
        if shuffle > 1:
            flat = flat.reshape(-1, shuffle).T.reshape(-1)  # stored shuffled
        dec[int(at[k]):int(at[k]) + flat.size] = flat
    image = np.vstack([np.hstack(segs[b * across:(b + 1) * across]) for b in range(3)])
    row0, rows = 2, 8  # starts inside band 0
    out = np.zeros((rows, row_bytes), np.uint8)
    emu.launch(libs["decode_filters.cu"], "assemble_rows", grid, 1,
               [ptr(out), ptr(dec), u32(rows), ptr(at), u32(row0), u32(row_bytes),
                u32(seg_rows), u32(seg_row_bytes), u32(0), u32(across), u32(swap),
                u32(shuffle)])
    assert np.array_equal(out, image[row0:row0 + rows, :row_bytes])
