"""The compiled one-pass counting kernel of the CPU engine (``engines/_cpu_count.c``).

Expected counts are plain NumPy comparisons on the same arrays. Every vector kernel the CPU has
(AVX2, SSE2 and the plain loop) is checked, on lengths that end inside a vector and across the
points where the kernels empty their byte and 16-bit counters.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from dragon_gpu.engines import native
from dragon_gpu.engines.cpu import count_block
from dragon_gpu.io.base import Encoding, PixelRule
from tests.helpers.engine_cases import numpy_counts, random_block

try:
    from dragon_gpu.engines import _cpu_count as kernel
except ImportError:
    kernel = None

needs_kernel = pytest.mark.skipif(kernel is None, reason="the compiled CPU kernel is not built")
ORDER = ("scalar", "sse2", "avx2")
#: every kernel this CPU and build can run, from the plain loop up to the one chosen at import
LEVELS = list(ORDER[:ORDER.index(kernel.vectors()) + 1]) if kernel is not None else []
# Byte counters are emptied every 255 vectors (of 16 or 32 bytes), 16-bit ones every 16383 or
# 32767: lengths on both sides of those points, and ones that end inside a vector.
LENGTHS = [0, 1, 15, 16, 17, 31, 32, 33, 255 * 16, 255 * 32 - 1, 255 * 32 + 33, 16383 * 16 + 9,
           32767 * 8 + 3, 70001]


@pytest.fixture(params=LEVELS or [pytest.param(None, marks=needs_kernel)])
def level(request):
    before = kernel.vectors()
    kernel._set_vectors(request.param)
    yield request.param
    kernel._set_vectors(before)


def _expected(b, tb, hb, d, td, hd):
    bm = b.astype(np.int64) >= tb if hb else b.astype(np.int64) < tb
    dm = d.astype(np.int64) >= td if hd else d.astype(np.int64) < td
    return int(bm.sum()), int((bm & dm).sum()), int(dm.sum())


def _thresholds(maxval, rng):
    return [-5, 0, 1, 2, int(rng.integers(1, maxval)), maxval // 2 + 1, maxval, maxval + 1,
            maxval + 1000]


@pytest.mark.parametrize("bdt,ddt", [(np.uint8, np.uint8), (np.uint16, np.uint16),
                                     (np.uint8, np.uint16), (np.uint16, np.uint8)])
@pytest.mark.parametrize("n", LENGTHS)
def test_counts_like_numpy(level, bdt, ddt, n):
    rng = np.random.default_rng(n * 7 + np.dtype(bdt).itemsize * 3 + np.dtype(ddt).itemsize)
    b = rng.integers(0, np.iinfo(bdt).max, n, dtype=bdt, endpoint=True)
    d = rng.integers(0, np.iinfo(ddt).max, n, dtype=ddt, endpoint=True)
    tbs, tds = _thresholds(np.iinfo(bdt).max, rng), _thresholds(np.iinfo(ddt).max, rng)
    for tb in tbs:
        for td in (tds if n < 1000 else tds[::3]):
            for hb in (True, False):
                for hd in (True, False):
                    got = kernel.count_pair(b, 8 * b.itemsize, tb, hb, d, 8 * d.itemsize, td, hd)
                    assert got == _expected(b, tb, hb, d, td, hd), (tb, hb, td, hd)


def test_extreme_values_at_every_lane(level):
    """0 and the largest value, and the values either side of the threshold, at every position
    of a vector (unsigned comparisons, the 16-bit sign flip)."""
    for dt, t in ((np.uint8, 128), (np.uint8, 255), (np.uint8, 1), (np.uint16, 32768),
                  (np.uint16, 65535), (np.uint16, 1), (np.uint16, 255)):
        top = np.iinfo(dt).max
        vals = np.array([0, top, t - 1, t, min(t + 1, top), 127, 128, 255, 32767, 32768]
                        ).clip(0, top).astype(dt)
        b = np.tile(vals, 97)
        d = np.roll(b, 3)
        for hb in (True, False):
            assert kernel.count_pair(b, 8 * b.itemsize, t, hb, d, 8 * d.itemsize, t, True) == \
                _expected(b, t, hb, d, t, True)


def test_two_dimensional_planes_and_the_engine(level):
    rng = np.random.default_rng(5)
    for tag_b, tag_d in (("u8", "u8"), ("u16", "u16"), ("u8", "u16")):
        for width in (1, 33, 517):
            body, benc = random_block(rng, tag_b, 37, width)
            dye, denc = random_block(rng, tag_d, 37, width)
            c = count_block(body, benc, dye, denc)
            assert (c.body, c.dye, c.dye_in_body) == numpy_counts(body, benc, dye, denc)


@needs_kernel
def test_what_the_kernel_does_not_take_goes_to_numpy(monkeypatch):
    rng = np.random.default_rng(6)
    enc = Encoding(False, 40, np.dtype(np.uint16), PixelRule(30000, True, "test"))
    big = rng.integers(0, 65536, (20, 80), dtype=np.uint16)
    strided = big[:, ::2]  # rows not contiguous
    swapped = big[:, :40].astype(">u2")  # not native byte order
    for body in (strided, swapped):
        assert native.count_planes(body, enc, body, enc) is None
        c = count_block(body, enc, body, enc)
        n = int((body.astype(np.int64) >= 30000).sum())
        assert (c.body, c.dye_in_body, c.dye) == (n, n, n)
    # and without the kernel at all, the same counts from NumPy
    monkeypatch.setattr(native, "_kernel", None)
    for tag in ("u8", "u16"):
        body, benc = random_block(rng, tag, 50, 301)
        dye, denc = random_block(rng, tag, 50, 301)
        assert native.count_planes(body, benc, dye, denc) is None
        c = count_block(body, benc, dye, denc)
        assert (c.body, c.dye, c.dye_in_body) == numpy_counts(body, benc, dye, denc)


@needs_kernel
def test_bad_arguments_are_refused():
    u8 = np.zeros(10, np.uint8)
    with pytest.raises(ValueError, match="bits must be 8 or 16"):
        kernel.count_pair(u8, 12, 1, True, u8, 8, 1, True)
    with pytest.raises(ValueError, match="pixels"):
        kernel.count_pair(u8, 8, 1, True, np.zeros(11, np.uint8), 8, 1, True)
    with pytest.raises(ValueError, match="wrong size"):
        kernel.count_pair(np.zeros(5, np.uint8), 16, 1, True, u8[:5], 8, 1, True)
    with pytest.raises(ValueError, match="contiguous rows"):
        kernel.count_pair(np.zeros((4, 4), np.uint8)[:, ::2], 8, 1, True, u8[:8], 8, 1, True)
    with pytest.raises(ValueError, match="contiguous rows"):
        kernel.count_bits(np.zeros((2, 2, 2), np.uint8), u8[:8], 8)
    with pytest.raises(ValueError, match="rows are not 2 bytes"):
        kernel.count_bits(np.zeros((3, 3), np.uint8), np.zeros((3, 3), np.uint8), 16)
    with pytest.raises(ValueError, match="width must be at least 1"):
        kernel.count_bits(u8, u8, 0)
    with pytest.raises(ValueError, match="unknown kernel"):
        kernel._set_vectors("neon")


def _bits_expected(b, d, width):
    ub = np.unpackbits(b, axis=-1, count=width).astype(bool)
    ud = np.unpackbits(d, axis=-1, count=width).astype(bool)
    return int(ub.sum()), int(ud.sum()), int((ub & ud).sum())


@pytest.mark.parametrize("width", [1, 7, 8, 9, 63, 64, 65, 517, 4096, 4101])
def test_packed_rows_like_numpy_with_random_padding(level, width):
    """Padding bits past the width are random here: none may count. Row-strided views (a tile
    cropped to the image) and one long row cut into rows count the same."""
    rng = np.random.default_rng(width)
    nbytes = -(-width // 8)
    for rows in (0, 1, 3, 40):
        b = rng.integers(0, 256, (rows, nbytes + 5), dtype=np.uint8)
        d = rng.integers(0, 256, (rows, nbytes + 5), dtype=np.uint8)
        want = _bits_expected(b[:, :nbytes], d[:, :nbytes], width)
        assert kernel.count_bits(b[:, :nbytes], d[:, :nbytes], width) == want  # strided
        cb, cd = np.ascontiguousarray(b[:, :nbytes]), np.ascontiguousarray(d[:, :nbytes])
        assert kernel.count_bits(cb, cd, width) == want  # one long row
        assert kernel.count_bits(cb, d[:, :nbytes], width) == want  # one of each
        assert native.count_bits(cb, cd, width) == want


@pytest.mark.parametrize("bdt,ddt", [(np.uint8, np.uint8), (np.uint16, np.uint16),
                                     (np.uint8, np.uint16)])
def test_row_strided_planes(level, bdt, ddt):
    rng = np.random.default_rng(8)
    b = rng.integers(0, np.iinfo(bdt).max, (50, 300), dtype=bdt, endpoint=True)
    d = rng.integers(0, np.iinfo(ddt).max, (50, 300), dtype=ddt, endpoint=True)
    tb, td = np.iinfo(bdt).max // 3, np.iinfo(ddt).max // 2
    for bv, dv in ((b[:, :77], d[:, :77]), (b[:, :77].copy(), d[:, :77]),
                   (b[3:40:2, 5:250], d[3:40:2, 5:250])):
        assert kernel.count_pair(bv, 8 * b.itemsize, tb, False, dv, 8 * d.itemsize, td, True) \
            == _expected(bv, tb, False, dv, td, True)


@needs_kernel
def test_the_environment_turns_it_off():
    code = "from dragon_gpu.engines import native; print(native.kernel())"
    on = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    off = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, native.ENV: "numpy"})
    assert on.stdout.strip().startswith("compiled (")
    assert off.stdout.strip() == "numpy"


@pytest.mark.skipif(shutil.which("cc") is None and shutil.which("gcc") is None,
                    reason="no C compiler here, so the kernel is not expected to be built")
def test_the_kernel_is_built_where_a_compiler_is():
    """The install builds the kernel wherever it can: a silent fallback to NumPy would make
    the CPU engine several times slower on masks."""
    assert native.kernel().startswith("compiled (")
