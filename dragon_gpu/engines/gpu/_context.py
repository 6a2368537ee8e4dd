"""One thread per GPU, and GPUs whose CUDA context has died.

Every CUDA call for GPU ``d`` runs on one long-lived thread that made ``d`` current once, when
it started, and never changes it. ``with cupy.cuda.Device(d)`` would restore the previous device
on exit, and since CUDA 12 selecting a device creates its primary context: counting on GPU 1 from
the main thread would also create a context on GPU 0 (hundreds of MB, and an error where GPU 0 is
exclusive and busy). Compiled modules are loaded per device on that device's thread too.

After a CUDA error other than running out of memory (an illegal address, a launch failure), the
context is dead for the rest of the process: every later call fails, and CuPy's ``Event`` /
``Stream`` / memory destructors raise in ``__del__``, which Python prints as "Exception ignored
in ..." tracebacks. :func:`mark_dead` records the device as unusable (the probe then says why)
and silences those destructor errors.
"""

from __future__ import annotations

import sys
import threading
from concurrent.futures import Future, ThreadPoolExecutor

_executors: dict[int, ThreadPoolExecutor] = {}
_dead: dict[int, str] = {}
_lock = threading.Lock()
_previous_hook = None
_local = threading.local()


def _run(device: int, fn, args):
    # The first task on the thread makes its device current (a failure is that task's error,
    # and the next task tries again); later tasks find it current.
    if getattr(_local, "device", None) != device:
        import cupy

        cupy.cuda.runtime.setDevice(device)
        _local.device = device
    return fn(*args)


def submit(device: int, fn, *args) -> Future:
    """Run ``fn(*args)`` on GPU ``device``'s thread (GPU ``device`` current); a future."""
    with _lock:
        pool = _executors.get(device)
        if pool is None:
            pool = _executors[device] = ThreadPoolExecutor(
                1, thread_name_prefix=f"dragon-cuda{device}")
    return pool.submit(_run, device, fn, args)


def on_device(device: int, fn, *args):
    """``fn(*args)`` run on GPU ``device``'s thread (directly when already there); its result,
    or its exception re-raised."""
    if getattr(_local, "device", None) == device:
        return fn(*args)
    return submit(device, fn, *args).result()


def dead_reason(device: int) -> str | None:
    """Why GPU ``device``'s context died in this process, or ``None``."""
    return _dead.get(device)


def dead_devices() -> dict[int, str]:
    """The GPUs whose context died in this process, with the error that killed each."""
    return dict(_dead)


def mark_dead(device: int, reason: str) -> None:
    """Record that GPU ``device``'s context died of ``reason``; later probes refuse it."""
    global _previous_hook
    with _lock:
        _dead.setdefault(device, reason)
        if _previous_hook is None:
            _previous_hook = sys.unraisablehook
            sys.unraisablehook = _quiet_dead_context


def _quiet_dead_context(unraisable) -> None:
    # Only CUDA errors from CuPy's destructors are dropped: the error that killed the context
    # has been reported once already; anything else is printed as Python would.
    exc = unraisable.exc_value
    module = (type(exc).__module__ or "").split(".")[0]
    if _dead and module in ("cupy", "cupy_backends", "cupyx"):
        return
    (_previous_hook or sys.__unraisablehook__)(unraisable)


def forget() -> None:
    """Forget dead devices and device threads (for tests that replace CuPy)."""
    global _previous_hook
    with _lock:
        _dead.clear()
        pools = list(_executors.values())
        _executors.clear()
        if _previous_hook is not None:
            sys.unraisablehook = _previous_hook
            _previous_hook = None
    for pool in pools:
        pool.shutdown(wait=True)
