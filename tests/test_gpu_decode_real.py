"""The GPU decode path on a real GPU with the real nvCOMP (skipped without both): every layout
of ``tests.helpers.gpu_decode_cases`` counts exactly as the CPU engine, and damage is caught on
the device."""

from __future__ import annotations

import numpy as np
import pytest

from dragon_gpu.engines.gpu import has_gpu
from dragon_gpu.errors import CorruptInputError
from dragon_gpu.pipeline import detect
from tests.helpers.gpu_decode_cases import CASES


def _nvcomp() -> bool:
    try:
        from nvidia import nvcomp  # noqa: F401
    except Exception:
        return False
    return True


pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not has_gpu(0) or not _nvcomp(),
                                 reason="needs a usable GPU 0 and nvCOMP")]


@pytest.mark.parametrize("name", sorted(CASES))
def test_every_layout_on_the_gpu(tmp_path, name):
    suffix = ".h5" if name.startswith("h5") else ".tif"
    body, dye = tmp_path / f"b{suffix}", tmp_path / f"d{suffix}"
    CASES[name](body, np.random.default_rng(1))
    CASES[name](dye, np.random.default_rng(2))
    want = detect(body, dye, device="cpu", cutoff="0.5").counts
    for block_rows in (5, None):
        got = detect(body, dye, device="0", decode="gpu", block_rows=block_rows, cutoff="0.5")
        assert got.counts == want
        assert got.decode == {"body": "nvcomp", "dye": "nvcomp"}


def test_damaged_trailer_on_the_gpu(tmp_path):
    import tifffile

    body, dye = tmp_path / "b.tif", tmp_path / "d.tif"
    CASES["tiff-u8-deflate-strips"](body, np.random.default_rng(1))
    CASES["tiff-u8-deflate-strips"](dye, np.random.default_rng(2))
    with tifffile.TiffFile(body) as tif:
        end = tif.pages[0].dataoffsets[2] + tif.pages[0].databytecounts[2]
    raw = bytearray(body.read_bytes())
    raw[end - 1] ^= 0xFF
    body.write_bytes(bytes(raw))
    with pytest.raises(CorruptInputError, match="segment 2 cannot be decoded"):
        detect(body, dye, device="0", decode="gpu")
