"""The overlay picture: sizes, colours of known regions, exact counts, one pass with detect."""

from __future__ import annotations

import os
import subprocess
import sys
import tracemalloc

import numpy as np
import pytest

pytest.importorskip("PIL")
from PIL import Image  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from dragon_gpu import preview as preview_mod  # noqa: E402
from dragon_gpu import pipeline as pipeline_mod  # noqa: E402
from dragon_gpu.cli import app  # noqa: E402
from dragon_gpu.errors import UsageError  # noqa: E402
from dragon_gpu.io.base import Encoding, Kind, MaskReader, PixelRule  # noqa: E402
from dragon_gpu.model import Counts  # noqa: E402
from dragon_gpu.preview import (BACKGROUND_RGB, BODY_RGB, DYE_IN_RGB, DYE_OUT_RGB,  # noqa: E402
                                Overlay, preview)
from tests.helpers.files import pack_rows, write_h5_packed, write_tiff  # noqa: E402
from tests.test_cli import ROOT  # noqa: E402

DEVICES = [pytest.param("cpu", id="cpu"), pytest.param("0", id="gpu0", marks=pytest.mark.gpu)]


def regions(k=1):
    """A (120 k) x (200 k) pair. Body: columns [0, 120 k); dye: rows [0, 60 k) of columns
    [80 k, 160 k). So columns [0, 80 k) are body only; [80 k, 120 k) dye in body (top half) or body
    only (bottom); [120 k, 160 k) dye outside (top) or background (bottom); the rest background.
    """
    body = np.zeros((120 * k, 200 * k), bool)
    body[:, :120 * k] = True
    dye = np.zeros((120 * k, 200 * k), bool)
    dye[:60 * k, 80 * k:160 * k] = True
    return body, dye


def write_pair(tmp_path, body, dye):
    b = write_tiff(tmp_path / "body.tif", body, photometric="miniswhite", compression="zlib",
                   rowsperstrip=7)   # MINISWHITE: a set bit is black, i.e. body
    d = write_h5_packed(tmp_path / "dye.h5", dye, chunks=(9, 25))
    return b.path, d.path


def oracle(body, dye) -> Counts:
    return Counts(body=int(body.sum()), dye_in_body=int((body & dye).sum()), dye=int(dye.sum()))


def png(path) -> np.ndarray:
    with Image.open(path) as im:
        assert im.format == "PNG"
        return np.asarray(im.convert("RGB"))


@pytest.mark.parametrize("block_rows", [1, 7, 120, 123, None])
def test_full_resolution_regions_and_counts(tmp_path, block_rows):
    body, dye = regions()
    b, d = write_pair(tmp_path, body, dye)
    out = tmp_path / "p.png"
    got = preview(b, d, out, max_side=2048, block_rows=block_rows)
    assert got.scale == 1 and got.overlay_shape == (120, 200)
    assert got.counts == oracle(body, dye)
    pixels = png(out)
    assert pixels.shape[:2] == got.png_shape == (120 + got.legend_height, got.png_shape[1])
    assert got.png_shape[1] >= 200 and max(got.png_shape) <= 2048
    expect = {BODY_RGB: [(0, 0), (119, 79), (70, 100)], DYE_IN_RGB: [(0, 80), (59, 119)],
              DYE_OUT_RGB: [(0, 120), (59, 159)], BACKGROUND_RGB: [(60, 120), (119, 199)]}
    for colour, points in expect.items():
        for r, c in points:
            assert tuple(pixels[r, c]) == colour, (r, c)
    # every overlay pixel is one of the four colours, in the places the masks say
    want = np.empty((120, 200, 3), np.uint8)
    want[...] = BACKGROUND_RGB
    want[body] = BODY_RGB
    want[body & dye] = DYE_IN_RGB
    want[dye & ~body] = DYE_OUT_RGB
    np.testing.assert_array_equal(pixels[:120, :200], want)
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]


