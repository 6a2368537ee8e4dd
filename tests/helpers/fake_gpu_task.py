"""A batch task that counts on the stand-in for CuPy inside each worker process.

``fake_gpu.json`` beside the pair's body file says where the kernels are built and how many
devices there are; a body named ``boom*`` makes the kernel fail with a sticky CUDA error. Each
call appends ``pid body backend`` to ``runs.log`` there, so a test can see which worker (and
GPU) counted which pair.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

_gpu = None


def task(body, dye, options):
    global _gpu
    import pytest

    from tests.helpers.fake_cupy import FakeGpu
    from dragon_gpu.pipeline import detect

    folder = Path(body).parent
    cfg = json.loads((folder / "fake_gpu.json").read_text())
    if _gpu is None:
        _gpu = FakeGpu(Path(cfg["workdir"]), devices=cfg["devices"])
        _gpu.install(pytest.MonkeyPatch())
    _gpu.fail_launch = "count_plane_plane_u8_u8" if Path(body).name.startswith("boom") else None
    try:
        result = detect(body, dye, options)
        backend = result.backend
        return result
    except Exception as exc:
        backend = f"error:{type(exc).__name__}"
        raise
    finally:
        with open(folder / "runs.log", "a") as log:
            log.write(f"{os.getpid()} {Path(body).stem} {backend}\n")
