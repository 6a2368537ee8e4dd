"""Reader conformance suite: every format, layout and encoding must deliver the same rows.

:class:`ReaderSuite` holds the tests; a format gets all of them by subclassing it and listing its
``cases`` (a writer of small files and the shape to write). Expected rows come from the NumPy
arrays the files were written from (``tests/helpers/files.py``), never from the reader.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from dragon_gpu.io import Kind, MaskReader, open_mask, resolve_rule
from tests.helpers.files import HDF5_WRITERS, TIFF_WRITERS, Writer, Written, unpack_rows


@dataclass(frozen=True)
class ReaderCase:
    name: str
    writer: Writer
    shape: tuple[int, int]

    def __str__(self) -> str:
        return f"{self.name}-{self.shape[0]}x{self.shape[1]}"


def cases_of(writers: dict[str, Writer], shapes=((37, 203), (5, 9), (1, 1))):
    return [ReaderCase(name, w, shape) for name, w in writers.items() for shape in shapes]


def as_pixels(rows: np.ndarray, written: Written) -> np.ndarray:
    """Rows as one value per pixel: unpacked bits (padding dropped) or the plane itself."""
    if written.packed:
        return unpack_rows(rows, written.shape[1])
    return rows


def source_pixels(written: Written, r0: int, r1: int) -> np.ndarray:
    src = written.source[r0:r1]
    return src.astype(np.uint8) if src.dtype == np.bool_ and not written.packed else src


class ReaderSuite:
    """Tests every reader must pass. Subclasses set ``cases`` (a list of :class:`ReaderCase`)."""

    cases: list[ReaderCase] = []

    def open(self, written: Written) -> MaskReader:
        return open_mask(written.path, **written.open_kwargs)

    @pytest.fixture
    def written(self, case: ReaderCase, tmp_path, rng) -> Written:
        return case.writer(tmp_path / case.name, rng, case.shape)

    @pytest.fixture
    def reader(self, written):
        with self.open(written) as r:
            yield r

    # -- facts -------------------------------------------------------------------------------
    def test_facts(self, reader, written):
        height, width = written.shape
        assert reader.shape == (height, width)
        assert (reader.height, reader.width) == (height, width)
        assert reader.bits == written.bits
        assert reader.packed is written.packed
        assert reader.kind is Kind(written.kind)
        assert reader.dtype == (np.uint16 if written.bits == 16 else np.uint8)
        items = -(-width // 8) if written.packed else width
        assert reader.row_items == items
        assert reader.row_nbytes == items * (2 if written.bits == 16 else 1)
        if written.kind == "bilevel":
            assert reader.set_is_white is (written.photometric == "minisblack")
        if written.kind == "gray":
            assert reader.inverted is (written.photometric == "miniswhite")

    def test_row_granularity_is_the_files_unit(self, reader, written):
        assert reader.row_granularity == written.rows_per_unit

    def test_describe(self, reader):
        facts = reader.describe()
        for key in ("format", "layout", "compression", "stored_bytes"):
            assert key in facts
        assert isinstance(facts["stored_bytes"], int) and facts["stored_bytes"] > 0

    # -- rows --------------------------------------------------------------------------------
    def test_whole_image(self, reader, written):
        got = reader.read_rows(0, reader.height)
        assert got.shape == (reader.height, reader.row_items)
        assert got.dtype == reader.dtype
        np.testing.assert_array_equal(as_pixels(got, written), source_pixels(written, 0, None))

    def test_random_ranges_in_any_order(self, reader, written, rng):
        height = written.shape[0]
        for _ in range(15):
            r0 = int(rng.integers(0, height + 1))
            r1 = int(rng.integers(r0, height + 1))
            got = reader.read_rows(r0, r1)
            assert got.shape == (r1 - r0, reader.row_items)
            np.testing.assert_array_equal(as_pixels(got, written), source_pixels(written, r0, r1),
                                          err_msg=f"rows [{r0}, {r1})")

    @pytest.mark.parametrize("block", [1, 7, "unit", "H+3"])
    def test_consecutive_blocks(self, reader, written, block):
        height = written.shape[0]
        step = {"unit": written.rows_per_unit, "H+3": height + 3}.get(block, block)
        parts = [as_pixels(reader.read_rows(r, min(height, r + step)), written)
                 for r in range(0, height, step)]
        np.testing.assert_array_equal(np.concatenate(parts), source_pixels(written, 0, None))

    def test_out_buffer_is_filled_and_returned(self, reader, written):
        height = written.shape[0]
        r0, r1 = height // 3, height
        out = np.full((r1 - r0 + 2, reader.row_items), 0xAB, dtype=reader.dtype)
        got = reader.read_rows(r0, r1, out=out)
        assert got.shape == (r1 - r0, reader.row_items)
        assert np.shares_memory(got, out) and got.ctypes.data == out.ctypes.data
        np.testing.assert_array_equal(as_pixels(out[:r1 - r0], written),
                                      source_pixels(written, r0, r1))
        assert (out[r1 - r0:] == 0xAB).all(), "rows past the request were written"

    def test_empty_range(self, reader):
        assert reader.read_rows(0, 0).shape == (0, reader.row_items)
        assert reader.read_rows(reader.height, reader.height).shape == (0, reader.row_items)

    def test_bad_out_buffers_are_refused(self, reader):
        rows = reader.height
        wrong_dtype = np.uint16 if reader.dtype == np.uint8 else np.uint8
        bad = [np.empty((rows, reader.row_items), dtype=wrong_dtype),
               np.empty((rows, reader.row_items + 1), dtype=reader.dtype),
               np.empty((rows - 1, reader.row_items), dtype=reader.dtype),
               np.empty((rows * reader.row_items,), dtype=reader.dtype)]
        strided = np.empty((rows, 2 * reader.row_items), dtype=reader.dtype)[:, ::2]
        if not strided.flags.c_contiguous:  # a 1 x 1 view is contiguous whatever its strides
            bad.append(strided)
        for out in bad:
            with pytest.raises(ValueError):
                reader.read_rows(0, rows, out=out)

    @pytest.mark.parametrize("r0, r1", [(-1, 1), (0, "H+1"), (2, 1)])
    def test_rows_outside_the_image_are_refused(self, reader, r0, r1):
        r1 = reader.height + 1 if r1 == "H+1" else r1
        with pytest.raises(ValueError):
            reader.read_rows(r0, r1)

    def test_default_rules_follow_photometric(self, reader, written):
        """Body and dye members under the default rules, as a viewer would see the image."""
        rows = as_pixels(reader.read_rows(0, reader.height), written).astype(np.int64)
        for role in ("body", "dye"):
            rule = resolve_rule(reader, role)
            got = rows >= rule.threshold if rule.high else rows < rule.threshold
            np.testing.assert_array_equal(got, written.members(role), err_msg=role)


class TestTiffReader(ReaderSuite):
    cases = cases_of(TIFF_WRITERS)


class TestHdf5Reader(ReaderSuite):
    cases = cases_of(HDF5_WRITERS)
