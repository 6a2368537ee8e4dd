"""Build a ``.cu`` source as C++ for the CPU (against ``cuda_host_shim.h``) and launch its kernels.

Counting kernels run one thread a block (their block reduction needs real warps); the probe
kernel, which never synchronises, runs all its threads one after the other.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np

SHIM = Path(__file__).with_name("cuda_host_shim.h")
_built: dict[str, ctypes.CDLL] = {}


def compiler() -> str | None:
    return shutil.which("g++") or shutil.which("c++")


def build(source: str, workdir: Path) -> ctypes.CDLL:
    """The shared library of ``source`` (cached by its text for the session)."""
    key = hashlib.sha256(source.encode()).hexdigest()[:20]
    if key not in _built:
        cxx = compiler()
        if cxx is None:
            raise RuntimeError("no C++ compiler")
        src, lib = workdir / f"{key}.{os.getpid()}.cu", workdir / f"{key}.so"
        tmp = workdir / f"{key}.{os.getpid()}.so"
        if lib.exists():  # built by an earlier process (a batch worker) from the same text
            _built[key] = ctypes.CDLL(str(lib))
            return _built[key]
        src.write_text(source)
        run = subprocess.run([cxx, "-O1", "-shared", "-fPIC", "-Wall", "-Wno-unknown-pragmas",
                              "-x", "c++", "-include", str(SHIM), str(src), "-o", str(tmp)],
                             capture_output=True, text=True)
        if run.returncode:
            raise RuntimeError(run.stderr)
        os.replace(tmp, lib)  # whole, even with several processes building at once
        _built[key] = ctypes.CDLL(str(lib))
    return _built[key]


def launch(lib: ctypes.CDLL, name: str, grid: int, threads: int, args) -> None:
    """Run kernel ``name`` over ``grid`` blocks; ``args`` are pointers (int) and np.uint32."""
    fn = getattr(lib, name)
    fn.restype = None
    cargs = [ctypes.c_uint32(int(a)) if isinstance(a, np.uint32) else ctypes.c_void_p(int(a))
             for a in args]
    for block in range(grid):
        lib.dragon_emulate_block(block, grid)
        if name == "probe":
            for t in range(threads):
                lib.dragon_emulate_thread(t, threads)
                fn(*cargs)
        else:
            fn(*cargs)
