"""The generator: exact truth (recounted independently), realism, kinds, streaming, atomicity."""

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
from dragon_gpu.simulate import (Capsules, build_scene, capsule_spans, generate,
                                 merge_intervals, render_xor)

ndimage = pytest.importorskip("scipy.ndimage")


# -- an independent reader: plain tifffile / h5py / NumPy ------------------------------------------
def read_masks(folder):
    """(body, dye) boolean arrays read from the files by hand, following the SPEC's rules."""
    folder = str(folder)
    if os.path.exists(os.path.join(folder, "body.tif")):
        out = []
        for name, role in (("body.tif", "body"), ("dye.tif", "dye")):
            with tifffile.TiffFile(os.path.join(folder, name)) as tif:
                page = tif.pages[0]
                data = page.asarray()
                if page.bitspersample == 1:
                    # tifffile gives the stored bits; photometric 0 (MINISWHITE): set is black.
                    white = data.astype(bool) if page.photometric == 1 else ~data.astype(bool)
                else:
                    white = data >= 128
            out.append(~white if role == "body" else white)
        return tuple(out)
    out = []
    for name, role in (("body.h5", "body"), ("dye.h5", "dye")):
        with h5py.File(os.path.join(folder, name), "r") as f:
            ds = f["mask"]
            if ds.attrs.get("dragon_gpu_encoding") == "packed-bits":
                width = int(ds.attrs["width"])
                out.append(np.unpackbits(ds[...], axis=1, count=width).astype(bool))
            else:
                values = ds[...]
                out.append(values < 128 if role == "body" else values >= 128)
    return tuple(out)


def recount(folder):
    body, dye = read_masks(folder)
    return {"body_pixels": int(body.sum()), "dye_in_body_pixels": int((body & dye).sum()),
            "dye_pixels": int(dye.sum()), "dye_outside_body_pixels": int((dye & ~body).sum())}


def _truth_counts(truth):
    return {k: truth[k] for k in ("body_pixels", "dye_in_body_pixels", "dye_pixels",
                                  "dye_outside_body_pixels")}


# -- the primitives against brute force -------------------------------------------------------------
def test_render_xor_matches_a_pixel_by_pixel_drawing():
    rng = np.random.default_rng(0)
    for width in (1, 7, 8, 9, 61, 64):
        rows = 6
        pos = rng.integers(0, rows, 40)
        a = rng.integers(0, width + 1, 40)
        b = rng.integers(0, width + 1, 40)
        expect = np.zeros((rows, width), dtype=bool)
        for p, x0, x1 in zip(pos, a, b):
            expect[p, x0:x1] ^= True
        got = render_xor(rows, width, pos, a, b)
        nb = (width + 7) // 8
        bits = np.unpackbits(got[:rows * nb].reshape(rows, nb), axis=1)
        np.testing.assert_array_equal(bits[:, :width].astype(bool), expect)
        assert not bits[:, width:].any() and not got[rows * nb:].any()


def test_prefix_xor_is_a_running_xor():
    from dragon_gpu.simulate import prefix_xor

    rng = np.random.default_rng(4)
    for size in (8, 16, 800, 8 * 1001):
        data = rng.integers(0, 256, size, dtype=np.uint8)
        expect = np.zeros(size, dtype=np.uint8)
        acc = 0
        for i, v in enumerate(data.tolist()):
            acc ^= v
            expect[i] = acc
        prefix_xor(data)
        np.testing.assert_array_equal(data, expect)


