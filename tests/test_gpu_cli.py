"""``--device`` on a machine where the GPU is not usable: the CPU fallback and its one line.

These run the real CLI in a subprocess. Cases that need "GPU 0 is not usable" skip themselves on
a machine where it is; GPU 99 is unusable everywhere.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys

import numpy as np
import pytest
import tifffile

from dragon_gpu.engines.gpu import has_gpu

FALLBACK = re.compile(r"^dragon-gpu: warning: GPU (\d+(?:,\d+)*) not usable \((.+)\); using the "
                      r"CPU$")
no_gpu_0 = pytest.mark.skipif(has_gpu(0), reason="GPU 0 is usable here")


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """A small uint8 pair and its counts by NumPy (body dark < 128, dye bright >= 128)."""
    tmp = tmp_path_factory.mktemp("pair")
    rng = np.random.default_rng(21)
    body = rng.integers(0, 256, size=(40, 33), dtype=np.uint8)
    dye = rng.integers(0, 256, size=(40, 33), dtype=np.uint8)
    tifffile.imwrite(tmp / "body.tif", body, photometric="minisblack")
    tifffile.imwrite(tmp / "dye.tif", dye, photometric="minisblack")
    b, d = body < 128, dye >= 128
    counts = {"body_pixels": int(b.sum()), "dye_in_body_pixels": int((b & d).sum()),
              "dye_pixels": int(d.sum())}
    return str(tmp / "body.tif"), str(tmp / "dye.tif"), counts


def detect(pair, *options):
    return subprocess.run([sys.executable, "-m", "dragon_gpu", "detect", pair[0], pair[1],
                           "--json", *options], capture_output=True, text=True)


def check_cpu_result(run, pair):
    assert run.returncode == 0, run.stderr
    got = json.loads(run.stdout)
    assert got["backend"] == "cpu"
    assert {k: got[k] for k in pair[2]} == pair[2]


@pytest.mark.parametrize("device", [pytest.param("0", marks=no_gpu_0), "99", "98,99"])
def test_named_gpu_falls_back_with_one_line(pair, device):
    run = detect(pair, "--device", device)
    check_cpu_result(run, pair)
    lines = run.stderr.splitlines()
    assert len(lines) == 1, run.stderr
    match = FALLBACK.match(lines[0])
    assert match and match.group(1) == device, lines[0]


@no_gpu_0
def test_auto_uses_the_cpu_silently(pair):
    run = detect(pair, "--device", "auto")
    check_cpu_result(run, pair)
    assert run.stderr == ""


@pytest.mark.parametrize("device", [pytest.param("auto", marks=no_gpu_0),
                                    pytest.param("0", marks=no_gpu_0), "99"])
def test_require_gpu_exits_2_with_one_line(pair, device):
    run = detect(pair, "--device", device, "--require-gpu")
    assert run.returncode == 2
    assert run.stdout == ""
    lines = run.stderr.splitlines()
    assert len(lines) == 1, run.stderr
    label = "0" if device == "auto" else device
    assert re.match(rf"^dragon-gpu: error: GPU {label} not usable \(.+\) and --require-gpu was "
                    r"given$", lines[0]), lines[0]