def test_downsampled_by_area(tmp_path):
    body, dye = regions(10)  # 1200 x 2000
    # One 4 x 4 square of mixed content: exactly 4 of its 16 pixels are body (rows 1000-1003,
    # columns 1600-1603 are background otherwise).
    body[1000:1002, 1600:1602] = True
    b, d = write_pair(tmp_path, body, dye)
    out = tmp_path / "p.png"
    got = preview(b, d, out, max_side=600)
    pixels = png(out)
    height, width = pixels.shape[:2]
    assert max(height, width) <= 600
    s = got.scale
    # the smallest integer scale that fits: one less would not
    assert -(-1200 // s) + got.legend_height <= 600 and -(-2000 // s) <= 600
    assert s == 1 or -(-1200 // (s - 1)) + got.legend_height > 600 or -(-2000 // (s - 1)) > 600
    assert got.overlay_shape == (-(-1200 // s), -(-2000 // s))
    assert got.counts == oracle(body, dye)
    assert s == 4  # by hand: 2000 / 600 -> 4 (3 leaves 667 columns)
    for colour, (r, c) in {BODY_RGB: (10, 10), DYE_IN_RGB: (10, 225), DYE_OUT_RGB: (10, 350),
                           BACKGROUND_RGB: (250, 450)}.items():
        assert tuple(pixels[r, c]) == colour, (r, c)
    # the mixed square: a quarter body, three quarters background, mixed by area
    mix = np.rint(0.25 * np.array(BODY_RGB) + 0.75 * np.array(BACKGROUND_RGB))
    np.testing.assert_allclose(pixels[250, 400], mix, atol=1)


def test_partial_squares_at_the_edges_are_averaged_over_their_own_pixels(tmp_path):
    # 10 x 10 with scale 4: the last row and column of squares hold 2 image rows / columns.
    body = np.zeros((10, 10), bool)
    body[8:, 8:] = True         # the 2 x 2 corner square is all body
    body[8:, 0:2] = True        # half of the 2 x 4 square at the bottom left
    dye = np.zeros((10, 10), bool)
    overlay = Overlay((10, 10), _enc(10), _enc(10), scale=4)
    overlay.add_rows(0, pack_rows(body), pack_rows(dye))
    assert overlay.complete and overlay.out_shape == (3, 3)
    assert tuple(overlay.rgb[2, 2]) == BODY_RGB
    mix = np.rint(0.5 * np.array(BODY_RGB) + 0.5 * np.array(BACKGROUND_RGB))
    np.testing.assert_allclose(overlay.rgb[2, 0], mix, atol=1)
    assert tuple(overlay.rgb[0, 0]) == BACKGROUND_RGB


def _enc(width):
    return Encoding(True, width, np.dtype(np.uint8), PixelRule(1, True, "set"))


def test_blocks_in_any_order_give_the_same_picture(rng):
    body, dye = rng.random((50, 77)) < 0.5, rng.random((50, 77)) < 0.3
    bp, dp = pack_rows(body, garbage_padding=True, rng=rng), pack_rows(dye, garbage_padding=True,
                                                                         rng=rng)
    ordered = Overlay((50, 77), _enc(77), _enc(77), scale=3)
    ordered.add_rows(0, bp, dp)
    cuts = [0, 1, 2, 8, 9, 20, 33, 34, 50]
    pieces = list(zip(cuts, cuts[1:]))
    rng.shuffle(pieces)
    shuffled = Overlay((50, 77), _enc(77), _enc(77), scale=3)
    for a, b in pieces:
        assert not shuffled.complete
        shuffled.add_rows(a, bp[a:b], dp[a:b])
    assert shuffled.complete
    np.testing.assert_array_equal(shuffled.rgb, ordered.rgb)
    assert shuffled.counts == ordered.counts == oracle(body, dye)
    with pytest.raises(ValueError):
        shuffled.add_rows(40, bp[40:50], dp[40:41])


def test_rows_added_twice_are_a_bug_not_a_picture():
    overlay = Overlay((6, 8), _enc(8), _enc(8), scale=4)
    rows = np.zeros((1, 1), np.uint8)
    overlay.add_rows(0, rows, rows)
    with pytest.raises(ValueError, match="twice"):
        for _ in range(4):
            overlay.add_rows(0, rows, rows)


def test_an_empty_body_is_drawn(tmp_path):
    body, dye = regions()
    b, d = write_pair(tmp_path, np.zeros_like(body), dye)
    got = preview(b, d, tmp_path / "p.png")
    assert got.counts.body == 0 and "no verdict" in got.legend[0]
    assert (tmp_path / "p.png").exists()


# -- detect --preview: the same pass ---------------------------------------------------------------
@pytest.mark.parametrize("device", DEVICES)
def test_detect_preview_draws_the_same_picture_from_the_same_pass(tmp_path, device):
    body, dye = regions(k=5)  # 600 x 1000
    b, d = write_pair(tmp_path, body, dye)
    runner = CliRunner()
    r1 = runner.invoke(app, ["preview", str(b), str(d), "-o", str(tmp_path / "a.png"),
                             "--max-side", "300"])
    assert r1.exit_code == 0, r1.output
    args = ["detect", str(b), str(d), "--json", "--preview", str(tmp_path / "b.png"),
            "--max-side", "300", "--device", device]
    if device != "cpu":
        args.append("--require-gpu")
    r2 = runner.invoke(app, args)
    assert r2.exit_code == 0, r2.output
    import json

    assert json.loads(r2.stdout)["body_pixels"] == int(body.sum())  # stdout stays pure JSON
    a, c = png(tmp_path / "a.png"), png(tmp_path / "b.png")
    assert a.shape == c.shape and max(a.shape[:2]) <= 300
    # scale 4 by hand: 1000 columns / 300 -> 4; so 150 x 250 overlay pixels
    np.testing.assert_array_equal(a[:150, :250], c[:150, :250])
    assert tuple(c[5, 5]) == BODY_RGB and tuple(c[5, 120]) == DYE_IN_RGB


def test_detect_preview_reads_each_block_once(tmp_path, monkeypatch):
    """The preview must not cost a second pass over the files."""
    from dragon_gpu.pipeline import detect

    body, dye = regions()
    b, d = write_pair(tmp_path, body, dye)
    reads = []
    from dragon_gpu.io.tiff import TiffReader

    original = TiffReader.read_rows

    def spy(self, row_start, row_stop, out=None):
        reads.append((row_start, row_stop))
        return original(self, row_start, row_stop, out=out)

    monkeypatch.setattr(TiffReader, "read_rows", spy)
    watcher = preview_mod.DetectPreview(tmp_path / "p.png", max_side=512)
    result = detect(b, d, device="cpu", block_rows=13, watch=watcher.watch)
    drawn = watcher.write(result)
    assert sum(r1 - r0 for r0, r1 in reads) == 120
    assert drawn.counts == result.counts == oracle(body, dye)


# -- bad requests ----------------------------------------------------------------------------------
def test_bad_requests_exit_2_with_one_line(tmp_path):
    body, dye = regions()
    b, d = write_pair(tmp_path, body, dye)
    runner = CliRunner()
    cases = [
        (["preview", b, d, "-o", tmp_path / "p.png", "--max-side", "100"], "--max-side"),
        (["preview", b, d, "-o", tmp_path / "nofolder" / "p.png"], "nofolder"),
        (["preview", b, d, "-o", tmp_path], str(tmp_path)),
        (["preview", b, tmp_path / "missing.h5", "-o", tmp_path / "p.png"], "missing.h5"),
        (["detect", b, d, "--preview", tmp_path / "p.png", "--max-side", "10"], "--max-side"),
    ]
    for args, needle in cases:
        result = runner.invoke(app, [str(a) for a in args])
        assert result.exit_code == 2, (args, result.output)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and needle in lines[0] and "Traceback" not in result.stderr
    assert not (tmp_path / "p.png").exists()


def test_an_interrupted_write_leaves_no_file(tmp_path, monkeypatch):
    body, dye = regions()
    b, d = write_pair(tmp_path, body, dye)

    def save_then_interrupt(self, fp, *args, **kwargs):
        with open(fp, "wb") as fh:
            fh.write(b"\x89PNG partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(Image.Image, "save", save_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        preview(b, d, tmp_path / "p.png")
    assert sorted(os.listdir(tmp_path)) == ["body.tif", "dye.h5"]


def test_without_pillow_the_package_imports_and_preview_says_why():
    code = ("import sys; sys.modules['PIL'] = None\n"
            "import dragon_gpu, dragon_gpu.cli, dragon_gpu.preview, dragon_gpu.pipeline\n"
            "from dragon_gpu.cli import main\n"
            "sys.argv = ['dragon-gpu', 'preview', 'a.tif', 'b.tif', '-o', 'p.png']\n"
            "main()\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)}
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Pillow" in lines[0] and "pip install" in lines[0]


def test_require_pillow_error_is_a_usage_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "PIL", None)
    with pytest.raises(UsageError, match="Pillow"):
        preview_mod.require_pillow()


# -- bounded memory --------------------------------------------------------------------------------
class _Stripes(MaskReader):
    """A large packed mask generated on the fly: every other row set (no file, no whole image)."""

    def __init__(self, height, width):
        self.path, self.shape, self.bits, self.packed = "<stripes>", (height, width), 1, True
        self.dtype, self.kind, self.row_granularity = np.dtype(np.uint8), Kind.mask, 1

    def read_rows(self, row_start, row_stop, out=None):
        out = self._check_range(row_start, row_stop, out)
        out[:] = 0
        out[(row_start % 2)::2] = 0xFF
        return out

    def describe(self):
        return {"format": "generated"}


def test_memory_stays_bounded(tmp_path, monkeypatch):
    """8000 x 8000 pixels: 64 MB a mask if ever unpacked; the preview must stay far below."""
    height = width = 8000
    monkeypatch.setattr(pipeline_mod, "open_mask", lambda path, **kw: _Stripes(height, width))
    tracemalloc.start()
    try:
        got = preview("body", "dye", tmp_path / "p.png", max_side=512, memory=16 << 20)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    n = height * width // 2
    assert got.counts == Counts(body=n, dye_in_body=n, dye=n)
    assert peak < 24 << 20, f"peak {peak / 2**20:.1f} MiB"
    pixels = png(tmp_path / "p.png")
    assert max(pixels.shape[:2]) <= 512
