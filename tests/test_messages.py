"""Refusals point the right way: the flags a message suggests exist on that command and are not
already given, and every message stays one line whatever the input holds."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import tifffile
from typer.testing import CliRunner

from dragon_gpu.cli import app
from tests.helpers import craft


def refused(*args) -> str:
    """The one stderr line of a command that exits 2."""
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert result.exit_code == 2, (result.exit_code, result.output)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr
    return lines[0]


@pytest.fixture()
def good(tmp_path):
    path = tmp_path / "good.tif"
    tifffile.imwrite(path, np.zeros((16, 16), np.uint8), photometric="minisblack")
    return path


@pytest.fixture()
def two_datasets(tmp_path):
    path = tmp_path / "two.h5"
    with h5py.File(path, "w") as f:
        f["a"] = np.zeros((16, 16), np.uint8)
        f["b"] = np.zeros((16, 16), np.uint8)
    return path


@pytest.fixture()
def linked(tmp_path):
    with h5py.File(tmp_path / "target.h5", "w") as f:
        f["mask"] = np.zeros((16, 16), bool)
    path = tmp_path / "link.h5"
    with h5py.File(path, "w") as f:
        f["mask"] = h5py.ExternalLink("target.h5", "/mask")
    return path


def test_info_suggests_its_own_dataset_flag(two_datasets):
    line = refused("info", two_datasets)
    assert "--dataset" in line and "--body-dataset" not in line


def test_detect_suggests_the_role_flags(two_datasets, good):
    line = refused("detect", two_datasets, good)
    assert "--body-dataset / --dye-dataset" in line


def test_info_on_an_external_link_suggests_dataset_and_allow_external(linked):
    line = refused("info", linked)
    assert "--dataset" in line and "--body-dataset" not in line and "--allow-external" in line


def test_no_allow_external_hint_when_it_was_given(linked, good):
    line = refused("detect", linked, good, "--allow-external")
    assert "--body-dataset / --dye-dataset" in line
    assert "--allow-external" not in line
    assert "--allow-external" in refused("detect", linked, good)


@pytest.mark.parametrize("bits, tile", [(8, None), (16, None), (8, (16, 16))])
def test_a_huge_tiff_header_is_one_clean_line(tmp_path, good, bits, tile):
    path = tmp_path / "huge.tif"
    path.write_bytes(craft.tiff(4_000_000_000, 4_000_000_000, [b"\0" * 16], bits=bits, tile=tile))
    for command in (("detect", path, good), ("info", path)):
        line = refused(*command)
        assert str(path) in line and "too large" in line and "Overflow" not in line


def test_a_nul_byte_in_a_manifest_path(tmp_path, good):
    manifest = tmp_path / "m.csv"
    manifest.write_bytes(b"body,dye\n" + f"{good},{good}".encode() + b"\x00x\n")
    line = refused("batch", manifest, "--out", tmp_path / "R.csv", "-q")
    assert "line 2" in line and "NUL" in line
    assert not (tmp_path / "R.csv").exists()


def test_an_unterminated_quote_in_a_manifest(tmp_path, good):
    manifest = tmp_path / "m.csv"
    manifest.write_text(f"body,dye\n{good},{good}\n\"{good},{good}\n{good},{good}\n")
    line = refused("batch", manifest, "--out", tmp_path / "R.csv", "-q")
    assert "line 3" in line and "quote" in line and "never closed" in line
    assert "empty" not in line


def test_a_newline_in_a_path_is_escaped(tmp_path, good):
    line = refused("detect", tmp_path / "two\nlines.tif", good)
    assert "two\\nlines.tif" in line


def test_scheduler_help_names_the_dask_extra():
    result = CliRunner().invoke(app, ["detect", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    assert "dragon-gpu[dask]" in result.output