def test_merge_intervals_is_the_union():
    rng = np.random.default_rng(1)
    width = 50
    pos = rng.integers(0, 5, 60)
    a = rng.integers(0, width, 60)
    b = a + rng.integers(-3, 12, 60)
    b = np.clip(b, 0, width)
    expect = np.zeros((5, width), dtype=bool)
    for p, x0, x1 in zip(pos, a, b):
        expect[p, x0:x1] = True
    mp, ma, mb = merge_intervals(pos, a, b, width)
    got = np.zeros_like(expect)
    for p, x0, x1 in zip(mp, ma, mb):
        assert not got[p, x0:x1].any() and x0 < x1  # disjoint and non-empty
        got[p, x0:x1] = True
    np.testing.assert_array_equal(got, expect)
    # Sorted and separated by at least one pixel within a row.
    same = mp[1:] == mp[:-1]
    assert (ma[1:][same] > mb[:-1][same]).all()


def test_capsule_spans_match_distances_to_the_segment():
    rng = np.random.default_rng(2)
    height, width = 40, 50
    caps = Capsules.from_rows([
        (rng.uniform(0, 40), rng.uniform(0, 50), rng.uniform(0, 40), rng.uniform(0, 50),
         rng.uniform(0.6, 6)) for _ in range(12)] + [(10.5, 5.0, 10.5, 30.0, 2.0),  # horizontal
                                                     (3.0, 20.5, 35.0, 20.5, 1.5),   # vertical
                                                     (20.0, 20.0, 20.0, 20.0, 4.0)])  # a disc
    rows_idx = np.arange(height)
    yy, xx = np.meshgrid(rows_idx + 0.5, np.arange(width) + 0.5, indexing="ij")
    for k in range(len(caps)):
        p0 = np.array([caps.y0[k], caps.x0[k]])
        p1 = np.array([caps.y1[k], caps.x1[k]])
        d = p1 - p0
        t = np.zeros_like(yy)
        if d @ d > 0:
            t = np.clip(((yy - p0[0]) * d[0] + (xx - p0[1]) * d[1]) / (d @ d), 0, 1)
        dist2 = (yy - p0[0] - t * d[0]) ** 2 + (xx - p0[1] - t * d[1]) ** 2
        expect = dist2 <= caps.r[k] ** 2
        a, b = capsule_spans(caps, np.full(height, k), rows_idx, width)
        got = np.zeros_like(expect)
        for i in range(height):
            got[i, a[i]:b[i]] = True
        # Pixels exactly on the rim may go either way with rounding: compare away from it.
        rim = np.abs(np.sqrt(dist2) - caps.r[k]) < 1e-6
        assert (got == expect)[~rim].all(), k


# -- generated pairs ---------------------------------------------------------------------------------
@pytest.mark.parametrize("fmt,encoding,compression", [
    ("tiff", "packed", None), ("tiff", "packed", "packbits"), ("tiff", "u8", "zstd"),
    ("hdf5", "packed", None), ("hdf5", "u8", "lzf")])
def test_truth_equals_an_independent_recount(tmp_path, fmt, encoding, compression):
    truth = generate(tmp_path, height=150, width=203, seed=11, kind="cancer", fmt=fmt,
                     encoding=encoding, compression=compression, rows_per_strip=32)
    assert _truth_counts(truth) == recount(tmp_path)
    assert truth["shape"] == [150, 203]
    on_disk = json.loads((tmp_path / "truth.json").read_text())
    assert on_disk == truth
    for key in ("version", "body_path", "dye_path", "fraction", "cutoff", "cancer", "backend",
                "seconds", "pixels_per_second", "body_rule", "dye_rule", "warnings", "seed",
                "kind", "parameters", "generator_version"):
        assert key in truth, key


