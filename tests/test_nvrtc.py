"""Every kernel compiles with CuPy's NVRTC where CuPy is installed (no GPU needed).

Runs ``tools/check_nvrtc.py`` in a clean environment: no ``LD_LIBRARY_PATH`` or ``CUDA_PATH``,
and a ``PATH`` without ``nvcc``, so the NVRTC that compiles is the one the ``gpu`` extra
installed. Skips where CuPy is not importable (the ``gpu`` extra is not part of ``make test``).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = [pytest.mark.nvrtc,
              pytest.mark.skipif(importlib.util.find_spec("cupy") is None,
                                 reason="CuPy is not installed (pip install '.[gpu]')")]


def clean_env() -> dict:
    env = {k: v for k, v in os.environ.items()
           if k not in ("LD_LIBRARY_PATH", "CUDA_PATH", "CUDA_HOME", "NVCC")}
    nvcc = shutil.which("nvcc")
    if nvcc:
        drop = os.path.dirname(nvcc)
        env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep)
                                      if p != drop)
    return env


@pytest.mark.parametrize("arch", ["80", "90"])
def test_every_kernel_compiles_with_the_installed_nvrtc(arch):
    run = subprocess.run([sys.executable, str(ROOT / "tools" / "check_nvrtc.py"), "--arch", arch],
                         capture_output=True, text=True, env=clean_env(), timeout=600)
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.count("\nok   ") == 4, run.stdout
