"""Gray ``--texture`` pairs: truth and histogram against plain NumPy on the written files,
detect at numbers and methods against the truth, determinism, and what the images look like."""

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
from dragon_gpu.errors import UsageError
from dragon_gpu.simulate import TruthHistogram, counts_at, generate
from dragon_gpu.simulate.zarr import generate_zarr


def read_pair(folder):
    """(body, dye) value arrays read by hand with tifffile / h5py."""
    folder = str(folder)
    if os.path.exists(os.path.join(folder, "body.tif")):
        return tuple(tifffile.imread(os.path.join(folder, n)) for n in ("body.tif", "dye.tif"))
    out = []
    for name in ("body.h5", "dye.h5"):
        with h5py.File(os.path.join(folder, name), "r") as f:
            out.append(f["mask"][...])
    return tuple(out)


def numpy_counts(body, dye, tb, td):
    b, d = body < tb, dye >= td
    return int(b.sum()), int((b & d).sum()), int(d.sum())


@pytest.fixture(scope="module")
def u8_pair(tmp_path_factory):
    out = tmp_path_factory.mktemp("u8")
    truth = generate(out, height=300, width=257, seed=5, kind="cancer", encoding="u8",
                     texture=True)
    return out, truth


@pytest.fixture(scope="module")
def u16_pair(tmp_path_factory):
    out = tmp_path_factory.mktemp("u16")
    truth = generate(out, height=211, width=300, seed=6, kind="healthy", fmt="hdf5",
                     encoding="u16", texture=True)
    return out, truth


def test_u8_truth_and_joint_histogram_match_numpy(u8_pair):
    folder, truth = u8_pair
    body, dye = read_pair(folder)
    assert body.dtype == dye.dtype == np.uint8 and body.shape == (300, 257)
    assert (truth["body_pixels"], truth["dye_in_body_pixels"], truth["dye_pixels"]) == \
        numpy_counts(body, dye, 128, 128)
    assert truth["dye_outside_body_pixels"] == truth["dye_pixels"] - truth["dye_in_body_pixels"]
    assert truth["body_threshold"] == truth["dye_threshold"] == 128
    assert truth["histogram"] == "truth_hist.npz" and truth["texture"]["background"] > 150
    with np.load(folder / "truth_hist.npz") as z:
        assert int(z["bits"]) == 8 and int(z["joint_shift"]) == 0
        joint = z["joint"]
    expect = np.zeros((256, 256), dtype=np.int64)
    np.add.at(expect, (body.ravel(), dye.ravel()), 1)
    np.testing.assert_array_equal(joint, expect)


@pytest.mark.parametrize("tb,td", [(0, 0), (256, 256), (1, 255), (90, 170), (128, 60),
                                   (200, 128), (37, 211)])
def test_u8_counts_at_any_thresholds(u8_pair, tb, td):
    folder, _ = u8_pair
    body, dye = read_pair(folder)
    c = counts_at(folder, tb, td)
    assert (c.body, c.dye_in_body, c.dye) == numpy_counts(body, dye, tb, td)


def test_u16_truth_marginals_and_binned_joint_match_numpy(u16_pair):
    folder, truth = u16_pair
    body, dye = read_pair(folder)
    assert body.dtype == dye.dtype == np.uint16
    assert (truth["body_pixels"], truth["dye_in_body_pixels"], truth["dye_pixels"]) == \
        numpy_counts(body, dye, 32768, 32768)
    assert truth["body_threshold"] == 32768
    hist = TruthHistogram.load(folder)
    assert hist.bits == 16
    np.testing.assert_array_equal(hist.body, np.bincount(body.ravel(), minlength=65536))
    np.testing.assert_array_equal(hist.dye, np.bincount(dye.ravel(), minlength=65536))
    expect = np.zeros((256, 256), dtype=np.int64)
    np.add.at(expect, (body.ravel() >> 8, dye.ravel() >> 8), 1)
    np.testing.assert_array_equal(hist.joint, expect)
    for tb, td in ((256 * 100, 256 * 140), (0, 65536), (65536, 0), (256, 65280)):
        c = hist.counts_at(tb, td)
        assert (c.body, c.dye_in_body, c.dye) == numpy_counts(body, dye, tb, td)
    for t in (1, 12345, 40000, 65535):
        assert hist.body_count(t) == int((body < t).sum())
        assert hist.dye_count(t) == int((dye >= t).sum())
    with pytest.raises(ValueError, match="multiples of 256"):
        hist.counts_at(12345, 32768)
    with pytest.raises(ValueError, match="0..65536"):
        hist.body_count(65537)


