"""convert: pixel-for-pixel round trips between TIFF and HDF5, packed and 8/16-bit; atomicity."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import h5py
import numpy as np
import pytest
import tifffile

from dragon_gpu import detect
from dragon_gpu.convert import convert
from dragon_gpu.errors import UsageError
from dragon_gpu.simulate import generate


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pair")
    truth = generate(folder, height=190, width=213, seed=3, kind="cancer", rows_per_strip=32)
    return folder, truth


def _tiff_page(path):
    with tifffile.TiffFile(path) as tif:
        page = tif.pages[0]
        return page.asarray(), int(page.photometric), int(page.bitspersample)


def _h5(path):
    with h5py.File(path, "r") as f:
        ds = f["mask"]
        return ds[...], dict(ds.attrs)


def test_packed_tiff_to_packed_hdf5_and_back(pair, tmp_path):
    folder, truth = pair
    for role, polarity in (("body", "dark"), ("dye", "bright")):
        src = folder / f"{role}.tif"
        bits, photometric, _ = _tiff_page(src)
        convert(src, tmp_path / f"{role}.h5", polarity=polarity, segment_rows=7)
        data, attrs = _h5(tmp_path / f"{role}.h5")
        assert attrs["dragon_gpu_encoding"] == "packed-bits" and int(attrs["width"]) == 213
        member = np.unpackbits(data, axis=1, count=213).astype(bool)
        # The generator's files have set bits = members (body MINISWHITE, dye MINISBLACK).
        np.testing.assert_array_equal(member, bits)
        convert(tmp_path / f"{role}.h5", tmp_path / f"{role}.tif", polarity=polarity,
                compression="lzw")
        back, back_photometric, _ = _tiff_page(tmp_path / f"{role}.tif")
        np.testing.assert_array_equal(back, bits)
        assert back_photometric == photometric
    got = detect(tmp_path / "body.h5", tmp_path / "dye.h5", device="cpu").to_dict()
    for key in ("body_pixels", "dye_in_body_pixels", "dye_pixels"):
        assert got[key] == truth[key]


def test_packed_to_u8_and_back(pair, tmp_path):
    folder, _ = pair
    bits, photometric, _ = _tiff_page(folder / "body.tif")
    assert photometric == 0  # MINISWHITE: a set bit is black
    convert(folder / "body.tif", tmp_path / "body8.h5", encoding="u8", compression="lzf")
    values, attrs = _h5(tmp_path / "body8.h5")
    assert values.dtype == np.uint8 and "dragon_gpu_encoding" not in attrs
    np.testing.assert_array_equal(values, np.where(bits, 0, 255))
    convert(tmp_path / "body8.h5", tmp_path / "body8.tif")
    same, _, depth = _tiff_page(tmp_path / "body8.tif")
    assert depth == 8
    np.testing.assert_array_equal(same, values)
    convert(tmp_path / "body8.tif", tmp_path / "body1.tif", encoding="packed",
            polarity="dark", compression="packbits")
    back, back_photometric, depth = _tiff_page(tmp_path / "body1.tif")
    assert depth == 1 and back_photometric == 0
    np.testing.assert_array_equal(back, bits)


def test_gray_to_1_bit_uses_the_threshold(tmp_path):
    rng = np.random.default_rng(0)
    values = rng.integers(0, 256, (37, 45), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "g.tif", values, photometric="minisblack")
    convert(tmp_path / "g.tif", tmp_path / "t.tif", encoding="packed", threshold=100)
    bits, photometric, _ = _tiff_page(tmp_path / "t.tif")
    assert photometric == 1
    np.testing.assert_array_equal(bits, values >= 100)
    convert(tmp_path / "g.tif", tmp_path / "m.h5", encoding="packed", polarity="dark")
    data, _ = _h5(tmp_path / "m.h5")
    np.testing.assert_array_equal(np.unpackbits(data, axis=1, count=45).astype(bool),
                                  values < 128)


def test_miniswhite_gray_and_16_bit_inputs(tmp_path):
    rng = np.random.default_rng(1)
    values = rng.integers(0, 256, (20, 19), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "w.tif", values, photometric="miniswhite")
    convert(tmp_path / "w.tif", tmp_path / "w.h5")
    np.testing.assert_array_equal(_h5(tmp_path / "w.h5")[0], 255 - values)
    wide = rng.integers(0, 65536, (20, 19), dtype=np.uint16)
    tifffile.imwrite(tmp_path / "16.tif", wide, photometric="minisblack")
    convert(tmp_path / "16.tif", tmp_path / "16.h5", encoding="u8")
    np.testing.assert_array_equal(_h5(tmp_path / "16.h5")[0], wide >> 8)
    convert(tmp_path / "16.tif", tmp_path / "16b.tif")
    same, _, depth = _tiff_page(tmp_path / "16b.tif")
    assert depth == 16
    np.testing.assert_array_equal(same, wide)


def test_bool_mask_to_tiff_needs_and_follows_the_polarity(tmp_path):
    mask = np.random.default_rng(2).random((30, 17)) < 0.4
    with h5py.File(tmp_path / "b.h5", "w") as f:
        f["m"] = mask
    with pytest.raises(UsageError, match="needs polarity: add polarity dark"):
        convert(tmp_path / "b.h5", tmp_path / "b.tif")
    assert not (tmp_path / "b.tif").exists()
    convert(tmp_path / "b.h5", tmp_path / "b.tif", polarity="bright")
    bits, photometric, _ = _tiff_page(tmp_path / "b.tif")
    assert photometric == 1
    np.testing.assert_array_equal(bits, mask)
    convert(tmp_path / "b.h5", tmp_path / "c.h5", segment_rows=4)
    data, _ = _h5(tmp_path / "c.h5")
    np.testing.assert_array_equal(np.unpackbits(data, axis=1, count=17).astype(bool), mask)


def test_refusals(pair, tmp_path):
    folder, _ = pair
    with pytest.raises(UsageError, match="output is the input"):
        convert(folder / "body.tif", folder / "body.tif")
    with pytest.raises(UsageError, match="suffix"):
        convert(folder / "body.tif", tmp_path / "body.png")
    with pytest.raises(UsageError, match="not an HDF5 compression"):
        convert(folder / "body.tif", tmp_path / "b.h5", polarity="dark", compression="lzw")
    assert os.listdir(tmp_path) == []


def test_interrupted_convert_leaves_no_output(pair, tmp_path, monkeypatch):
    from dragon_gpu import convert as module

    folder, _ = pair
    monkeypatch.setattr(module, "BLOCK_NBYTES", 1)  # one strip a block
    real = module._Mapping.__call__
    calls = {"n": 0}

    def interrupt(self, block):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(self, block)

    monkeypatch.setattr(module._Mapping, "__call__", interrupt)
    with pytest.raises(KeyboardInterrupt):
        convert(folder / "dye.tif", tmp_path / "dye.tif", compression="zstd", segment_rows=16)
    assert os.listdir(tmp_path) == []


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "dragon_gpu", *args], capture_output=True,
                          text=True, timeout=120)


def test_cli_convert(pair, tmp_path):
    folder, _ = pair
    proc = _cli("convert", str(folder / "dye.tif"), str(tmp_path / "dye.h5"), "--polarity",
                "bright", "--compression", "gzip", "--chunk-rows", "64", "--json")
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout)
    assert info["segment_rows"] == 64 and info["encoding"] == "packed"
    # A gray image to a mask cannot guess the role: one line that says exactly what to add.
    gray = tmp_path / "gray.tif"
    tifffile.imwrite(gray, np.arange(64 * 64, dtype=np.uint16).reshape(64, 64).astype(np.uint8))
    proc = _cli("convert", str(gray), str(tmp_path / "gray.h5"), "--encoding", "packed")
    assert proc.returncode == 2
    assert proc.stderr.startswith(f"dragon-gpu: error: {tmp_path / 'gray.h5'}: ")
    assert "add --polarity dark if" in proc.stderr and "--polarity bright if" in proc.stderr
    assert proc.stderr.count("\n") == 1
    assert not (tmp_path / "gray.h5").exists()


def test_readme_sample_converts_to_hdf5_without_options(pair, tmp_path):
    """`convert sample/body.tif out.h5` (and the dye) work as the README shows, and detect counts
    the HDF5 masks exactly as it counts the TIFF pair (the generator's truth)."""
    folder, truth = pair
    for role in ("body", "dye"):
        proc = _cli("convert", str(folder / f"{role}.tif"), str(tmp_path / f"{role}.h5"))
        assert proc.returncode == 0, proc.stderr
        assert "the default for a" in proc.stdout
    got = detect(tmp_path / "body.h5", tmp_path / "dye.h5", device="cpu").to_dict()
    for key in ("body_pixels", "dye_in_body_pixels", "dye_outside_body_pixels"):
        assert got[key] == truth[key]
    # The default is the explicit polarity of each role: the masks hold the same bits.
    for role, polarity in (("body", "dark"), ("dye", "bright")):
        convert(folder / f"{role}.tif", tmp_path / f"{role}-explicit.h5", polarity=polarity)
        assert np.array_equal(_h5(tmp_path / f"{role}.h5")[0],
                              _h5(tmp_path / f"{role}-explicit.h5")[0])


def test_bilevel_to_u16_maps_white_to_the_top_value(tmp_path):
    import tifffile

    from dragon_gpu.convert import convert

    mask = np.random.default_rng(3).random((45, 203)) < 0.4
    src = tmp_path / "bi.tif"
    tifffile.imwrite(src, mask, photometric="minisblack", compression="zlib", rowsperstrip=16)
    convert(src, tmp_path / "x16.tif", encoding="u16")
    got = tifffile.imread(tmp_path / "x16.tif")
    assert got.dtype == np.uint16
    assert np.array_equal(got, np.where(mask, 65535, 0))


def test_convert_refuses_a_strip_over_the_memory_budget(tmp_path):
    import tifffile

    from dragon_gpu.convert import convert
    from dragon_gpu.errors import MemoryBudgetError

    src = tmp_path / "one-strip.tif"
    tifffile.imwrite(src, np.zeros((3000, 3000), np.uint8), rowsperstrip=3000,
                     compression="zlib")  # one strip of 9 MB: over a quarter of 16 MiB
    with pytest.raises(MemoryBudgetError, match="memory budget"):
        convert(src, tmp_path / "out.tif", memory=16 << 20)
    assert list(tmp_path.iterdir()) == [src]
