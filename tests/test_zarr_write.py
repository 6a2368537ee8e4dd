"""Writing Zarr v3 and OME-Zarr: ``convert`` and ``generate --format zarr|ome-zarr``.

Outputs are read back with zarr-python and ome-zarr-py (not with dragon-gpu's reader) and compared
with the NumPy arrays that went in.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import tifffile
from typer.testing import CliRunner

pytest.importorskip("zarr")

import zarr  # noqa: E402

from dragon_gpu.cli import app  # noqa: E402
from dragon_gpu.convert import convert  # noqa: E402
from dragon_gpu.pipeline import detect  # noqa: E402

runner = CliRunner()


@pytest.fixture
def gray_tiff(tmp_path, rng):
    data = rng.integers(0, 256, (75, 61), dtype=np.uint8)
    path = tmp_path / "in.tif"
    tifffile.imwrite(path, data, rowsperstrip=8)
    return path, data


def test_convert_to_zarr_v3(tmp_path, gray_tiff):
    src, data = gray_tiff
    info = convert(src, tmp_path / "out.zarr", compression="gzip", segment_rows=32)
    assert info["format"] == "zarr"
    arr = zarr.open_array(tmp_path / "out.zarr", mode="r")
    assert arr.metadata.zarr_format == 3 and arr.chunks == (32, 32)
    np.testing.assert_array_equal(arr[:], data)
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".part")]


def test_convert_to_ome_zarr_pyramid(tmp_path, gray_tiff):
    src, data = gray_tiff
    res = runner.invoke(app, ["convert", str(src), str(tmp_path / "out.ome.zarr"), "--levels",
                              "3", "--chunk-rows", "16", "--json", "-q"])
    assert res.exit_code == 0, res.output
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Multiscales, Reader

    nodes = list(Reader(parse_url(str(tmp_path / "out.ome.zarr")))())
    image = nodes[0]
    assert image.load(Multiscales) is not None
    levels = [np.asarray(level) for level in image.data]
    assert len(levels) == 3
    np.testing.assert_array_equal(levels[0], data)
    np.testing.assert_array_equal(levels[1], data[::2, ::2])
    np.testing.assert_array_equal(levels[2], data[::4, ::4])
    axes = [a["name"] for a in image.metadata["axes"]]
    assert axes == ["y", "x"]


def test_convert_bilevel_to_a_bool_mask(tmp_path, rng):
    bits = rng.random((30, 45)) < 0.4
    src = tmp_path / "bits.tif"
    tifffile.imwrite(src, bits, photometric="miniswhite")
    convert(src, tmp_path / "m.zarr", encoding="packed", polarity="dark")
    arr = zarr.open_array(tmp_path / "m.zarr", mode="r")
    assert arr.dtype == np.bool_
    # MINISWHITE: a set bit is black, so the dark members are the set bits.
    np.testing.assert_array_equal(arr[:], bits)


def test_convert_refuses_to_replace_a_non_zarr_folder(tmp_path, gray_tiff):
    src, _ = gray_tiff
    (tmp_path / "x.zarr").mkdir()
    (tmp_path / "x.zarr" / "keep.txt").write_text("mine")
    res = runner.invoke(app, ["convert", str(src), str(tmp_path / "x.zarr")])
    assert res.exit_code == 2 and "not a Zarr store" in res.output
    assert (tmp_path / "x.zarr" / "keep.txt").read_text() == "mine"


def test_convert_a_channel_out_of_a_zarr_image(tmp_path, rng):
    ch = rng.integers(0, 256, (2, 20, 24), dtype=np.uint8)
    zarr.create_array(tmp_path / "img.zarr", data=ch, chunks=(1, 8, 8))
    convert(f"{tmp_path}/img.zarr#c=1", tmp_path / "c1.h5")
    import h5py

    with h5py.File(tmp_path / "c1.h5") as f:
        np.testing.assert_array_equal(f["mask"][:], ch[1])


@pytest.mark.parametrize("encoding", ["packed", "u8"])
def test_generate_ome_zarr(tmp_path, encoding):
    res = runner.invoke(app, ["generate", str(tmp_path / "g"), "--size", "300", "--format",
                              "ome-zarr", "--encoding", encoding, "--kind", "cancer",
                              "--chunk-rows", "64", "--levels", "2", "--json", "-q"])
    assert res.exit_code == 0, res.output
    truth = json.loads(res.output)
    image = tmp_path / "g" / "image.ome.zarr"
    assert truth["body_path"] == f"{image}#c=0" and truth["dye_path"] == f"{image}#c=1"
    root = zarr.open_group(image, mode="r")
    meta = root.attrs["ome"]
    assert meta["version"] == "0.5"
    assert [d["path"] for d in meta["multiscales"][0]["datasets"]] == ["0", "1"]
    assert [c["label"] for c in meta["omero"]["channels"]] == ["body", "dye"]
    full = root["0"][:]
    body = full[0] if encoding == "packed" else full[0] < 128
    dye = full[1] if encoding == "packed" else full[1] >= 128
    assert int(body.sum()) == truth["body_pixels"]
    assert int((body & dye).sum()) == truth["dye_in_body_pixels"]
    labels = root["labels/body/0"][:]
    np.testing.assert_array_equal(labels.astype(bool), body)
    assert root["labels"].attrs["ome"]["labels"] == ["body"]
    got = detect(truth["body_path"], truth["dye_path"], device="cpu")
    assert got.counts.body == truth["body_pixels"] and got.verdict.cancer is truth["cancer"]
    via_labels = detect(f"{image}/labels/body", truth["dye_path"], device="cpu")
    assert via_labels.counts == got.counts
    assert sorted(os.listdir(tmp_path / "g")) == ["image.ome.zarr", "truth.json"]


def test_generate_zarr_pair(tmp_path):
    res = runner.invoke(app, ["generate", str(tmp_path / "g"), "--size", "256", "--format",
                              "zarr", "--kind", "healthy", "--json", "-q"])
    assert res.exit_code == 0, res.output
    truth = json.loads(res.output)
    body = zarr.open_array(tmp_path / "g" / "body.zarr", mode="r")[:]
    dye = zarr.open_array(tmp_path / "g" / "dye.zarr", mode="r")[:]
    assert body.dtype == np.bool_
    assert (int(body.sum()), int((body & dye).sum())) == (truth["body_pixels"],
                                                          truth["dye_in_body_pixels"])
    got = detect(truth["body_path"], truth["dye_path"], device="cpu")
    assert got.counts.dye == truth["dye_pixels"]


def test_generate_zarr_refuses_an_existing_pair_without_force(tmp_path):
    args = ["generate", str(tmp_path / "g"), "--size", "128", "--format", "zarr", "-q"]
    assert runner.invoke(app, args).exit_code == 0
    again = runner.invoke(app, args)
    assert again.exit_code == 2 and "--force" in again.output
    assert runner.invoke(app, args + ["--force"]).exit_code == 0
    assert sorted(os.listdir(tmp_path / "g")) == ["body.zarr", "dye.zarr", "truth.json"]
