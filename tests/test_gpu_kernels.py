"""The CUDA kernel sources, checked without a GPU.

* Every ``.cu`` file compiles with ``nvcc -arch=sm_90`` as the text NVRTC is given (its header
  inlined), and exports every kernel the engine asks for -- skipped only where nvcc is absent.
* The kernels' per-thread logic runs on the CPU: each ``.cu`` is compiled as C++ against
  ``cuda_host_shim.h`` (one thread a block, blocks one after the other) and its counts are
  compared with plain NumPy on random blocks of every encoding pair, odd widths and several
  grid sizes. This checks the index math, row padding, tails and rules of the real source; the
  warp-shuffle reduction needs a GPU (``test_gpu.py``).
"""

from __future__ import annotations

import re
import shutil
import subprocess

import numpy as np
import pytest

from dragon_gpu.engines.gpu._kernels import KERNEL_DIR, KERNEL_FILES, kernel_source
from dragon_gpu.engines.gpu._plan import (ALIGN, device_nbytes, histogram_for, histogram_grid,
                                          kernel_for)
from tests.helpers import cuda_emulation as emu
from tests.helpers.engine_cases import PAIRS, WIDTHS, make_encoding, numpy_counts, random_block


def test_every_cu_file_is_listed():
    from dragon_gpu.engines.gpu.decode import DECODE_KERNEL_FILES

    # The decode kernels are checked in test_gpu_decode_kernels.py.
    assert sorted(p.name for p in KERNEL_DIR.glob("*.cu")) == sorted(KERNEL_FILES
                                                                       + DECODE_KERNEL_FILES)


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc is not installed")
def test_every_cu_compiles_for_sm90(tmp_path):
    """One nvcc run over the text NVRTC is given (the .cu with common.cuh inlined), to PTX for
    sm_90; every kernel the engine can ask for is in it."""
    for file in KERNEL_FILES:
        (tmp_path / file).write_text(kernel_source(file))
    run = subprocess.run(["nvcc", "-arch=sm_90", "-Werror", "all-warnings", "--ptx",
                          *KERNEL_FILES], cwd=tmp_path, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    entries = set()
    for file in KERNEL_FILES:
        ptx = (tmp_path / file).with_suffix(".ptx").read_text()
        entries |= set(re.findall(r"\.entry\s+(\w+)", ptx))
    tags = ("packed", "u8", "u16")
    wanted = {"probe", "histogram_u8", "histogram_u16", "histogram_u8_u8"}
    wanted |= {kernel_for(make_encoding(b, 9, 1, True), make_encoding(d, 9, 1, True)).name
               for b in tags for d in tags}
    assert entries == wanted


# -- the kernels' logic on the CPU ----------------------------------------------------------------
@pytest.fixture(scope="module")
def emulated(tmp_path_factory):
    """``file -> ctypes.CDLL`` of each counting kernel built as C++ for the CPU."""
    if emu.compiler() is None:
        pytest.skip("no C++ compiler to emulate the kernels on the CPU")
    out = tmp_path_factory.mktemp("emulated")
    return {file: emu.build(kernel_source(file), out)
            for file in ("packed_packed.cu", "plane_plane.cu", "mixed.cu", "histogram.cu")}


def _device_copy(data: np.ndarray, nbytes: int, rng) -> np.ndarray:
    """``data``'s bytes at the start of a 16-byte aligned buffer of ``nbytes`` bytes whose rest is
    garbage, like a reused device slot."""
    raw = rng.integers(0, 256, size=nbytes + ALIGN, dtype=np.uint8)
    offset = (-raw.ctypes.data) % ALIGN
    buf = raw[offset:offset + nbytes]
    flat = np.ascontiguousarray(data).view(np.uint8).reshape(-1)
    buf[:flat.size] = flat
    return buf


def emulate(libs, body, body_enc, dye, dye_enc, grid: int, counters=None, rng=None):
    """Run the pair's kernel as ``grid`` single-thread blocks; returns the three counters."""
    rng = rng or np.random.default_rng(0)
    spec = kernel_for(body_enc, dye_enc)
    rows = body.shape[0]
    b = _device_copy(body, device_nbytes(rows, body_enc), rng)
    d = _device_copy(dye, device_nbytes(rows, dye_enc), rng)
    counters = np.zeros(3, dtype=np.uint64) if counters is None else counters
    u32 = np.uint32
    emu.launch(libs[spec.file], spec.name, grid, 1,
               (b.ctypes.data, d.ctypes.data, u32(rows), u32(body_enc.width),
                u32(body_enc.rule.threshold), u32(body_enc.rule.high),
                u32(dye_enc.rule.threshold), u32(dye_enc.rule.high), counters.ctypes.data))
    return counters


@pytest.mark.parametrize("pair", PAIRS, ids=lambda p: f"{p[0]}-{p[1]}")
def test_emulated_kernels_match_numpy(emulated, pair):
    rng = np.random.default_rng(sum(map(ord, "".join(pair))))
    for width in WIDTHS:
        for rows in (1, 2, 3, 17):
            body, body_enc = random_block(rng, pair[0], rows, width)
            dye, dye_enc = random_block(rng, pair[1], rows, width)
            want = numpy_counts(body, body_enc, dye, dye_enc)
            for grid in (1, 3, 7):
                got = emulate(emulated, body, body_enc, dye, dye_enc, grid, rng=rng)
                assert tuple(int(v) for v in got) == want, (pair, width, rows, grid)


@pytest.mark.parametrize("pair", [("packed", "packed"), ("u8", "packed"), ("u16", "u8")],
                         ids=lambda p: f"{p[0]}-{p[1]}")
def test_emulated_kernels_every_rule(emulated, pair):
    """All four polarity pairs on all-set / all-zero inputs give exact, hand-known counts."""
    rows, width = 5, 37
    pixels = rows * width
    rng = np.random.default_rng(3)
    for body_high in (True, False):
        for dye_high in (True, False):
            body, body_enc = random_block(rng, pair[0], rows, width, high=body_high, threshold=1)
            dye, dye_enc = random_block(rng, pair[1], rows, width, high=dye_high, threshold=1)
            body[...] = 0xFF if body_enc.packed else 0   # bits all set / values all 0
            dye[...] = 0
            # packed all set: member iff high; plane 0 with threshold 1: member iff not high.
            b_member = body_high if body_enc.packed else not body_high
            d_member = not dye_high
            got = emulate(emulated, body, body_enc, dye, dye_enc, grid=2)
            want = (pixels * b_member, pixels * d_member, pixels * (b_member and d_member))
            assert tuple(int(v) for v in got) == want


def test_emulated_kernels_accumulate_without_reset(emulated):
    rng = np.random.default_rng(11)
    body, body_enc = random_block(rng, "packed", 9, 77)
    dye, dye_enc = random_block(rng, "u8", 9, 77)
    once = np.array(numpy_counts(body, body_enc, dye, dye_enc), dtype=np.uint64)
    counters = np.zeros(3, dtype=np.uint64)
    for _ in range(5):
        emulate(emulated, body, body_enc, dye, dye_enc, grid=3, counters=counters)
    assert counters.tolist() == (5 * once).tolist()


# -- the histogram kernel --------------------------------------------------------------------------
def emulate_histogram(libs, arrays, grid_parts: int, hist=None, rng=None):
    """Run the histogram kernel of ``arrays`` (one plane, or two uint8 planes) over
    ``grid_parts`` parts of the pixels (times the kernel's slices); returns the histogram."""
    rng = rng or np.random.default_rng(0)
    encs = [make_encoding(f"u{8 * a.dtype.itemsize}", a.shape[1], 1, True) for a in arrays]
    spec = histogram_for(encs)
    rows = arrays[0].shape[0]
    bufs = [_device_copy(a, device_nbytes(rows, e), rng) for a, e in zip(arrays, encs)]
    hist = np.zeros(spec.bins, dtype=np.uint64) if hist is None else hist
    ptrs = [b.ctypes.data for b in bufs] + [bufs[0].ctypes.data] * (2 - len(bufs))
    emu.launch(libs["histogram.cu"], spec.name, grid_parts * spec.slices, 1,
               (*ptrs, np.uint32(rows), np.uint32(arrays[0].shape[1]), hist.ctypes.data))
    return hist


def _gray(rng, dtype, rows, width, peaky=False):
    top = np.iinfo(dtype).max
    if peaky:  # a few values, as a mask stored as 8-bit holds
        return rng.choice(np.array([0, 1, top], dtype), size=(rows, width))
    return rng.integers(0, top, size=(rows, width), dtype=dtype, endpoint=True)


@pytest.mark.parametrize("kind", ["u8", "u16", "u8-u8"])
def test_emulated_histogram_matches_numpy(emulated, kind):
    """Every bin, every slice: bincount of the values (or of ``body << 8 | dye``), exactly."""
    rng = np.random.default_rng(len(kind))
    for width in (1, 7, 33, 130):
        for rows in (1, 3, 17):
            for peaky in (False, True):
                if kind == "u8-u8":
                    a, b = (_gray(rng, np.uint8, rows, width, peaky) for _ in range(2))
                    arrays = [a, b]
                    want = np.bincount((a.astype(np.int64) << 8 | b).ravel(), minlength=65536)
                else:
                    dtype = np.uint8 if kind == "u8" else np.uint16
                    a = _gray(rng, dtype, rows, width, peaky)
                    arrays = [a]
                    want = np.bincount(a.ravel(), minlength=256 if kind == "u8" else 65536)
                for parts in (1, 2, 5):
                    got = emulate_histogram(emulated, arrays, parts, rng=rng)
                    assert np.array_equal(got.astype(np.int64), want), (kind, width, rows, parts)


def test_emulated_histogram_accumulates(emulated):
    rng = np.random.default_rng(5)
    a = _gray(rng, np.uint16, 4, 50)
    hist = np.zeros(65536, dtype=np.uint64)
    for _ in range(3):
        emulate_histogram(emulated, [a], 2, hist=hist)
    assert np.array_equal(hist.astype(np.int64), 3 * np.bincount(a.ravel(), minlength=65536))


def test_histogram_grids_cover_every_slice():
    for spec in (histogram_for([make_encoding("u8", 9, 1, True)]),
                 histogram_for([make_encoding("u16", 9, 1, True)]),
                 histogram_for([make_encoding("u8", 9, 1, True)] * 2)):
        for pixels, sms in ((1, 1), (100, 2), (10**8, 132)):
            grid = histogram_grid(spec, pixels, sms)
            assert grid % spec.slices == 0 and grid >= spec.slices
    with pytest.raises(ValueError):
        histogram_for([make_encoding("packed", 9, 1, True)])
    with pytest.raises(ValueError):
        histogram_for([make_encoding("u8", 9, 1, True), make_encoding("u16", 9, 1, True)])
