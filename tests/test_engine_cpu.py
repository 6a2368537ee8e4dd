"""Engine conformance suite, run on the reference CPU engine.

:class:`EngineSuite` holds the tests; an engine gets all of them by subclassing it and
implementing :meth:`EngineSuite.count`. Expected counts are computed with plain NumPy on unpacked
boolean arrays (or counted by hand), never with the engine under test.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from dragon_gpu.engines import cpu
from dragon_gpu.engines.cpu import CpuEngine, count_block
from dragon_gpu.io.base import Encoding, PixelRule
from dragon_gpu.model import Counts, RowRange
from tests.helpers.engine_cases import ArrayReader
from tests.helpers.files import pack_rows

WIDTHS = [1, 7, 8, 9, 63, 64, 65, 203]
KINDS = ["packed", "u8", "u16", "mask01"]


@dataclass
class Input:
    """One input of an engine: stored rows, their encoding, and the members they stand for."""

    rows: np.ndarray
    enc: Encoding
    members: np.ndarray  # bool, (rows, width): the oracle
    bits: int

    def reader(self, granularity=1) -> ArrayReader:
        return ArrayReader(self.rows, self.enc, granularity=granularity)


def make_input(kind: str, rng, shape, *, high=None, threshold=None, p=0.5) -> Input:
    """Random rows of ``kind``; packed rows get random padding bits (which must never count)."""
    height, width = shape
    high = bool(rng.integers(2)) if high is None else high
    if kind == "packed":
        bits = rng.random(shape) < p
        rows = pack_rows(bits, garbage_padding=True, rng=rng)
        members = bits if high else ~bits
        return Input(rows, Encoding(True, width, np.dtype(np.uint8), PixelRule(1, high, kind)),
                     members, 1)
    if kind == "mask01":  # a bool HDF5 dataset, delivered as a 0/1 uint8 plane
        values = (rng.random(shape) < p).astype(np.uint8)
        thr = 1
    else:
        dtype = np.uint8 if kind == "u8" else np.uint16
        maxval = int(np.iinfo(dtype).max)
        values = rng.integers(0, maxval + 1, size=shape, dtype=dtype)
        thr = int(rng.integers(1, maxval + 1)) if threshold is None else threshold
    members = values >= thr if high else values < thr
    return Input(values, Encoding(False, width, values.dtype, PixelRule(thr, high, kind)), members,
                 values.dtype.itemsize * 8)


def expected(body: Input, dye: Input) -> Counts:
    return Counts(body=int(body.members.sum()),
                  dye_in_body=int((body.members & dye.members).sum()),
                  dye=int(dye.members.sum()))


def block_sizes(height: int) -> list[int]:
    return [1, 7, height, height + 3]


class EngineSuite:
    """Tests every engine must pass. Subclasses implement :meth:`count`."""

    def count(self, body: Input, dye: Input, block_rows: int) -> Counts:
        """Counts of the whole pair, processed in blocks of ``block_rows`` rows."""
        raise NotImplementedError

    @pytest.mark.parametrize("width", WIDTHS)
    @pytest.mark.parametrize("dye_kind", KINDS)
    @pytest.mark.parametrize("body_kind", KINDS)
    def test_every_pair_of_encodings(self, body_kind, dye_kind, width, rng):
        height = int(rng.integers(9, 30))
        body = make_input(body_kind, rng, (height, width))
        dye = make_input(dye_kind, rng, (height, width))
        want = expected(body, dye)
        for rows in block_sizes(height):
            assert self.count(body, dye, rows) == want, f"block_rows={rows}"

    @pytest.mark.parametrize("high", [True, False])
    @pytest.mark.parametrize("kind", KINDS)
    def test_rule_direction(self, kind, high, rng):
        """Both rules on the same rows: high and low members partition the image."""
        shape = (11, 65)
        body_hi = make_input(kind, rng, shape, high=True)
        body_lo = Input(body_hi.rows, Encoding(body_hi.enc.packed, 65, body_hi.enc.dtype,
                                               PixelRule(body_hi.enc.rule.threshold, False, "lo")),
                        ~body_hi.members, body_hi.bits)
        dye = make_input(kind, rng, shape, high=high)
        hi, lo = self.count(body_hi, dye, 4), self.count(body_lo, dye, 4)
        assert hi == expected(body_hi, dye) and lo == expected(body_lo, dye)
        assert hi.body + lo.body == 11 * 65
        assert hi.dye_in_body + lo.dye_in_body == hi.dye == lo.dye

    @pytest.mark.parametrize("kind, thresholds", [("u8", [1, 2, 127, 128, 129, 255]),
                                                  ("u16", [1, 255, 256, 32768, 65535])])
    def test_values_at_the_threshold(self, kind, thresholds):
        """A value equal to the threshold is bright (``>=``), one below is dark."""
        dtype = np.uint8 if kind == "u8" else np.uint16
        for thr in thresholds:
            values = np.array([[thr - 1, thr, thr, min(thr + 1, np.iinfo(dtype).max)]],
                              dtype=dtype)
            n_high = 3  # thr, thr and thr + 1 (or the maximum, which is >= thr too)
            bright = Input(values, Encoding(False, 4, np.dtype(dtype), PixelRule(thr, True, "b")),
                           values >= thr, values.dtype.itemsize * 8)
            dark = Input(values, Encoding(False, 4, np.dtype(dtype), PixelRule(thr, False, "d")),
                         values < thr, values.dtype.itemsize * 8)
            got = self.count(dark, bright, 1)
            assert got == Counts(body=1, dye_in_body=0, dye=n_high), f"threshold {thr}"

    @pytest.mark.parametrize("width", [1, 7, 9, 63, 65, 203])
    def test_padding_bits_never_count(self, width):
        """Rows of clear bits whose padding is all ones, read with the 'clear bit' rule."""
        height = 5
        nbytes = -(-width // 8)
        rows = np.zeros((height, nbytes), dtype=np.uint8)
        rows[:, -1] = (1 << ((-width) % 8)) - 1  # every padding bit set
        clear = Input(rows, Encoding(True, width, np.dtype(np.uint8), PixelRule(1, False, "c")),
                      np.ones((height, width), bool), 1)
        ones = np.full((height, nbytes), 0xFF, dtype=np.uint8)
        set_ = Input(ones, Encoding(True, width, np.dtype(np.uint8), PixelRule(1, True, "s")),
                     np.ones((height, width), bool), 1)
        n = height * width  # counted by hand: every pixel, and not one padding bit
        assert self.count(clear, set_, 2) == Counts(body=n, dye_in_body=n, dye=n)
        assert self.count(set_, clear, 3) == Counts(body=n, dye_in_body=n, dye=n)

    @pytest.mark.parametrize("body_kind", KINDS)
    @pytest.mark.parametrize("dye_kind", KINDS)
    @pytest.mark.parametrize("width", [1, 9, 65, 203])
    def test_single_pixel_in_the_last_row_and_column(self, body_kind, dye_kind, width):
        height = 6
        grid = np.zeros((height, width), bool)
        grid[-1, -1] = True
        body, dye = encode(grid, body_kind), encode(grid, dye_kind)
        for rows in block_sizes(height):
            assert self.count(body, dye, rows) == Counts(1, 1, 1), f"block_rows={rows}"

    def test_hand_counted_example(self):
        """A 3 x 5 pair counted by hand."""
        body = np.array([[1, 1, 0, 0, 0],
                         [1, 1, 1, 0, 0],
                         [0, 1, 1, 1, 1]], bool)   # 9 body pixels
        dye = np.array([[1, 0, 0, 0, 1],
                        [0, 1, 0, 0, 1],
                        [0, 0, 0, 1, 1]], bool)    # 6 dye pixels, 4 of them in the body
        for bk in KINDS:
            for dk in KINDS:
                got = self.count(encode(body, bk), encode(dye, dk), 2)
                assert got == Counts(body=9, dye_in_body=4, dye=6), (bk, dk)


def encode(members: np.ndarray, kind: str) -> Input:
    """Rows of ``kind`` whose members under the default-direction rule are ``members``."""
    height, width = members.shape
    if kind == "packed":
        rows = pack_rows(members, garbage_padding=True)
        return Input(rows, Encoding(True, width, np.dtype(np.uint8), PixelRule(1, True, kind)),
                     members, 1)
    # Dark members (value < threshold) in gray images, set members in 0/1 planes.
    if kind == "mask01":
        enc = Encoding(False, width, np.dtype(np.uint8), PixelRule(1, True, kind))
        return Input(members.astype(np.uint8), enc, members, 1)
    dtype = np.uint8 if kind == "u8" else np.uint16
    thr = 1 << (8 * np.dtype(dtype).itemsize - 1)
    values = np.where(members, thr - 1, thr).astype(dtype)
    return Input(values, Encoding(False, width, np.dtype(dtype), PixelRule(thr, False, kind)),
                 members, 8 * np.dtype(dtype).itemsize)


class TestCountBlock(EngineSuite):
    """The pure per-block function, summed over consecutive blocks."""

    def count(self, body, dye, block_rows):
        height = body.rows.shape[0]
        return Counts.total(count_block(body.rows[r:r + block_rows], body.enc,
                                        dye.rows[r:r + block_rows], dye.enc)
                            for r in range(0, height, block_rows))


class TestCountBlockInTinySlices(TestCountBlock):
    """The same with slices of a few pixels, so the slicing inside count_block is exercised."""

    @pytest.fixture(autouse=True)
    def _tiny_slices(self, monkeypatch):
        monkeypatch.setattr(cpu, "SLICE_PIXELS", 50)


class TestCpuEngine(EngineSuite):
    """The CPU driver: prefetching reader, ring buffers, progress."""

    def count(self, body, dye, block_rows):
        height = body.rows.shape[0]
        blocks = [RowRange(r, min(height, r + block_rows)) for r in range(0, height, block_rows)]
        done = []
        got = CpuEngine().count_pair(body.reader(), body.enc, dye.reader(), dye.enc, blocks,
                                     progress=done.append)
        assert sum(done) == height
        return got


def test_count_block_of_no_rows():
    enc = Encoding(True, 9, np.dtype(np.uint8), PixelRule(1, True, "s"))
    empty = np.zeros((0, 2), np.uint8)
    assert count_block(empty, enc, empty, enc) == Counts(0, 0, 0)


def test_count_block_refuses_mismatched_blocks():
    enc9 = Encoding(True, 9, np.dtype(np.uint8), PixelRule(1, True, "s"))
    enc10 = Encoding(True, 10, np.dtype(np.uint8), PixelRule(1, True, "s"))
    rows = np.zeros((3, 2), np.uint8)
    with pytest.raises(ValueError):
        count_block(rows, enc9, rows, enc10)
    with pytest.raises(ValueError):
        count_block(rows, enc9, rows[:2], enc9)


def test_counts_pass_2_to_the_32_exactly():
    """Summing blocks past 2**32 pixels loses nothing (a 100k x 100k pair has 10**10 pixels)."""
    rows, width = 512, 1 << 16
    ones = np.full((rows, width // 8), 0xFF, dtype=np.uint8)
    enc = Encoding(True, width, np.dtype(np.uint8), PixelRule(1, True, "s"))
    block = count_block(ones, enc, ones, enc)
    assert block == Counts(rows * width, rows * width, rows * width)  # 2**25 each
    repeats = 129  # 129 * 2**25 = 4_328_521_728 > 2**32
    total = Counts.total(count_block(ones, enc, ones, enc) for _ in range(repeats))
    n = repeats * rows * width
    assert n > 2**32
    assert total == Counts(n, n, n)
    assert all(type(v) is int for v in (total.body, total.dye, total.dye_in_body))
