"""Threshold methods in detect, preview, info and batch: histogram passes and exact counts.

Expectations are plain NumPy on the whole (small) images with scikit-image's threshold.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import tifffile
from typer.testing import CliRunner

skimage_filters = pytest.importorskip("skimage.filters")

from dragon_gpu import pipeline  # noqa: E402
from dragon_gpu.cli import app  # noqa: E402
from dragon_gpu.engines.cpu import CpuEngine  # noqa: E402
from dragon_gpu.engines.cpu_hist import (counts_from_joint, histogram_block,  # noqa: E402
                                         joint_histogram_block)
from dragon_gpu.errors import EmptyBodyError, UsageError  # noqa: E402
from dragon_gpu.io.base import PixelRule  # noqa: E402

runner = CliRunner()


def sk_t(method: str, image: np.ndarray) -> int:
    return math.floor(getattr(skimage_filters, f"threshold_{method}")(image)) + 1


def gray_pair(seed=0, shape=(61, 47)):
    rng = np.random.default_rng(seed)
    body = np.where(rng.random(shape) < 0.45, rng.normal(50, 12, shape),
                    rng.normal(180, 20, shape)).clip(0, 255).astype(np.uint8)
    dye = np.where(rng.random(shape) < 0.2, rng.normal(200, 15, shape),
                   rng.normal(60, 25, shape)).clip(0, 255).astype(np.uint8)
    return body, dye


def want_counts(body, dye, tb, td):
    b, d = body < tb, dye >= td
    return int(b.sum()), int((b & d).sum()), int(d.sum())


@pytest.fixture
def files(tmp_path):
    body, dye = gray_pair()
    tifffile.imwrite(tmp_path / "body.tif", body, rowsperstrip=5)
    tifffile.imwrite(tmp_path / "dye.tif", dye, rowsperstrip=7)
    return tmp_path, body, dye


# -- the per-block functions -----------------------------------------------------------------------
def test_blocks_are_bincounts():
    rng = np.random.default_rng(1)
    a = rng.integers(0, 65536, (37, 29), dtype=np.uint16)
    assert np.array_equal(histogram_block(a), np.bincount(a.ravel(), minlength=65536))
    b, d = gray_pair(2, (300, 2000))  # several slices
    want = np.zeros((256, 256), np.int64)
    np.add.at(want, (b.ravel(), d.ravel()), 1)
    assert np.array_equal(joint_histogram_block(b, d).reshape(256, 256), want)


def test_counts_from_joint_for_every_rule():
    body, dye = gray_pair(3)
    joint = joint_histogram_block(body, dye)
    for tb in (1, 90, 128, 255):
        for td in (1, 130, 255):
            for bh in (False, True):
                for dh in (False, True):
                    b = body >= tb if bh else body < tb
                    d = dye >= td if dh else dye < td
                    got = counts_from_joint(joint, PixelRule(tb, bh, ""), PixelRule(td, dh, ""))
                    assert (got.body, got.dye_in_body, got.dye) == (
                        int(b.sum()), int((b & d).sum()), int(d.sum()))


# -- detect ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("method", ["otsu", "li", "triangle", "yen", "isodata", "mean"])
def test_u8_pair_is_one_pass(files, method, monkeypatch):
    folder, body, dye = files
    monkeypatch.setattr(CpuEngine, "count_pair", lambda *a, **k: pytest.fail("second pass"))
    result = pipeline.detect(folder / "body.tif", folder / "dye.tif", device="cpu",
                             threshold=method, block_rows=10)
    tb, td = sk_t(method, body), sk_t(method, dye)
    c = result.counts
    assert (c.body, c.dye_in_body, c.dye) == want_counts(body, dye, tb, td)
    d = result.to_dict()
    assert (d["body_threshold"], d["dye_threshold"]) == (tb, td)
    assert d["body_threshold_method"] == d["dye_threshold_method"] == method
    assert f"value < {tb} is body (dark, {method} threshold)" in d["body_rule"]


def test_u16_body_takes_a_histogram_pass_then_counts(tmp_path):
    body8, dye = gray_pair(4)
    body = body8.astype(np.uint16) * 200 + 11
    tifffile.imwrite(tmp_path / "body.tif", body, rowsperstrip=6)
    tifffile.imwrite(tmp_path / "dye.tif", dye, rowsperstrip=6)
    seen = []
    result = pipeline.detect(tmp_path / "body.tif", tmp_path / "dye.tif", device="cpu",
                             body_threshold="li", dye_threshold=140, block_rows=12,
                             progress=lambda done, total: seen.append((done, total)))
    tb = sk_t("li", body)
    c = result.counts
    assert (c.body, c.dye_in_body, c.dye) == want_counts(body, dye, tb, 140)
    d = result.to_dict()
    assert (d["body_threshold"], d["body_threshold_method"]) == (tb, "li")
    assert (d["dye_threshold"], d["dye_threshold_method"]) == (140, "fixed")
    assert seen[-1] == (2 * body.shape[0], 2 * body.shape[0])  # two passes, one bar


def test_default_and_mask_report(tmp_path):
    body8, dye = gray_pair(5)
    tifffile.imwrite(tmp_path / "body.tif", body8 < 100)  # 1-bit
    tifffile.imwrite(tmp_path / "dye.tif", dye)
    d = pipeline.detect(tmp_path / "body.tif", tmp_path / "dye.tif", device="cpu").to_dict()
    assert (d["body_threshold"], d["body_threshold_method"]) == (None, None)
    assert (d["dye_threshold"], d["dye_threshold_method"]) == (128, "fixed")
    d = pipeline.detect(tmp_path / "body.tif", tmp_path / "dye.tif", device="cpu",
                        threshold="otsu").to_dict()
    assert d["dye_threshold"] == sk_t("otsu", dye) and d["body_threshold"] is None
    assert any("applies to the gray image only" in w for w in d["warnings"])
    with pytest.raises(UsageError, match="body_threshold: otsu: the body image is a 1-bit"):
        pipeline.detect(tmp_path / "body.tif", tmp_path / "dye.tif", body_threshold="otsu")
    tifffile.imwrite(tmp_path / "dye1.tif", dye > 100)
    with pytest.raises(UsageError, match="neither image has gray levels"):
        pipeline.detect(tmp_path / "body.tif", tmp_path / "dye1.tif", threshold="otsu")


def test_miniswhite_uses_displayed_brightness(tmp_path):
    body, dye = gray_pair(6)
    # Stored inverted: the displayed image is still `body`.
    tifffile.imwrite(tmp_path / "body.tif", 255 - body, photometric="miniswhite")
    tifffile.imwrite(tmp_path / "dye.tif", dye)
    result = pipeline.detect(tmp_path / "body.tif", tmp_path / "dye.tif", device="cpu",
                             threshold="otsu")
    tb, td = sk_t("otsu", body), sk_t("otsu", dye)
    assert result.to_dict()["body_threshold"] == tb
    c = result.counts
    assert (c.body, c.dye_in_body, c.dye) == want_counts(body, dye, tb, td)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_single_value_and_two_value_images(tmp_path, dtype):
    top = np.iinfo(dtype).max
    body = np.full((9, 8), top, dtype)  # one value: t = top + 1, every pixel is body
    dye = np.zeros((9, 8), dtype)
    dye[::2] = top  # two values
    tifffile.imwrite(tmp_path / "body.tif", body)
    tifffile.imwrite(tmp_path / "dye.tif", dye)
    result = pipeline.detect(tmp_path / "body.tif", tmp_path / "dye.tif", device="cpu",
                             threshold="otsu")
    d = result.to_dict()
    assert d["body_threshold"] == top + 1 == sk_t("otsu", body)
    assert d["dye_threshold"] == sk_t("otsu", dye) == 1
    assert (d["body_pixels"], d["dye_in_body_pixels"]) == (72, 5 * 8)


def test_empty_body_under_a_method_is_exit_2(tmp_path):
    body = np.full((9, 8), 40, np.uint8)
    tifffile.imwrite(tmp_path / "body.tif", body)
    tifffile.imwrite(tmp_path / "dye.tif", body)
    with pytest.raises(EmptyBodyError):  # bright body: value >= 41, nothing
        pipeline.detect(tmp_path / "body.tif", tmp_path / "dye.tif", device="cpu",
                        threshold="mean", body_polarity="bright")
    run = runner.invoke(app, ["detect", str(tmp_path / "body.tif"), str(tmp_path / "dye.tif"),
                              "--threshold", "mean", "--body-polarity", "bright"])
    assert run.exit_code == 2 and "empty" in run.stderr and "Traceback" not in run.stderr


def test_resolve_thresholds_for_row_range_tasks(files):
    folder, body, dye = files
    opts, chosen = pipeline.resolve_thresholds(folder / "body.tif", folder / "dye.tif",
                                               device="cpu", threshold="yen")
    assert (opts.threshold, opts.body_threshold, opts.dye_threshold) == (
        None, sk_t("yen", body), sk_t("yen", dye))
    assert chosen.body_method == "yen"
    with pytest.raises(UsageError, match="numeric thresholds"):
        pipeline.count_range(folder / "body.tif", folder / "dye.tif", pipeline.RowRange(0, 5),
                             threshold="yen")
    part = pipeline.count_range(folder / "body.tif", folder / "dye.tif", pipeline.RowRange(0, 5),
                                opts)
    tb, td = opts.body_threshold, opts.dye_threshold
    assert (part.body, part.dye_in_body, part.dye) == want_counts(body[:5], dye[:5], tb, td)


# -- CLI: detect, info --histogram, preview, batch -------------------------------------------------
def test_cli_detect_methods(files):
    folder, body, dye = files
    run = runner.invoke(app, ["detect", str(folder / "body.tif"), str(folder / "dye.tif"),
                              "--body-threshold", "Triangle", "--dye-threshold", "200",
                              "--json", "--device", "cpu"])
    assert run.exit_code == 0, run.output
    d = json.loads(run.stdout)
    assert (d["body_threshold"], d["body_threshold_method"]) == (sk_t("triangle", body),
                                                                 "triangle")
    assert (d["dye_threshold"], d["dye_threshold_method"]) == (200, "fixed")
    run = runner.invoke(app, ["detect", str(folder / "body.tif"), str(folder / "dye.tif"),
                              "--threshold", "minimum"])
    assert run.exit_code == 2
    assert "--threshold: expected a gray level (an integer) or a method" in run.stderr
    run = runner.invoke(app, ["detect", str(folder / "body.tif"), str(folder / "dye.tif"),
                              "--threshold", "otsu", "--device", "cpu"])
    assert f"thresholds: body {sk_t('otsu', body)} (otsu)" in run.stdout


def test_cli_info_histogram(files):
    folder, body, _ = files
    run = runner.invoke(app, ["info", str(folder / "body.tif"), "--histogram", "--json"])
    assert run.exit_code == 0, run.output
    h = json.loads(run.stdout)["histogram"]
    assert (h["pixels"], h["min"], h["max"]) == (body.size, int(body.min()), int(body.max()))
    assert h["methods"] == {m: sk_t(m, body) for m in h["methods"]}
    run = runner.invoke(app, ["info", str(folder / "body.tif"), "--histogram"])
    assert f"otsu      t = {sk_t('otsu', body)}" in run.stdout
    tifffile.imwrite(folder / "mask.tif", body > 3)
    run = runner.invoke(app, ["info", str(folder / "mask.tif"), "--histogram"])
    assert run.exit_code == 2 and "no gray levels" in run.stderr


def test_preview_reports_the_thresholds(files):
    pytest.importorskip("PIL")
    folder, body, dye = files
    run = runner.invoke(app, ["preview", str(folder / "body.tif"), str(folder / "dye.tif"),
                              "-o", str(folder / "p.png"), "--threshold", "isodata"])
    assert run.exit_code == 0, run.output
    tb, td = sk_t("isodata", body), sk_t("isodata", dye)
    assert f"thresholds: body {tb} (isodata), dye {td} (isodata)" in run.stdout
    b, both, _ = want_counts(body, dye, tb, td)
    assert f"body {b:,} px   dye in body {both:,} px" in run.stdout


def test_batch_rows_carry_the_thresholds(files):
    from dragon_gpu.batching import read_results, run_batch

    folder, body, dye = files
    (folder / "m.csv").write_text("id,body,dye\na,body.tif,dye.tif\n")
    run_batch(folder / "m.csv", folder / "R.csv", workers=1, device="cpu", threshold="li")
    (row,) = read_results(folder / "R.csv")
    assert row["status"] == "ok"
    assert (row["body_threshold"], row["dye_threshold"]) == (sk_t("li", body), sk_t("li", dye))
    assert row["body_threshold_method"] == row["dye_threshold_method"] == "li"


def test_detect_preview_with_a_method(files):
    """detect --preview draws from the counting pass, so a method takes its histogram pass
    first; the picture's counts are checked against the engine's by DetectPreview.write."""
    pytest.importorskip("PIL")
    folder, body, dye = files
    run = runner.invoke(app, ["detect", str(folder / "body.tif"), str(folder / "dye.tif"),
                              "--threshold", "yen", "--preview", str(folder / "d.png"),
                              "--json", "--device", "cpu"])
    assert run.exit_code == 0, run.output
    d = json.loads(run.stdout)
    tb, td = sk_t("yen", body), sk_t("yen", dye)
    assert (d["body_threshold"], d["dye_threshold"]) == (tb, td)
    assert (d["body_pixels"], d["dye_in_body_pixels"], d["dye_pixels"]) == want_counts(
        body, dye, tb, td)
    assert (folder / "d.png").stat().st_size > 0
