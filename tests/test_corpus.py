"""Every file of the crash corpus (tests/data/corpus) is refused cleanly, or counted correctly."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dragon_gpu.cli import app

from tests.helpers import fuzz

CORPUS = sorted(p for p in (Path(__file__).parent / "data" / "corpus").iterdir()
                if p.suffix in (".tif", ".tiff", ".h5", ".hdf5"))


def test_corpus_is_small_and_present():
    assert len(CORPUS) >= 10
    for path in CORPUS:
        assert path.stat().st_size <= 8 << 10, path


@pytest.mark.parametrize("path", CORPUS, ids=[p.name for p in CORPUS])
def test_corpus_file(path):
    t0 = time.perf_counter()
    result = CliRunner().invoke(app, ["detect", str(path), str(path), "--json", "--device", "cpu",
                                      "--memory", "64MiB"])
    assert time.perf_counter() - t0 < 10
    if result.exit_code == 2:
        lines = result.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"dragon-gpu: error: {path}: "), lines
        assert result.stdout == ""
        return
    assert result.exit_code == 0, (result.exit_code, result.output)
    masks = fuzz.independent_masks(str(path))
    assert masks is not None, "counted a file that tifffile/h5py cannot read"
    body, dye = masks
    got = json.loads(result.stdout)
    assert (got["body_pixels"], got["dye_in_body_pixels"], got["dye_pixels"]) == (
        int(body.sum()), int((body & dye).sum()), int(dye.sum()))


@pytest.mark.parametrize("path", CORPUS, ids=[p.name for p in CORPUS])
def test_corpus_file_info(path):
    # info reads the same structure (and samples rows): refused cleanly or described.
    t0 = time.perf_counter()
    result = CliRunner().invoke(app, ["info", str(path), "--json"])
    assert time.perf_counter() - t0 < 10
    assert result.exit_code in (0, 2), (result.exit_code, result.output)
    if result.exit_code == 2:
        lines = result.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"dragon-gpu: error: {path}: "), lines
