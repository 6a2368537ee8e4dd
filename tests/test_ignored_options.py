"""Options an input has no use for are reported, not ignored in silence: a warning line on
stderr and an entry in the JSON warnings, while the counts are what they are without them."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
import tifffile
from typer.testing import CliRunner

from dragon_gpu.cli import app

RNG = np.random.default_rng(5)
BITS = RNG.random((24, 40)) < 0.5        # a 1-bit image: white is set
GRAY = RNG.integers(0, 256, (24, 40), dtype=np.uint8)
MASK = RNG.random((24, 40)) < 0.3


@pytest.fixture()
def files(tmp_path):
    tifffile.imwrite(tmp_path / "bits.tif", BITS, photometric="minisblack")
    tifffile.imwrite(tmp_path / "gray.tif", GRAY, photometric="minisblack")
    with h5py.File(tmp_path / "gray.h5", "w") as f:
        f["img"] = GRAY
    with h5py.File(tmp_path / "mask.h5", "w") as f:
        f["m"] = MASK
    return tmp_path


def ignored(got: dict) -> list[str]:
    """The JSON warnings about ignored options (others, such as coverage, may come too)."""
    return [w for w in got["warnings"] if " applies to " in w]


def detect(*args):
    """The detect JSON; the text output's stderr has the same warnings, one line each."""
    args = [*map(str, args), "-q", "--device", "cpu"]
    result = CliRunner().invoke(app, ["detect", *args, "--json"])
    assert result.exit_code == 0, result.output
    got = json.loads(result.stdout)
    text = CliRunner().invoke(app, ["detect", *args])
    assert text.exit_code == 0, text.output
    lines = [l for l in text.stderr.splitlines() if l.startswith("dragon-gpu: warning: ")]
    assert [l.removeprefix("dragon-gpu: warning: ") for l in lines] == got["warnings"]
    return got


def test_threshold_on_a_1bit_body(files):
    got = detect(files / "bits.tif", files / "gray.tif", "--threshold", "100")
    body, dye = ~BITS, GRAY >= 100   # 1-bit body: black; the threshold applies to the dye
    assert got["body_pixels"] == int(body.sum())
    assert got["dye_in_body_pixels"] == int((body & dye).sum())
    assert ignored(got) == ["--threshold 100 applies to gray images only: the body image is "
                               "a 1-bit image and keeps its rule"]


def test_threshold_on_boolean_hdf5_masks(files):
    got = detect(files / "mask.h5", files / "mask.h5", "--threshold", "7",
                 "--dye-threshold", "9")
    assert got["body_pixels"] == int(MASK.sum())
    assert got["warnings"] == [
        "--threshold 7 applies to gray images only: the body image is a mask and keeps its rule",
        "--dye-threshold 9 applies to gray images only: the dye image is a mask and keeps its "
        "rule"]


def test_page_on_hdf5(files):
    got = detect(files / "gray.h5", files / "gray.tif", "--page", "0")
    assert got["warnings"] == []
    got = detect(files / "gray.h5", files / "gray.h5", "--page", "2")
    assert ignored(got) == [f"--page 2 applies to TIFF files only: {files / 'gray.h5'} and "
                            f"{files / 'gray.h5'} are read without it"]
    assert got["body_pixels"] == int((GRAY < 128).sum())


def test_dataset_on_tiff(files):
    got = detect(files / "gray.tif", files / "gray.h5", "--body-dataset", "img",
                 "--dye-dataset", "img")
    assert got["warnings"] == ["--body-dataset img applies to HDF5 and Zarr inputs only: the "
                               f"body image {files / 'gray.tif'} is a TIFF file and is read "
                               "without it"]
    assert got["dye_in_body_pixels"] == int(((GRAY < 128) & (GRAY >= 128)).sum())


def test_options_that_apply_say_nothing(files):
    got = detect(files / "gray.tif", files / "gray.h5", "--threshold", "100", "--dye-dataset",
                 "img")
    assert ignored(got) == []
    assert got["body_pixels"] == int((GRAY < 100).sum())


def test_info_and_convert_say_so_too(files, tmp_path):
    result = CliRunner().invoke(app, ["info", str(files / "gray.h5"), "--page", "1",
                                      "--no-sample", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["shape"] == [24, 40]
    assert result.stderr == (f"dragon-gpu: warning: --page 1 applies to TIFF files only: "
                             f"{files / 'gray.h5'} is read without it\n")
    result = CliRunner().invoke(app, ["convert", str(files / "gray.tif"), str(tmp_path / "o.h5"),
                                      "--dataset", "img", "-q", "--json"])
    assert result.exit_code == 0, result.output
    assert "--dataset img applies to HDF5 and Zarr inputs only" in result.stderr
    with h5py.File(tmp_path / "o.h5") as f:
        assert (f["mask"][:] == GRAY).all()
    for args in (["info", str(files / "gray.tif"), "--page", "0", "--no-sample"],
                 ["info", str(files / "gray.h5"), "--dataset", "img", "--no-sample"]):
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 0 and "warning" not in result.stderr, result.output
