"""Zarr v2/v3 and OME-Zarr inputs: the reader conformance suite, OME images and labels, counts.

Every store is written by zarr-python (OME-Zarr by ome-zarr-py); counts are checked against
plain NumPy on the arrays that were written.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from typer.testing import CliRunner

pytest.importorskip("zarr")

from dragon_gpu.cli import app  # noqa: E402
from dragon_gpu.io import open_mask  # noqa: E402
from dragon_gpu.pipeline import detect  # noqa: E402
from tests.helpers.zarr_files import ZARR_WRITERS, write_ome_image, write_zarr  # noqa: E402
from tests.test_io_readers import ReaderSuite, cases_of  # noqa: E402

runner = CliRunner()


_EDGE_CASES = {k: ZARR_WRITERS[k] for k in ("zarr2-u8-zstd", "zarr3-u8-sharded-zstd",
                                             "zarr3-u8-transpose-crc32c", "zarr3-u8-channel")}


class TestZarrReader(ReaderSuite):
    # Every layout and codec at one odd shape; the tiny shapes on a few (they cost time, not cover
    # more codec paths).
    cases = cases_of(ZARR_WRITERS, shapes=((37, 203),)) + cases_of(_EDGE_CASES,
                                                                   shapes=((5, 9), (1, 1)))


class TestZarrReaderThroughZarrPython(ReaderSuite):
    """Layouts the project's decode path takes, read through zarr-python's path instead."""

    cases = cases_of({k: ZARR_WRITERS[k] for k in ("zarr2-u8-zstd", "zarr3-bool-zstd",
                                                   "zarr3-u8-channel")}, shapes=((37, 203),))

    @pytest.fixture(autouse=True)
    def _zarr_path(self, monkeypatch):
        monkeypatch.setenv("DRAGON_GPU_ZARR_DECODE", "zarr")


def test_decode_paths(tmp_path, rng):
    a = rng.integers(0, 256, (20, 20), dtype=np.uint8)
    write_zarr(tmp_path / "a.zarr", a)
    with open_mask(tmp_path / "a.zarr") as r:
        assert r.describe()["decode_path"].startswith("dragon-gpu")
    write_zarr(tmp_path / "s.zarr", a, shards=(8, 16))
    with open_mask(tmp_path / "s.zarr") as r:
        assert r.describe()["decode_path"] == "zarr-python"


def expected(body_members: np.ndarray, dye_members: np.ndarray) -> dict:
    return {"body_pixels": int(body_members.sum()),
            "dye_in_body_pixels": int((body_members & dye_members).sum()),
            "dye_pixels": int(dye_members.sum())}


def counts_of(result) -> dict:
    d = result.to_dict()
    return {k: d[k] for k in ("body_pixels", "dye_in_body_pixels", "dye_pixels")}


def test_package_import_does_not_import_zarr(tmp_path):
    code = ("import sys, dragon_gpu, dragon_gpu.cli, dragon_gpu.io, dragon_gpu.pipeline; "
            "assert 'zarr' not in sys.modules and 'fsspec' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


# -- OME-Zarr -------------------------------------------------------------------------------------
@pytest.fixture(scope="module", params=["0.4", "0.5"])
def ome_image(request, tmp_path_factory):
    rng = np.random.default_rng(14)
    tmp_path = tmp_path_factory.mktemp(f"ome{request.param}")
    body = np.where(rng.random((45, 38)) < 0.6, 20, 230).astype(np.uint8)
    dye = np.where(rng.random((45, 38)) < 0.3, 240, 10).astype(np.uint8)
    labels = rng.integers(0, 4, (45, 38)).astype(np.uint32)
    path = write_ome_image(tmp_path / "img.ome.zarr", np.stack([body, dye]),
                           version=request.param, labels={"cells": labels},
                           names=["membrane", "dye"])
    return path, body, dye, labels, request.param


def test_ome_channels_by_index_and_by_name(ome_image):
    path, body, dye, _labels, _v = ome_image
    want = expected(body < 128, dye >= 128)
    assert counts_of(detect(f"{path}#c=0", f"{path}#c=1", device="cpu")) == want
    assert counts_of(detect(f"{path}#c=membrane", f"{path}#c=dye", device="cpu")) == want


def test_ome_label_image_as_body(ome_image):
    path, _body, dye, labels, _v = ome_image
    got = detect(f"{path}/labels/cells", f"{path}#c=1", device="cpu")
    assert counts_of(got) == expected(labels > 0, dye >= 128)
    assert "mask" in got.body_rule
    one = detect(f"{path}/labels/cells#label=2", f"{path}#c=1", device="cpu")
    assert counts_of(one) == expected(labels == 2, dye >= 128)


def test_ome_unselected_channel_is_refused_listing_the_axes(ome_image):
    path = ome_image[0]
    res = runner.invoke(app, ["detect", str(path), f"{path}#c=1", "--device", "cpu"])
    assert res.exit_code == 2
    line = res.output.strip()
    assert "\n" not in line and "c=2, y=45, x=38" in line and "#c=0" in line


def test_ome_bad_selectors_are_one_line_errors(ome_image):
    path = ome_image[0]
    for sel, needle in (("c=2", "outside the axis c of 2"), ("z=0", "no axis 'z'"),
                        ("c=nope", "no channel named 'nope'"), ("c", "key=value"),
                        ("label=1", "not an OME-Zarr label image")):
        res = runner.invoke(app, ["info", f"{path}#{sel}", "--no-sample"])
        assert res.exit_code == 2, (sel, res.output)
        assert needle in res.output and res.output.count("\n") == 1


def test_info_shows_axes_levels_channels_labels(ome_image):
    path, *_rest, version = ome_image
    res = runner.invoke(app, ["info", f"{path}#c=1", "--json", "--no-sample"])
    assert res.exit_code == 0, res.output
    facts = json.loads(res.output)
    assert facts["format"].startswith(f"OME-Zarr {version}")
    assert facts["axes"] == "c=2, y=45, x=38" and facts["plane"] == "c=1"
    assert facts["levels"] == 2 and facts["channels"] == "membrane, dye"
    assert facts["labels"] == "cells" and facts["array"] == "s0" if version == "0.5" else True


# -- plain Zarr through the CLI ------------------------------------------------------------------
def _pair(tmp_path, rng, **kw):
    body = rng.integers(0, 256, (70, 45), dtype=np.uint8)
    dye = rng.integers(0, 256, (70, 45), dtype=np.uint8)
    write_zarr(tmp_path / "body.zarr", body, **kw)
    write_zarr(tmp_path / "dye.zarr", dye, **kw)
    return tmp_path / "body.zarr", tmp_path / "dye.zarr", body, dye


def test_detect_json_on_zarr_pair(tmp_path, rng):
    b, d, body, dye = _pair(tmp_path, rng, chunks=(16, 16))
    res = runner.invoke(app, ["detect", str(b), str(d), "--json", "--device", "cpu",
                              "--block-rows", "16"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert {k: out[k] for k in ("body_pixels", "dye_in_body_pixels", "dye_pixels")} == \
        expected(body < 128, dye >= 128)


def test_absent_chunks_are_the_fill_value_and_reported(tmp_path, rng):
    b, d, body, dye = _pair(tmp_path, rng, chunks=(16, 16), fill_value=7)
    (b / "c" / "1" / "2").unlink()
    (b / "c" / "3" / "0").unlink()
    body[16:32, 32:45] = 7
    body[48:64, 0:16] = 7
    res = runner.invoke(app, ["detect", str(b), str(d), "--json", "--device", "cpu"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert out["body_pixels"] == int((body < 128).sum())
    assert out["dye_in_body_pixels"] == int(((body < 128) & (dye >= 128)).sum())
    note = [w for w in out["warnings"] if "absent" in w]
    assert len(note) == 1 and "2 chunks of the body image were absent" in note[0]
    assert "fill value 7, which counts as body" in note[0]
    strict = runner.invoke(app, ["detect", str(b), str(d), "--strict", "--device", "cpu"])
    assert strict.exit_code == 2 and "absent" in strict.output


def test_batch_manifest_names_channels(tmp_path, rng):
    ch = rng.integers(0, 256, (2, 30, 33), dtype=np.uint8)
    import zarr

    zarr.create_array(tmp_path / "img.zarr", data=ch, chunks=(1, 8, 16))
    (tmp_path / "m.csv").write_text("id,body,dye\np,img.zarr#c=0,img.zarr#c=1\n")
    res = runner.invoke(app, ["batch", str(tmp_path / "m.csv"), "--out",
                              str(tmp_path / "r.csv"), "--device", "cpu", "--json"])
    assert res.exit_code == 0, res.output
    import csv

    row = next(csv.DictReader(open(tmp_path / "r.csv")))
    assert row["status"] == "ok", row
    assert int(row["body_pixels"]) == int((ch[0] < 128).sum())
    assert int(row["dye_in_body_pixels"]) == int(((ch[0] < 128) & (ch[1] >= 128)).sum())


def test_preview_of_two_channels(tmp_path, rng):
    pytest.importorskip("PIL")
    ch = np.stack([np.where(rng.random((40, 40)) < .5, 0, 255),
                   rng.integers(0, 256, (40, 40))]).astype(np.uint8)
    import zarr

    zarr.create_array(tmp_path / "img.zarr", data=ch, chunks=(1, 16, 16))
    png = tmp_path / "p.png"
    res = runner.invoke(app, ["preview", f"{tmp_path}/img.zarr#c=0", f"{tmp_path}/img.zarr#c=1",
                              "-o", str(png), "--max-side", "256"])
    assert res.exit_code == 0, res.output
    assert png.stat().st_size > 0 and str(int((ch[0] < 128).sum())) in res.output.replace(",",
                                                                                          "")


def test_group_with_several_arrays_needs_a_name(tmp_path, rng):
    import zarr

    g = zarr.open_group(tmp_path / "g.zarr", mode="w")
    a = rng.integers(0, 256, (10, 12), dtype=np.uint8)
    g.create_array("a", data=a)
    g.create_array("b/c", data=a)
    with pytest.raises(ValueError, match="has 2 Zarr arrays"):
        open_mask(tmp_path / "g.zarr")
    with open_mask(tmp_path / "g.zarr", dataset="b/c") as r:
        np.testing.assert_array_equal(r.read_rows(0, 10), a)


def test_hash_in_an_existing_file_name_is_not_a_selector(tmp_path, rng):
    a = rng.integers(0, 256, (6, 7), dtype=np.uint8)
    import tifffile

    tifffile.imwrite(tmp_path / "x#c=1.tif", a)
    with open_mask(tmp_path / "x#c=1.tif") as r:
        np.testing.assert_array_equal(r.read_rows(0, 6), a)