@pytest.mark.parametrize("compression", ["lz4", "zstd"])
def test_hdf5_plugin_filters_are_read_by_detect(tmp_path, compression):
    pytest.importorskip("hdf5plugin")
    truth = generate(tmp_path, height=128, width=136, seed=1, fmt="hdf5",
                     compression=compression)
    # A fresh process: the reader itself must register the plugin filters.
    proc = _cli("detect", str(tmp_path / "body.h5"), str(tmp_path / "dye.h5"), "--device", "cpu",
                "--json")
    assert proc.returncode == 0, proc.stderr
    assert _truth_counts(json.loads(proc.stdout)) == _truth_counts(truth) == recount(tmp_path)


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path):
    files = ("body.tif", "dye.tif")
    for name in ("a", "b", "c"):
        generate(tmp_path / name, height=200, width=180, seed=5 if name != "c" else 6,
                 rows_per_strip=16)
    for f in files:
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes()
        assert (tmp_path / "a" / f).read_bytes() != (tmp_path / "c" / f).read_bytes()
    ta, tb = (json.loads((tmp_path / n / "truth.json").read_text()) for n in ("a", "b"))
    assert _truth_counts(ta) == _truth_counts(tb)


def test_rows_do_not_depend_on_the_block_they_are_rendered_in():
    scene = build_scene(300, 260, seed=3).with_gain(0.5)
    nb = scene.row_nbytes
    whole_body, whole_dye, _ = scene.render(np.arange(300))
    for start, stop in ((0, 1), (17, 90), (150, 151), (299, 300)):
        body, dye, _ = scene.render(np.arange(start, stop))
        n = stop - start
        assert body[:n * nb].tobytes() == whole_body[start * nb:stop * nb].tobytes()
        assert dye[:n * nb].tobytes() == whole_dye[start * nb:stop * nb].tobytes()


@pytest.mark.parametrize("seed,shape", [(0, (320, 320)), (1, (256, 400)), (2, (400, 256)),
                                        (3, (300, 300)), (4, (512, 512)), (5, (333, 301))])
def test_body_is_one_irregular_blob_and_dye_a_leaking_network(tmp_path, seed, shape):
    generate(tmp_path, height=shape[0], width=shape[1], seed=seed, kind="healthy")
    body, dye = read_masks(tmp_path)
    coverage = body.mean()
    assert 0.25 <= coverage <= 0.60, coverage
    _, n = ndimage.label(body, structure=np.ones((3, 3)))
    assert n == 1
    # Not a disc, ellipse or rectangle: clearly smaller than its convex hull.
    from scipy.spatial import ConvexHull

    ys, xs = np.nonzero(body)
    hull = ConvexHull(np.column_stack([ys, xs]).astype(float))
    assert body.sum() < 0.95 * hull.volume
    # Vessels mostly inside the body, some outside; a network, not scattered points: the lit
    # pixels inside the body form far fewer pieces than there are pixels.
    inside, outside = (dye & body).sum(), (dye & ~body).sum()
    assert inside > 3 * outside > 0
    _, pieces = ndimage.label(dye & body, structure=np.ones((3, 3)))
    assert pieces < inside / 20


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_boundary_is_exactly_ten_percent_and_not_cancer(tmp_path, seed):
    truth = generate(tmp_path, height=257, width=311, seed=seed, kind="boundary",
                     rows_per_strip=40)
    counts = recount(tmp_path)
    assert counts["dye_in_body_pixels"] * 10 == counts["body_pixels"]
    assert _truth_counts(truth) == counts and truth["cancer"] is False
    result = detect(tmp_path / "body.tif", tmp_path / "dye.tif", device="cpu").to_dict()
    assert result["cancer"] is False
    assert result["body_pixels"] == counts["body_pixels"]
    body, _ = read_masks(tmp_path)
    assert ndimage.label(body, structure=np.ones((3, 3)))[1] == 1


@pytest.mark.parametrize("kind,fmt", [("cancer", "tiff"), ("healthy", "tiff"),
                                      ("cancer", "hdf5"), ("healthy", "hdf5")])
def test_cancer_and_healthy_verdicts(tmp_path, kind, fmt):
    for seed in (0, 1):
        out = tmp_path / str(seed)
        generate(out, height=240, width=240, seed=seed, kind=kind, fmt=fmt)
        counts = recount(out)
        share = counts["dye_in_body_pixels"] / counts["body_pixels"]
        assert (share >= 0.12) if kind == "cancer" else (share <= 0.08), share
        suffix = ".tif" if fmt == "tiff" else ".h5"
        result = detect(out / f"body{suffix}", out / f"dye{suffix}", device="cpu")
        assert result.verdict.cancer is (kind == "cancer")


