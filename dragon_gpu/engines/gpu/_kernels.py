"""Kernel sources, and their modules compiled lazily and cached per device.

The CUDA C sources live in ``kernels/*.cu`` beside this file and share ``kernels/common.cuh``.
:func:`kernel_source` inlines that header into the text handed to NVRTC: CuPy's on-disk cache of
compiled kernels is keyed by the source text, so a change to the header must change the text.
"""

from __future__ import annotations

import re
import threading
from pathlib import Path

from ._context import on_device

KERNEL_DIR = Path(__file__).resolve().with_name("kernels")
#: every ``.cu`` file the engine compiles.
KERNEL_FILES = ("probe.cu", "packed_packed.cu", "plane_plane.cu", "mixed.cu", "histogram.cu")
#: NVRTC options. None: NVRTC targets the device the module is compiled for, and the sources
#: need no particular C++ standard.
COMPILE_OPTIONS: tuple[str, ...] = ()

_INCLUDE = re.compile(r'^\s*#include\s+"([^"]+)"\s*$', re.MULTILINE)

_modules: dict[tuple[int, str], object] = {}
_functions: dict[tuple[int, str, str], object] = {}
_lock = threading.Lock()


def kernel_source(file: str) -> str:
    """The text of ``kernels/<file>`` with its local ``#include "..."`` lines inlined."""
    seen: set[str] = set()

    def expand(name: str) -> str:
        if name in seen:  # include guards make a second copy empty anyway
            return ""
        seen.add(name)
        text = (KERNEL_DIR / name).read_text(encoding="utf-8")
        return _INCLUDE.sub(lambda m: expand(m.group(1)), text)

    return expand(file)


def get_function(device: int, file: str, name: str):
    """Kernel ``name`` of ``kernels/<file>`` loaded on GPU ``device`` (compiled on first use).

    A module is compiled and loaded once per (device, file) and kept for the process: a
    ``cupy.RawModule`` is loaded on the device that is current when it is first used, so each
    device gets its own, loaded on that device's thread (see :mod:`._context`).
    """
    key = (device, file, name)
    with _lock:
        fn = _functions.get(key)
    if fn is not None:
        return fn
    return on_device(device, _load, device, file, name)


def _load(device: int, file: str, name: str):
    import cupy

    key = (device, file, name)
    with _lock:
        fn = _functions.get(key)
        if fn is not None:
            return fn
        module = _modules.get((device, file))
        if module is None:
            module = cupy.RawModule(code=kernel_source(file), options=COMPILE_OPTIONS)
            _modules[(device, file)] = module
        fn = _functions[key] = module.get_function(name)
        return fn
