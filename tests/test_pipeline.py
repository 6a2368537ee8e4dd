"""The single-machine driver: files in, exact counts and verdict out.

Expected counts come from the NumPy arrays the files were written from, under the SPEC's pixel
rules as implemented independently in ``tests.helpers.files.Written.members``.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from dragon_gpu import pipeline
from dragon_gpu.errors import (EmptyBodyError, MemoryBudgetError, ShapeMismatchError,
                               UnsupportedInputError, UsageError)
from dragon_gpu.io.base import Kind, MaskReader
from dragon_gpu.io.tiff import TiffReader
from dragon_gpu.model import Counts, RowRange
from dragon_gpu.pipeline import DetectOptions, count_range, coverage_warnings, detect, plan_blocks
from tests.helpers.files import ALL_WRITERS, Written, write_h5, write_h5_packed, write_tiff

NAMES = sorted(ALL_WRITERS)
#: CPU always; GPU 0 where one is usable (the gpu marker skips it elsewhere).
DEVICES = [pytest.param("cpu", id="cpu"), pytest.param("0", id="gpu0", marks=pytest.mark.gpu)]


def run(body: Written, dye: Written, device="cpu", **kw):
    kw.setdefault("body_dataset", body.open_kwargs.get("dataset"))
    kw.setdefault("dye_dataset", dye.open_kwargs.get("dataset"))
    return detect(body.path, dye.path, device=device, require_gpu=device != "cpu", **kw)


def oracle(body: Written, dye: Written, body_polarity=None, dye_polarity=None,
           threshold=None) -> Counts:
    b = body.members("body", body_polarity, threshold)
    d = dye.members("dye", dye_polarity, threshold)
    return Counts(body=int(b.sum()), dye_in_body=int((b & d).sum()), dye=int(d.sum()))


# -- every encoding, and mixed pairs ---------------------------------------------------------------
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("block_rows", [1, 7, "H", "H+3"])
@pytest.mark.parametrize("name", NAMES)
def test_every_encoding_as_body_and_as_dye(name, block_rows, device, write_image, rng):
    """Each encoding against two others (often of the other format), in both roles."""
    shape = (29, 203)
    rows = {"H": shape[0], "H+3": shape[0] + 3}.get(block_rows, block_rows)
    i = NAMES.index(name)
    image = write_image(name, rng, shape)
    for b, d in ((image, write_image(NAMES[(i + 7) % len(NAMES)], rng, shape)),
                 (write_image(NAMES[(i + 12) % len(NAMES)], rng, shape), image)):
        got = run(b, d, device, block_rows=rows)
        assert got.counts == oracle(b, d), f"body={b.path.name} dye={d.path.name}"
        assert got.shape == shape


@pytest.mark.parametrize("device", DEVICES)
def test_planned_blocks_on_mixed_granularities(device, tmp_path, rng):
    """Default planning (no block_rows) with strips of 5 and chunks of 7 rows, small budget."""
    shape = (200, 333)
    body = write_tiff(tmp_path / "b.tif", rng.random(shape) < 0.4, photometric="miniswhite",
                      compression="zlib", rowsperstrip=5)
    dye = write_h5(tmp_path / "d.h5", rng.integers(0, 256, shape, dtype=np.uint8), chunks=(7, 50),
                   compression="gzip")
    got = run(body, dye, device, memory=16 << 20)
    assert got.counts == oracle(body, dye)


# -- the verdict at the cutoff ---------------------------------------------------------------------
def hand_pair(tmp_path, body_pixels: int, dye_in: int, dye_out: int, shape=(20, 20)):
    """A uint8 pair with hand-placed pixels: body dark (0) elsewhere 255; dye bright (255)."""
    n = shape[0] * shape[1]
    assert body_pixels + dye_out <= n
    flat_body = np.full(n, 255, np.uint8)
    flat_body[:body_pixels] = 0                       # the first pixels in row order are body
    flat_dye = np.zeros(n, np.uint8)
    flat_dye[:dye_in] = 255                           # inside the body
    flat_dye[n - dye_out:] = 255                      # the last pixels: outside the body
    body = write_tiff(tmp_path / "body.tif", flat_body.reshape(shape))
    dye = write_tiff(tmp_path / "dye.tif", flat_dye.reshape(shape))
    return body, dye


@pytest.mark.parametrize("dye_in, cancer", [(9, False), (10, False), (11, True)])
def test_exactly_the_default_cutoff_is_not_cancer(tmp_path, dye_in, cancer):
    body, dye = hand_pair(tmp_path, 100, dye_in, 0)
    got = run(body, dye)
    assert got.counts == Counts(body=100, dye_in_body=dye_in, dye=dye_in)
    assert got.verdict.cancer is cancer
    assert got.to_dict()["fraction"] == dye_in / 100


@pytest.mark.parametrize("cutoff", ["0.25", "25%", "0.250", ".25"])
@pytest.mark.parametrize("dye_in, cancer", [(25, False), (26, True)])
def test_custom_cutoff(tmp_path, cutoff, dye_in, cancer):
    body, dye = hand_pair(tmp_path, 100, dye_in, 0)
    got = run(body, dye, cutoff=cutoff)
    assert got.verdict.cancer is cancer
    assert got.to_dict()["cutoff"] == cutoff


def test_dye_outside_the_body_never_counts(tmp_path):
    """10 dye pixels in a body of 100 plus 250 outside: 10% exactly, so not cancer."""
    body, dye = hand_pair(tmp_path, 100, 10, 250)
    got = run(body, dye)
    assert got.counts == Counts(body=100, dye_in_body=10, dye=260)
    assert got.to_dict()["dye_outside_body_pixels"] == 250
    assert got.verdict.cancer is False


# -- counts past 2**32 ----------------------------------------------------------------------------
class _AllSet(MaskReader):
    """A packed mask with every bit set, of any size, generated on the fly (no file, no RAM)."""

    def __init__(self, height, width):
        self.path, self.shape, self.bits, self.packed = "<all-set>", (height, width), 1, True
        self.dtype, self.kind, self.row_granularity = np.dtype(np.uint8), Kind.mask, 1

    def read_rows(self, row_start, row_stop, out=None):
        out = self._check_range(row_start, row_stop, out)
        out.fill(0xFF)
        return out

    def describe(self):
        return {"format": "generated"}


@pytest.mark.parametrize("device", DEVICES)
def test_counts_past_2_to_the_32_are_exact(monkeypatch, device):
    height, width = 65537, 65536  # 2**32 + 2**16 pixels; the padding-free width keeps it fast
    monkeypatch.setattr(pipeline, "open_mask", lambda path, **kw: _AllSet(height, width))
    got = detect("body", "dye", device=device, require_gpu=device != "cpu", memory=64 << 20)
    n = height * width
    assert n == 2**32 + 2**16
    assert got.counts == Counts(n, n, n)
    decoded = json.loads(json.dumps(got.to_dict()))
    assert decoded["body_pixels"] == decoded["dye_pixels"] == n
    assert type(decoded["dye_in_body_pixels"]) is int


def test_json_integers_stay_exact_past_2_to_the_53():
    """Counts must reach the JSON as integers, never through a float."""
    counts = Counts(body=2**53 + 1, dye_in_body=2**52 + 3, dye=2**53 + 7)
    verdict = pipeline.decide(counts, "0.5")
    result = pipeline.DetectResult("b", "d", (2**27, 2**27), verdict, "cpu", 1.0, "r", "r")
    text = json.dumps(result.to_dict())
    assert '"body_pixels": 9007199254740993' in text
    assert '"dye_outside_body_pixels": 4503599627370500' in text  # 2**53 + 7 - (2**52 + 3)
    assert json.loads(text)["dye_in_body_pixels"] == 2**52 + 3


# -- bad pairs -------------------------------------------------------------------------------------
def test_empty_body_is_an_error_that_keeps_the_counts(tmp_path):
    body = write_tiff(tmp_path / "b.tif", np.full((8, 9), 255, np.uint8))  # nothing dark
    dye = write_tiff(tmp_path / "d.tif", np.full((8, 9), 255, np.uint8))
    with pytest.raises(EmptyBodyError) as info:
        run(body, dye)
    assert info.value.path == str(body.path)
    assert info.value.counts == Counts(body=0, dye_in_body=0, dye=72)


def test_shapes_must_match(tmp_path):
    body = write_tiff(tmp_path / "b.tif", np.zeros((8, 9), np.uint8))
    dye = write_h5(tmp_path / "d.h5", np.zeros((8, 10), np.uint8))
    with pytest.raises(ShapeMismatchError, match=r"8 x 9.*8 x 10"):
        run(body, dye)


def test_a_bad_cutoff_fails_before_any_file_is_read(tmp_path):
    with pytest.raises(UsageError, match="cutoff"):
        detect(tmp_path / "missing.tif", tmp_path / "missing.tif", cutoff="ten percent")


# -- pixel rules: polarity overrides, threshold, photometric ---------------------------------------
RULE_CASES = [(None, None, None), ("dark", "bright", None), ("bright", "dark", None),
              ("bright", None, None), (None, "dark", None), (None, None, 1), (None, None, 200),
              ("bright", "dark", 77), ("bright", "dark", 1)]


@pytest.mark.parametrize("body_polarity, dye_polarity, threshold", RULE_CASES)
@pytest.mark.parametrize("name", NAMES)
def test_polarity_and_threshold(name, body_polarity, dye_polarity, threshold, write_image, rng):
    """Overrides on gray, bilevel and mask inputs; --threshold only affects gray images."""
    body = write_image(name, rng, (13, 65))
    dye = write_image(name, rng, (13, 65))
    want = oracle(body, dye, body_polarity, dye_polarity, threshold)
    options = dict(body_polarity=body_polarity, dye_polarity=dye_polarity, threshold=threshold)
    if want.body == 0:  # e.g. nothing is darker than 1 in a random 16-bit image
        with pytest.raises(EmptyBodyError):
            run(body, dye, **options)
    else:
        assert run(body, dye, **options).counts == want


def test_threshold_on_16_bit_images(tmp_path):
    values = np.array([[0, 999, 1000, 1001, 65535]], np.uint16)
    body = write_tiff(tmp_path / "b.tif", values)
    dye = write_h5(tmp_path / "d.h5", values)
    got = run(body, dye, threshold=1000)
    assert got.counts == Counts(body=2, dye_in_body=0, dye=3)  # dark: 0, 999; bright: the rest


@pytest.mark.parametrize("threshold", [0, 256, -1])
def test_threshold_outside_the_dtype_range_is_refused(tmp_path, threshold):
    body = write_tiff(tmp_path / "b.tif", np.zeros((2, 3), np.uint8))
    with pytest.raises(UsageError, match="threshold"):
        run(body, body, threshold=threshold)


def test_miniswhite_gray_is_read_as_it_looks(tmp_path):
    """In a MINISWHITE image a stored 255 is black: it is body, and never dye."""
    stored = np.array([[255, 255, 0, 0, 200, 60]], np.uint8)  # looks: black black white white
    body = write_tiff(tmp_path / "b.tif", stored, photometric="miniswhite")   # 55-dark, 195-bright
    dye = write_tiff(tmp_path / "d.tif", stored, photometric="miniswhite")
    got = run(body, dye)
    # displayed brightness 255 - v = [0, 0, 255, 255, 55, 195]; dark (< 128): columns 0, 1, 4
    assert got.counts == Counts(body=3, dye_in_body=0, dye=3)
    assert "MINISWHITE" in got.body_rule


def test_rules_are_stated_in_the_result(tmp_path, rng):
    bits = rng.random((6, 10)) < 0.5
    body = write_tiff(tmp_path / "b.tif", bits, photometric="miniswhite")
    dye = write_h5_packed(tmp_path / "d.h5", bits)
    got = run(body, dye).to_dict()
    assert "MINISWHITE" in got["body_rule"] and "black" in got["body_rule"]
    assert "mask" in got["dye_rule"] and "set" in got["dye_rule"]


# -- warnings --------------------------------------------------------------------------------------
@pytest.mark.parametrize("body, dye, warned", [
    (25, 0, []), (24, 0, ["body"]), (100, 50, []), (100, 51, ["dye"]), (1, 99, ["body", "dye"]),
    (0, 0, []),
])
def test_coverage_warnings(body, dye, warned):
    got = coverage_warnings(Counts(body=body, dye_in_body=0, dye=dye), (10, 10))
    assert len(got) == len(warned)
    for text, which in zip(got, warned):
        assert ("body covers" in text) if which == "body" else ("dye covers" in text)


def test_warnings_reach_the_result(tmp_path):
    body, dye = hand_pair(tmp_path, 99, 10, 0)     # body 99 of 400 pixels: under 25%
    warnings = run(body, dye).warnings
    assert len(warnings) == 1 and "body" in warnings[0]
    body, dye = hand_pair(tmp_path, 100, 10, 250)  # exactly 25%, dye 260 of 400: over 50%
    warnings = run(body, dye).warnings
    assert len(warnings) == 1 and "dye" in warnings[0]


# -- planning --------------------------------------------------------------------------------------
def _check_cover(blocks, start, stop):
    assert blocks[0].row_start == start and blocks[-1].row_stop == stop
    for a, b in zip(blocks, blocks[1:]):
        assert a.row_stop == b.row_start
    assert all(b.rows > 0 for b in blocks)


@pytest.mark.parametrize("granularities, memory, unit", [
    ((1, 1), 16 << 20, 1), ((4, 6), 16 << 20, 12), ((5, 7), 16 << 20, 35), ((16, 1), 1 << 30, 16),
    ((64, 48), 1 << 30, 192),
    # 192 rows of 25 kB (4.8 MB) exceed the 2 MiB block share of 16 MiB: the larger unit it is.
    ((64, 48), 16 << 20, 64),
])
def test_plan_blocks_aligns_and_fits(granularities, memory, unit):
    height, row_nbytes = 100_003, 25_000
    blocks = plan_blocks(height, row_nbytes, granularities, memory)
    _check_cover(blocks, 0, height)
    for b in blocks[:-1]:
        assert b.row_start % unit == 0 and b.rows % unit == 0
    assert max(b.rows for b in blocks) * row_nbytes <= memory // pipeline.BLOCK_SHARE


def test_plan_blocks_falls_back_to_the_largest_unit_when_the_lcm_is_too_big():
    # lcm(1000, 999) rows of 10 kB is ~10 GB: blocks follow the larger unit instead.
    blocks = plan_blocks(10_000, 10_000, (1000, 999), 64 << 20)
    _check_cover(blocks, 0, 10_000)
    assert all(b.row_start % 1000 == 0 for b in blocks)


def test_plan_blocks_refuses_a_unit_larger_than_the_budget():
    # one strip of 4096 rows x 8 kB = 32 MiB > a quarter of 64 MiB
    with pytest.raises(MemoryBudgetError, match="strip"):
        plan_blocks(10_000, 8 << 10, (4096,), 64 << 20)


def test_plan_blocks_with_explicit_rows_and_a_range():
    blocks = plan_blocks(100, 10, (1,), 1 << 30, block_rows=7, rows=RowRange(10, 40))
    assert [(b.row_start, b.row_stop) for b in blocks] == [(10, 17), (17, 24), (24, 31),
                                                          (31, 38), (38, 40)]
    with pytest.raises(UsageError):
        plan_blocks(100, 10, (1,), 0)
    with pytest.raises(UsageError):
        plan_blocks(100, 10, (1,), 1 << 30, block_rows=0)
    with pytest.raises(UsageError):
        plan_blocks(100, 10, (1,), 1 << 30, rows=RowRange(0, 101))


# Blocks that cut strips (block_rows 1 or 7 here) decode a cut strip once per block: readers keep
# no strip between blocks, which is why plan_blocks aligns blocks to the strips.
@pytest.mark.parametrize("block_rows", [None, 20, 40])
def test_every_strip_is_decoded_once(tmp_path, rng, monkeypatch, block_rows):
    """Planned blocks (and blocks on common multiples of the strips) decode each strip once."""
    shape = (29, 203)
    body = write_tiff(tmp_path / "b.tif", rng.random(shape) < 0.5, compression="zlib",
                      rowsperstrip=5)
    dye = write_tiff(tmp_path / "d.tif", rng.integers(0, 256, shape, dtype=np.uint8),
                     compression="lzw", rowsperstrip=4)
    decoded = []
    original = TiffReader.decode_segment

    def spy(self, seg, *args, **kwargs):
        decoded.append((self.path, seg.index))
        return original(self, seg, *args, **kwargs)

    monkeypatch.setattr(TiffReader, "decode_segment", spy)
    assert run(body, dye, block_rows=block_rows).counts == oracle(body, dye)
    assert len(decoded) == 6 + 8  # ceil(29 / 5) strips + ceil(29 / 4) strips
    assert sorted(decoded) == sorted(set(decoded))


def test_count_range_parts_add_up_to_the_whole(tmp_path, rng):
    shape = (41, 77)
    body = write_tiff(tmp_path / "b.tif", rng.random(shape) < 0.5, photometric="miniswhite",
                      rowsperstrip=6)
    dye = write_h5(tmp_path / "d.h5", rng.random(shape) < 0.3, chunks=(5, 77))
    cuts = [0, 1, 13, 14, 30, 41]
    parts = [count_range(body.path, dye.path, RowRange(a, b), DetectOptions(device="cpu"))
             for a, b in zip(cuts, cuts[1:])]
    assert Counts.total(parts) == oracle(body, dye)
    top = oracle(Written(body.path, body.source[:13], "bilevel", True, 1, 6, "miniswhite"),
                 Written(dye.path, dye.source[:13], "mask", False, 1, 5))
    assert count_range(body.path, dye.path, RowRange(0, 13), device="cpu") == top


# -- choosing the image ----------------------------------------------------------------------------
def test_tiff_page(tmp_path):
    import tifffile

    first, second = np.zeros((4, 5), np.uint8), np.full((4, 5), 255, np.uint8)
    second[0, :3] = 0
    with tifffile.TiffWriter(tmp_path / "multi.tif") as tw:
        tw.write(first)
        tw.write(second)
    path = tmp_path / "multi.tif"
    assert detect(path, path, device="cpu").counts == Counts(body=20, dye_in_body=0, dye=0)
    assert detect(path, path, device="cpu", page=1).counts == Counts(body=3, dye_in_body=0,
                                                                      dye=17)
    with pytest.raises(UnsupportedInputError, match="page 2"):
        detect(path, path, device="cpu", page=2)


def test_hdf5_dataset_choice(tmp_path):
    body = np.zeros((3, 4), bool)
    body[0] = True
    path = tmp_path / "two.h5"
    write_h5(path, body, dataset="body", extra_datasets={"dye": np.ones((3, 4), bool)})
    with pytest.raises(UnsupportedInputError, match="/body.*/dye"):
        detect(path, path, device="cpu")
    got = detect(path, path, device="cpu", body_dataset="body", dye_dataset="dye")
    assert got.counts == Counts(body=4, dye_in_body=4, dye=12)


def test_per_input_thresholds_for_a_pair_of_different_bit_depths(tmp_path, rng):
    """A uint16 body and a uint8 dye: one --threshold cannot suit both, per-input ones can."""
    import tifffile

    from dragon_gpu.errors import UsageError
    from dragon_gpu.pipeline import detect as run_detect

    body16 = rng.integers(0, 65536, (33, 21), dtype=np.uint16)
    dye8 = rng.integers(0, 256, (33, 21), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "b.tif", body16)
    tifffile.imwrite(tmp_path / "d.tif", dye8)
    got = run_detect(tmp_path / "b.tif", tmp_path / "d.tif", device="cpu",
                     body_threshold=1000, dye_threshold=200).counts
    b, d = body16 < 1000, dye8 >= 200
    assert (got.body, got.dye_in_body, got.dye) == (int(b.sum()), int((b & d).sum()),
                                                    int(d.sum()))
    with pytest.raises(UsageError, match="threshold: must be between 1 and 255") as caught:
        run_detect(tmp_path / "b.tif", tmp_path / "d.tif", device="cpu", threshold=1000)
    assert caught.value.param == "threshold"
    with pytest.raises(UsageError, match="dye_threshold: must be between 1 and 255") as caught:
        run_detect(tmp_path / "b.tif", tmp_path / "d.tif", device="cpu", dye_threshold=300)
    assert caught.value.param == "dye_threshold"
