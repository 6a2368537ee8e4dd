"""One line naming the GPU, the host CPU and its cores, and the CuPy and CUDA versions, for the
GPU benchmarks' tables (``gpu.py`` and ``gpu_decode.py`` both print it)."""

from __future__ import annotations

import os
import platform


def machine(device: int) -> str:
    import cupy

    props = cupy.cuda.runtime.getDeviceProperties(device)
    name = props["name"].decode() if isinstance(props["name"], bytes) else props["name"]
    cpu = platform.processor() or "?"
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = next(line.split(":", 1)[1].strip() for line in fh
                       if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    runtime = cupy.cuda.runtime.runtimeGetVersion()
    return (f"GPU {device}: {name}, {props['totalGlobalMem'] / 2**30:.0f} GiB; CPU: {cpu}, "
            f"{os.cpu_count()} cores; CuPy {cupy.__version__}, CUDA runtime {runtime // 1000}."
            f"{runtime % 1000 // 10}; Python {platform.python_version()}")
