"""Is a GPU usable? Decided by running a kernel on it, not by importing CuPy.

CuPy may import where no driver is loaded, and a driver may be too old for CuPy's CUDA, or the
device may refuse to run code; only compiling and running a tiny kernel and checking its result
answers the question. Answers are cached per device for the process.
"""

from __future__ import annotations

import threading
import warnings

from ...errors import GpuError, one_line

#: the probe kernel's result: 64 threads each add their index + 1.
PROBE_THREADS = 64
PROBE_RESULT = PROBE_THREADS * (PROBE_THREADS + 1) // 2

_probed: dict[int, str | None] = {}
_lock = threading.Lock()


def probe_device(device: int) -> str | None:
    """``None`` when GPU ``device`` can run dragon-gpu's kernels, else why not (one line)."""
    with _lock:
        if device not in _probed:
            _probed[device] = _probe(device)
        return _probed[device]


def has_gpu(device: int = 0) -> bool:
    """Whether GPU ``device`` is usable: CuPy imports, the device exists, a test kernel compiles,
    runs and gives the right answer."""
    return probe_device(device) is None


def device_count() -> int:
    """How many CUDA devices CuPy sees (0 without CuPy or a driver)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import cupy

            return int(cupy.cuda.runtime.getDeviceCount())
    except Exception:
        return 0


def _probe(device: int) -> str | None:
    # CuPy warns on stderr about missing CUDA paths and the like; the fallback promises one line.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            import cupy
        except ModuleNotFoundError as exc:
            if exc.name == "cupy":
                return "CuPy is not installed (pip install 'dragon-gpu[gpu]')"
            return f"CuPy does not load: {one_line(exc)}"
        except Exception as exc:
            return f"CuPy does not load: {one_line(exc)}"
        try:
            count = int(cupy.cuda.runtime.getDeviceCount())
        except Exception as exc:
            return f"no usable CUDA driver: {one_line(exc)}"
        if not 0 <= device < count:
            return f"there is no GPU {device} ({count} found)"
        try:
            from ._kernels import get_function

            with cupy.cuda.Device(device):
                fn = get_function(device, "probe.cu", "probe")
                out = cupy.zeros(1, dtype=cupy.uint64)
                fn((1,), (PROBE_THREADS,), (out,))
                got = int(out.get()[0])
        except Exception as exc:
            return f"a test kernel failed: {one_line(exc)}"
    if got != PROBE_RESULT:
        return f"a test kernel gave {got} instead of {PROBE_RESULT}"
    return None



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
