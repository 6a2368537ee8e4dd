"""With ``allow_external``, one HDF5 file reached twice (both inputs, or one input and the other's
link or virtual source) reads as it does once: HDF5 shares the open dataset between handles and
must not see two external-file prefixes for it."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from dragon_gpu.pipeline import detect

SIDE = 48


@pytest.fixture()
def files(tmp_path):
    """src.h5 (mask a), other.h5 (mask b), vds.h5 (virtual a), link.h5 (external link to a),
    raw.h5 (uint8 gray g in an external raw file)."""
    rng = np.random.default_rng(3)
    a = rng.random((SIDE, SIDE)) < 0.4
    b = rng.random((SIDE, SIDE)) < 0.2
    g = rng.integers(0, 256, (SIDE, SIDE), dtype=np.uint8)
    with h5py.File(tmp_path / "src.h5", "w") as f:
        f["mask"] = a
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f["mask"] = b
    layout = h5py.VirtualLayout(shape=(SIDE, SIDE), dtype=bool)
    layout[:] = h5py.VirtualSource(str(tmp_path / "src.h5"), "mask", shape=(SIDE, SIDE))
    with h5py.File(tmp_path / "vds.h5", "w") as f:
        f.create_virtual_dataset("mask", layout)
    with h5py.File(tmp_path / "link.h5", "w") as f:
        f["mask"] = h5py.ExternalLink("src.h5", "/mask")
    g.tofile(tmp_path / "raw.bin")
    with h5py.File(tmp_path / "raw.h5", "w") as f:
        f.create_dataset("gray", shape=(SIDE, SIDE), dtype=np.uint8,
                         external=[("raw.bin", 0, SIDE * SIDE)])
    return tmp_path, {"src.h5": a, "other.h5": b, "vds.h5": a, "link.h5": a,
                      "raw.h5": g}


def _roles(name, array):
    """(body, dye) members of a file as the SPEC's default rules read it."""
    if array.dtype == bool:
        return array, array
    return array < 128, array >= 128


@pytest.mark.parametrize("body, dye", [
    ("src.h5", "src.h5"), ("vds.h5", "vds.h5"), ("link.h5", "link.h5"), ("raw.h5", "raw.h5"),
    ("vds.h5", "src.h5"), ("src.h5", "vds.h5"), ("link.h5", "src.h5"), ("src.h5", "link.h5"),
    ("vds.h5", "link.h5"), ("raw.h5", "vds.h5"), ("vds.h5", "raw.h5"), ("other.h5", "vds.h5"),
])
def test_same_file_twice_with_allow_external(files, body, dye):
    folder, arrays = files
    body_set = _roles(body, arrays[body])[0]
    dye_set = _roles(dye, arrays[dye])[1]
    names = {"link.h5": "mask", "raw.h5": "gray"}
    result = detect(folder / body, folder / dye, device="cpu", allow_external=True,
                    body_dataset=names.get(body), dye_dataset=names.get(dye)).to_dict()
    assert result["body_pixels"] == int(body_set.sum())
    assert result["dye_in_body_pixels"] == int((body_set & dye_set).sum())
    assert result["dye_outside_body_pixels"] == int((~body_set & dye_set).sum())
