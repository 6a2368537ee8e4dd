"""Is a GPU usable? Decided by running a kernel on it, not by importing CuPy.

CuPy may import where no driver is loaded, and a driver may be too old for CuPy's CUDA, or the
device may refuse to run code; only compiling and loading every counting kernel, then running a
tiny kernel and checking its result, answers the question. Answers are cached per device for the
process, except that a device whose context died later is refused from then on.
"""

from __future__ import annotations

import ctypes
import importlib.util
import os
import sys
import threading
import warnings
from pathlib import Path
from typing import NamedTuple

from ...errors import GpuError, one_line
from ._context import dead_reason, on_device

#: the probe kernel's result: 64 threads each add their index + 1.
PROBE_THREADS = 64
PROBE_RESULT = PROBE_THREADS * (PROBE_THREADS + 1) // 2

#: cudaErrorNoDevice, cudaErrorInsufficientDriver: CUDA's answers on a host without a GPU.
NO_DEVICE, INSUFFICIENT_DRIVER = 100, 35

_probed: dict[int, "Probe"] = {}
_lock = threading.Lock()


class Probe(NamedTuple):
    """What the probe found on one device."""

    #: ``None`` when the device is usable, else why not (one line).
    problem: str | None
    #: There is evidently no GPU to use (no CuPy, no driver, no device): ``--device auto`` then
    #: uses the CPU silently. Anything else (a GPU that is there but does not work) is reported.
    absent: bool = False


def probe(device: int) -> Probe:
    """The probe's findings on GPU ``device`` (cached for the process, except a death)."""
    dead = dead_reason(device)
    if dead is not None:
        return Probe(f"GPU {device} failed earlier in this process: {dead}")
    with _lock:
        if device not in _probed:
            _probed[device] = _probe(device)
        return _probed[device]


def probe_device(device: int) -> str | None:
    """``None`` when GPU ``device`` can run dragon-gpu's kernels, else why not (one line)."""
    return probe(device).problem


def has_gpu(device: int = 0) -> bool:
    """Whether GPU ``device`` is usable: CuPy imports, the device exists, every kernel compiles
    and loads, and a test kernel runs and gives the right answer."""
    return probe_device(device) is None


def device_count() -> int:
    """How many CUDA devices CuPy sees (0 without CuPy or a driver); creates no context."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import cupy

            return int(cupy.cuda.runtime.getDeviceCount())
    except Exception:
        return 0


def cache_problem() -> str | None:
    """Why CuPy's on-disk kernel cache cannot be used, or ``None``.

    CuPy 14 creates the cache folder when it is imported (``CUPY_CACHE_DIR``, by default
    ``~/.cupy/kernel_cache``); in a container run with ``--read-only`` or as a user without a home
    that fails, and so would every compile.
    """
    folder = Path(os.environ.get("CUPY_CACHE_DIR") or Path("~/.cupy/kernel_cache").expanduser())
    probe_dir = folder
    while not probe_dir.exists() and probe_dir != probe_dir.parent:
        probe_dir = probe_dir.parent  # the nearest folder that exists must let us create it
    if not os.access(probe_dir, os.W_OK | os.X_OK) or not probe_dir.is_dir():
        return (f"CuPy's kernel cache {folder} is not writable (set CUPY_CACHE_DIR to a "
                "writable folder)")
    return None


def _has_driver() -> bool:
    try:
        ctypes.CDLL("libcuda.so.1")
    except OSError:
        return False
    return True


def _probe(device: int) -> Probe:
    if "cupy" not in sys.modules and importlib.util.find_spec("cupy") is None:
        return Probe("CuPy is not installed (pip install 'dragon-gpu[gpu]')", absent=True)
    why = cache_problem()
    if why is not None:
        return Probe(why)
    # CuPy warns on stderr about missing CUDA paths and the like; the fallback promises one line.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            import cupy
        except Exception as exc:
            return Probe(f"CuPy does not load: {one_line(exc)}")
        try:
            count = int(cupy.cuda.runtime.getDeviceCount())
        except Exception as exc:
            status = getattr(exc, "status", None)
            if status == NO_DEVICE:
                return Probe("no CUDA device", absent=True)
            if status == INSUFFICIENT_DRIVER and not _has_driver():
                return Probe("no CUDA driver", absent=True)
            return Probe(f"no usable CUDA driver: {one_line(exc)}")
        if count == 0:
            return Probe("no CUDA device", absent=True)
        if not 0 <= device < count:
            return Probe(f"there is no GPU {device} ({count} found)")
        try:
            return on_device(device, _load_and_run, device)
        except Exception as exc:  # making the device current failed
            return Probe(f"GPU {device} cannot be used: {one_line(exc)}")


def _load_and_run(device: int) -> Probe:
    """On GPU ``device``'s thread: load every kernel the engine can launch (compiled once and
    cached), then run the probe kernel and check its sum."""
    import cupy

    from ._kernels import get_function
    from ._plan import all_kernels

    for spec in all_kernels():
        try:
            get_function(device, spec.file, spec.name)
        except Exception as exc:
            return Probe(f"kernel {spec.name} ({spec.file}) does not load: {one_line(exc)}")
    try:
        fn = get_function(device, "probe.cu", "probe")
        out = cupy.zeros(1, dtype=cupy.uint64)
        fn((1,), (PROBE_THREADS,), (out,))
        got = int(out.get()[0])
    except Exception as exc:
        return Probe(f"a test kernel failed: {one_line(exc)}")
    if got != PROBE_RESULT:
        return Probe(f"a test kernel gave {got} instead of {PROBE_RESULT}")
    return Probe(None)


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` is CuPy running out of device or pinned host memory."""
    if isinstance(exc, MemoryError) and _is_cupy_error(exc):
        return True  # cupy.cuda.memory.OutOfMemoryError; a host MemoryError is not the GPU's
    # cudaErrorMemoryAllocation (2) from cudaMallocHost / cudaMalloc, CUDA_ERROR_OUT_OF_MEMORY (2).
    return _is_cupy_error(exc) and getattr(exc, "status", None) == 2


def _is_cupy_error(exc: BaseException) -> bool:
    module = type(exc).__module__ or ""
    return module.split(".")[0] in ("cupy", "cupy_backends", "cupyx")


def as_gpu_error(device: int, exc: BaseException) -> BaseException:
    """The exception to raise for ``exc`` on ``device``: CUDA/CuPy errors become one clear
    :class:`GpuError` line; anything else (a bad input file, a bug) passes unchanged."""
    if _is_cupy_error(exc):
        return GpuError(f"GPU {device} failed: {one_line(exc)}")
    return exc
