"""What every benchmark prints about the machine it ran on."""

from __future__ import annotations

import os
import platform


def machine() -> str:
    """CPU model, usable cores, memory and OS, e.g. ``AMD EPYC, 2 cores, 23 GiB RAM, Linux 6.1``,
    and what counts planes on the CPU (the compiled kernel or NumPy)."""
    model = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    try:
        from dragon_gpu.engines.native import kernel

        counting = f"; CPU counting: {kernel()}"
    except ImportError:
        counting = ""
    return (f"{model}, {cores} cores, {mem:.0f} GiB RAM, {platform.system()} "
            f"{platform.release()}{counting}")
