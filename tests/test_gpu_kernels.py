"""The CUDA kernel sources, checked without a GPU.

* Every ``.cu`` file compiles with ``nvcc -arch=sm_90``, both as shipped (with ``-I``) and as the
  text NVRTC is given (header inlined) -- skipped only where nvcc is absent.
* The kernels' per-thread logic runs on the CPU: each ``.cu`` is compiled as C++ against
  ``cuda_host_shim.h`` (one thread a block, blocks one after the other) and its counts are
  compared with plain NumPy on random blocks of every encoding pair, odd widths and several
  grid sizes. This checks the index math, row padding, tails and rules of the real source; the
  warp-shuffle reduction needs a GPU (``test_gpu.py``).
"""

from __future__ import annotations

import ctypes
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from _gpu_cases import PAIRS, WIDTHS, numpy_counts, random_block
from dragon_gpu.engines.gpu._kernels import KERNEL_DIR, KERNEL_FILES, kernel_source
from dragon_gpu.engines.gpu._plan import ALIGN, device_nbytes, kernel_for

SHIM = Path(__file__).with_name("cuda_host_shim.h")


def test_every_cu_file_is_listed():
    assert sorted(p.name for p in KERNEL_DIR.glob("*.cu")) == sorted(KERNEL_FILES)


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc is not installed")
@pytest.mark.parametrize("file", KERNEL_FILES)
def test_cu_compiles_for_sm90(file, tmp_path):
    shipped = subprocess.run(
        ["nvcc", "-arch=sm_90", "-Werror", "all-warnings", "-I", str(KERNEL_DIR), "-c",
         str(KERNEL_DIR / file), "-o", str(tmp_path / "shipped.o")],
        capture_output=True, text=True)
    assert shipped.returncode == 0, shipped.stderr
    inlined = tmp_path / file
    inlined.write_text(kernel_source(file))
    assert "#include" not in inlined.read_text()
    nvrtc_text = subprocess.run(
        ["nvcc", "-arch=sm_90", "-Werror", "all-warnings", "--ptx", str(inlined), "-o",
         str(tmp_path / "inlined.ptx")], capture_output=True, text=True)
    assert nvrtc_text.returncode == 0, nvrtc_text.stderr
    ptx = (tmp_path / "inlined.ptx").read_text()
    assert ".entry" in ptx


# -- the kernels' logic on the CPU ----------------------------------------------------------------
_KERNEL_ARGS = [ctypes.c_void_p, ctypes.c_void_p] + [ctypes.c_uint32] * 6 + [
    ctypes.POINTER(ctypes.c_uint64)]


@pytest.fixture(scope="module")
def emulated(tmp_path_factory):
    """``file -> ctypes.CDLL`` of each counting kernel compiled as C++ for the CPU."""
    cxx = shutil.which("g++") or shutil.which("c++")
    if cxx is None:
        pytest.skip("no C++ compiler to emulate the kernels on the CPU")
    out = tmp_path_factory.mktemp("emulated")
    libs = {}
    for file in ("packed_packed.cu", "plane_plane.cu", "mixed.cu"):
        src = out / file
        src.write_text(kernel_source(file))
        lib = out / (file + ".so")
        run = subprocess.run([cxx, "-O1", "-shared", "-fPIC", "-Wall", "-Wno-unknown-pragmas",
                              "-x", "c++", "-include", str(SHIM), str(src), "-o", str(lib)],
                             capture_output=True, text=True)
        assert run.returncode == 0, run.stderr
        libs[file] = ctypes.CDLL(str(lib))
    return libs


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
    lib = libs[spec.file]
    fn = getattr(lib, spec.name)
    fn.argtypes, fn.restype = _KERNEL_ARGS, None
    rows = body.shape[0]
    b = _device_copy(body, device_nbytes(rows, body_enc), rng)
    d = _device_copy(dye, device_nbytes(rows, dye_enc), rng)
    counters = np.zeros(3, dtype=np.uint64) if counters is None else counters
    args = (b.ctypes.data, d.ctypes.data, rows, body_enc.width,
            body_enc.rule.threshold, int(body_enc.rule.high),
            dye_enc.rule.threshold, int(dye_enc.rule.high),
            counters.ctypes.data_as(ctypes.POINTER(ctypes.c_uint64)))
    for block in range(grid):
        lib.dragon_emulate_block(block, grid)
        fn(*args)
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
    """All four polarity combinations on all-set / all-clear inputs give exact, hand-known counts."""
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