@pytest.mark.parametrize("threshold", [None, 100, "otsu", "li", "triangle", "yen", "isodata",
                                       "mean"])
def test_detect_agrees_with_the_u8_truth(u8_pair, threshold):
    folder, truth = u8_pair
    got = detect(folder / "body.tif", folder / "dye.tif", threshold=threshold,
                 device="cpu").to_dict()
    tb, td = got["body_threshold"], got["dye_threshold"]
    if threshold is None:
        assert (tb, td) == (128, 128)
        assert got["body_pixels"] == truth["body_pixels"]
        assert got["dye_in_body_pixels"] == truth["dye_in_body_pixels"]
    c = counts_at(folder, tb, td)
    assert (got["body_pixels"], got["dye_in_body_pixels"], got["dye_pixels"]) == \
        (c.body, c.dye_in_body, c.dye)


def test_detect_with_own_thresholds_per_input_agrees_with_the_truth(u8_pair):
    folder, _ = u8_pair
    got = detect(folder / "body.tif", folder / "dye.tif", body_threshold=150,
                 dye_threshold="otsu", device="cpu").to_dict()
    assert got["body_threshold"] == 150
    c = counts_at(folder, 150, got["dye_threshold"])
    assert (got["body_pixels"], got["dye_in_body_pixels"]) == (c.body, c.dye_in_body)


@pytest.mark.parametrize("threshold", [None, 30000, "otsu", "triangle"])
def test_detect_agrees_with_the_u16_truth(u16_pair, threshold):
    folder, truth = u16_pair
    body, dye = read_pair(folder)
    got = detect(folder / "body.h5", folder / "dye.h5", threshold=threshold,
                 device="cpu").to_dict()
    tb, td = got["body_threshold"], got["dye_threshold"]
    hist = TruthHistogram.load(folder)
    assert got["body_pixels"] == hist.body_count(tb)
    assert got["dye_pixels"] == hist.dye_count(td)
    assert got["dye_in_body_pixels"] == numpy_counts(body, dye, tb, td)[1]
    if threshold is None:
        assert got["dye_in_body_pixels"] == truth["dye_in_body_pixels"]


def test_same_pixels_whatever_the_block_size_and_threads(tmp_path):
    runs = {}
    for name, rows, workers in (("a", None, None), ("b", 7, 1), ("c", 7, 2), ("d", 50, 2)):
        truth = generate(tmp_path / name, height=190, width=203, seed=11, encoding="u8",
                         texture=True, rows_per_strip=rows, workers=workers)
        runs[name] = (read_pair(tmp_path / name), truth)
    base = runs["a"][0]
    for name in "bcd":
        np.testing.assert_array_equal(runs[name][0][0], base[0])
        np.testing.assert_array_equal(runs[name][0][1], base[1])
        assert runs[name][1]["body_pixels"] == runs["a"][1]["body_pixels"]
    # Same strips, other thread count: the same bytes, histogram file included.
    for f in ("body.tif", "dye.tif", "truth_hist.npz"):
        assert (tmp_path / "b" / f).read_bytes() == (tmp_path / "c" / f).read_bytes()
    other = generate(tmp_path / "e", height=190, width=203, seed=12, encoding="u8", texture=True)
    assert read_pair(tmp_path / "e")[0].tobytes() != base[0].tobytes()
    assert other["seed"] == 12


def test_the_images_look_like_microscopy(u8_pair, tmp_path):
    folder, truth = u8_pair
    body, dye = read_pair(folder)
    # Masks of the same seed without texture: where the body and the vessels are.
    generate(tmp_path, height=300, width=257, seed=5, kind="cancer", encoding="u8")
    mb, md = read_pair(tmp_path)
    in_body, lit = mb < 128, md >= 128
    inner = in_body & np.roll(in_body, 3, 0) & np.roll(in_body, -3, 0) & \
        np.roll(in_body, 3, 1) & np.roll(in_body, -3, 1)
    outer = ~(in_body | np.roll(in_body, 3, 0) | np.roll(in_body, -3, 0) |
              np.roll(in_body, 3, 1) | np.roll(in_body, -3, 1))
    # Body darker than the background; both noisy (many gray levels, clear spread).
    assert body[inner].mean() < 110 < 170 < body[outer].mean()
    assert body[outer].std() > 8 and body[inner].std() > 8
    assert len(np.unique(body)) > 120 and len(np.unique(dye)) > 120
    # Soft edges: the body's edge pixels lie between the two levels on average.
    edge = in_body & ~inner
    assert body[inner].mean() < body[edge].mean() < body[outer].mean()
    # Dye: vessels bright, autofluorescence dim and brighter in tissue than outside.
    assert dye[lit].mean() > 170
    assert dye[~lit & outer].mean() < dye[~lit & inner].mean() < 80
    # The gray counts stay close to the masks' (the default threshold still separates them).
    assert abs(truth["body_pixels"] - int(in_body.sum())) < 0.05 * in_body.sum()
    assert truth["cancer"] is True


