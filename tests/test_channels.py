"""Body and dye as two channels of one image: the ``IMAGE#c=N`` selector on TIFF and HDF5.

(OME-Zarr channels are tested in test_zarr.py.) Counts are checked against NumPy on the arrays
that were written.
"""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
import tifffile
from typer.testing import CliRunner

from dragon_gpu.cli import app
from dragon_gpu.errors import UsageError
from dragon_gpu.io import open_mask, split_selector
from dragon_gpu.pipeline import detect

runner = CliRunner()


@pytest.fixture
def planes(rng):
    """(c=2, z=3, rows, cols) uint8: channel 0 dark where the body is, channel 1 the dye."""
    body = np.where(rng.random((3, 37, 29)) < 0.6, 30, 220)
    dye = rng.integers(0, 256, (3, 37, 29))
    return np.stack([body, dye]).astype(np.uint8)


def _expect(body_plane, dye_plane):
    bm, dm = body_plane < 128, dye_plane >= 128
    return int(bm.sum()), int((bm & dm).sum()), int(dm.sum())


def _counts(result):
    c = result.counts
    return c.body, c.dye_in_body, c.dye


def test_ome_tiff_planar_pages(tmp_path, planes):
    path = tmp_path / "img.ome.tif"
    tifffile.imwrite(path, planes, metadata={"axes": "CZYX"}, ome=True, rowsperstrip=8,
                     compression="zlib")
    got = detect(f"{path}#c=0,z=2", f"{path}#c=1,z=2", device="cpu")
    assert _counts(got) == _expect(planes[0, 2], planes[1, 2])
    with open_mask(f"{path}#z=1,c=1") as r:
        np.testing.assert_array_equal(r.read_rows(0, 37), planes[1, 1])
        assert r.describe()["axes"] == "c=2, z=3, y=37, x=29"


def test_tiff_series(tmp_path, planes):
    path = tmp_path / "two-series.tif"
    with tifffile.TiffWriter(path) as tw:
        tw.write(planes[0, 0], metadata={"axes": "YX"})
        tw.write(planes[1, 0], metadata={"axes": "YX"})
    got = detect(f"{path}#series=0", f"{path}#series=1", device="cpu")
    assert _counts(got) == _expect(planes[0, 0], planes[1, 0])


def test_hdf5_3d_dataset_channels(tmp_path, planes):
    path = tmp_path / "img.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("stack", data=planes[:, 0], chunks=(1, 8, 16), compression="gzip")
    got = detect(f"{path}#c=0", f"{path}#c=1", device="cpu", block_rows=5)
    assert _counts(got) == _expect(planes[0, 0], planes[1, 0])


def test_hdf5_dimension_labels_name_the_axes(tmp_path, planes):
    path = tmp_path / "img.h5"
    with h5py.File(path, "w") as f:
        ds = f.create_dataset("czyx", data=planes)
        for dim, name in zip(ds.dims, "czyx"):
            dim.label = name
        f.create_dataset("other", data=np.zeros((4, 4), np.uint8))
    got = detect(f"{path}#c=0,z=1", f"{path}#z=1,c=1", device="cpu", body_dataset="czyx",
                 dye_dataset="czyx")
    assert _counts(got) == _expect(planes[0, 1], planes[1, 1])
    res = runner.invoke(app, ["detect", f"{path}#c=0", f"{path}#c=1", "--body-dataset", "czyx",
                              "--dye-dataset", "czyx", "--device", "cpu"])
    assert res.exit_code == 2
    assert "c=2, z=3, y=37, x=29" in res.output and res.output.count("\n") == 1


@pytest.mark.parametrize("fmt", ["tiff", "hdf5"])
def test_unselected_axis_is_refused_listing_the_axes(tmp_path, planes, fmt):
    if fmt == "tiff":
        path = tmp_path / "img.ome.tif"
        tifffile.imwrite(path, planes, metadata={"axes": "CZYX"}, ome=True)
    else:
        path = tmp_path / "img.h5"
        with h5py.File(path, "w") as f:
            f.create_dataset("stack", data=planes[:, 0])
    sel = "c=0,z=0" if fmt == "tiff" else "c=0"
    res = runner.invoke(app, ["info", f"{path}#{sel}", "--no-sample"])
    assert res.exit_code == 0, res.output
    bad = "z=0" if fmt == "tiff" else "c=7"  # c left unselected / outside the axis
    res = runner.invoke(app, ["info", f"{path}#{bad}", "--no-sample"])
    assert res.exit_code == 2 and res.output.count("\n") == 1
    assert ("c=2, z=3, y=37, x=29" if fmt == "tiff" else "c=2, y=37, x=29") in res.output


def test_info_json_shows_the_plane(tmp_path, planes):
    path = tmp_path / "img.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("stack", data=planes[:, 0], chunks=(1, 8, 8))
    res = runner.invoke(app, ["info", f"{path}#c=1", "--json"])
    facts = json.loads(res.output)
    assert facts["plane"] == "c=1" and facts["axes"] == "c=2, y=37, x=29"
    assert facts["shape"] == [37, 29]


def test_selector_syntax():
    assert split_selector("a.zarr#c=1, z=0")[1].axes == {"c": 1, "z": 0}
    assert split_selector("a.zarr#c=dye")[1].axes == {"c": "dye"}
    assert split_selector("a.zarr#label=3")[1].label == 3
    assert split_selector("a.zarr")[1].axes == {}
    for bad in ("a.zarr#c", "a.zarr#c=1,c=2", "a.zarr#series=x"):
        with pytest.raises(UsageError):
            split_selector(bad)