def test_typical_follows_the_cancer_rate(tmp_path):
    always = generate(tmp_path / "a", height=128, width=128, seed=9, cancer_rate=1.0)
    never = generate(tmp_path / "b", height=128, width=128, seed=9, cancer_rate=0.0)
    assert always["drawn_kind"] == "cancer" and always["cancer"] is True
    assert never["drawn_kind"] == "healthy" and never["cancer"] is False
    assert always["kind"] == never["kind"] == "typical"


def test_interrupted_generate_leaves_no_file_under_the_final_names(tmp_path, monkeypatch):
    from dragon_gpu import simulate

    first = generate(tmp_path, height=256, width=256, seed=1, rows_per_strip=16)
    before = {n: (tmp_path / n).read_bytes() for n in ("body.tif", "dye.tif", "truth.json")}
    fresh = tmp_path / "fresh"
    real = simulate.Scene.render
    calls = {"n": 0}

    def render(self, rows, want_candidates=False):
        if rows.size > 1:  # a row block of the writing pass, not a sample
            calls["n"] += 1
            if calls["n"] == 5:
                raise KeyboardInterrupt
        return real(self, rows, want_candidates)

    monkeypatch.setattr(simulate.Scene, "render", render)
    for folder in (tmp_path, fresh):
        calls["n"] = 0
        with pytest.raises(KeyboardInterrupt):
            generate(folder, height=256, width=256, seed=2, rows_per_strip=16, workers=2,
                     force=True)
    assert sorted(os.listdir(fresh)) == []
    assert sorted(os.listdir(tmp_path)) == ["body.tif", "dye.tif", "fresh", "truth.json"]
    assert {n: (tmp_path / n).read_bytes() for n in before} == before
    assert first["seed"] == 1


def test_bad_options_are_usage_errors(tmp_path):
    from dragon_gpu.errors import UsageError

    for kwargs, match, param in (({"kind": "sick"}, "^kind: ", "kind"),
                                 ({"fmt": "png"}, "^fmt: ", "fmt"),
                                 ({"compression": "gzip"}, "not available for tiff", "compression"),
                                 ({"height": 10}, "^height: ", "height"),
                                 ({"cancer_rate": 2.0}, "^cancer_rate: ", "cancer_rate")):
        args = {"height": 128, "width": 128, "seed": 0, **kwargs}
        with pytest.raises(UsageError, match=match) as info:
            generate(tmp_path, **args)
        assert info.value.param == param
    assert os.listdir(tmp_path) == []


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "dragon_gpu", *args], capture_output=True,
                          text=True, timeout=120)


def test_cli_generate_writes_the_pair_and_prints_the_truth(tmp_path):
    proc = _cli("generate", str(tmp_path / "out"), "--size", "160", "--seed", "4", "--kind",
                "boundary", "--format", "hdf5", "--json")
    assert proc.returncode == 0, proc.stderr
    truth = json.loads(proc.stdout)
    assert truth["dye_in_body_pixels"] * 10 == truth["body_pixels"]
    assert sorted(os.listdir(tmp_path / "out")) == ["body.h5", "dye.h5", "truth.json"]
    assert _truth_counts(truth) == recount(tmp_path / "out")


def test_cli_generate_bad_input_exits_2_with_one_line(tmp_path):
    proc = _cli("generate", str(tmp_path), "--size", "100", "--height", "100", "--width", "90")
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "dragon-gpu: error:" in proc.stderr


def test_demo_uses_the_generator():
    proc = _cli("demo", "--size", "128", "--device", "cpu")
    assert proc.returncode == 0, proc.stderr
    assert "matches the truth exactly" in proc.stdout