@pytest.mark.parametrize("seed", range(6))
def test_kinds_hold_on_gray_pairs(tmp_path, seed):
    for kind in ("cancer", "healthy"):
        t = generate(tmp_path / kind, height=160 + 17 * seed, width=220 - 9 * seed, seed=seed,
                     kind=kind, encoding="u8", texture=True)
        assert t["cancer"] is (kind == "cancer")


@pytest.mark.parametrize("kwargs,match", [
    (dict(encoding="packed", texture=True), "add encoding u8 or encoding u16"),
    (dict(encoding="u16"), "^encoding: u16 goes with texture"),
    (dict(encoding="u8", texture=True, kind="boundary"), "boundary"),
])
def test_refused_combinations(tmp_path, kwargs, match):
    with pytest.raises(UsageError, match=match):
        generate(tmp_path, height=128, width=128, **kwargs)
    assert not os.listdir(tmp_path)


def test_cli_generate_texture(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "dragon_gpu", "generate", str(tmp_path / "p"),
                           "--size", "128", "--encoding", "u16", "--texture", "--json"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    truth = json.loads(proc.stdout)
    assert truth["histogram"] == "truth_hist.npz" and truth["parameters"]["encoding"] == "u16"
    assert sorted(os.listdir(tmp_path / "p")) == ["body.tif", "dye.tif", "truth.json",
                                                  "truth_hist.npz"]
    body, dye = read_pair(tmp_path / "p")
    assert truth["body_pixels"] == int((body < 32768).sum())


@pytest.mark.parametrize("fmt,encoding", [("zarr", "u16"), ("ome-zarr", "u8")])
def test_zarr_gray_pairs_keep_their_truth(tmp_path, fmt, encoding):
    zarr = pytest.importorskip("zarr")
    truth = generate_zarr(tmp_path, fmt=fmt, encoding=encoding, height=150, width=170, seed=8,
                          texture=True)
    assert sorted(os.listdir(tmp_path))[-2:] == ["truth.json", "truth_hist.npz"]
    if fmt == "zarr":
        body, dye = (zarr.open_array(str(tmp_path / n), mode="r")[...]
                     for n in ("body.zarr", "dye.zarr"))
    else:
        image = zarr.open_group(str(tmp_path / "image.ome.zarr"), mode="r")["0"][...]
        body, dye = image[0], image[1]
    t = 32768 if encoding == "u16" else 128
    assert body.dtype == (np.uint16 if encoding == "u16" else np.uint8)
    assert (truth["body_pixels"], truth["dye_in_body_pixels"], truth["dye_pixels"]) == \
        numpy_counts(body, dye, t, t)
    got = detect(truth["body_path"], truth["dye_path"], threshold="otsu", device="cpu").to_dict()
    hist = TruthHistogram.load(tmp_path)
    assert got["body_pixels"] == hist.body_count(got["body_threshold"])
    assert got["dye_pixels"] == hist.dye_count(got["dye_threshold"])
    assert got["dye_in_body_pixels"] == numpy_counts(body, dye, got["body_threshold"],
                                                     got["dye_threshold"])[1]


def test_cli_spells_the_refusals_as_flags(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "dragon_gpu", "generate", str(tmp_path / "p"),
                           "--size", "128", "--texture"], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2
    assert proc.stderr == ("dragon-gpu: error: --texture draws gray levels: add --encoding u8 "
                           "or --encoding u16\n")
    proc = subprocess.run([sys.executable, "-m", "dragon_gpu", "generate", str(tmp_path / "p"),
                           "--size", "128", "--encoding", "u16"], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.startswith("dragon-gpu: error: --encoding: u16 goes with --texture")
