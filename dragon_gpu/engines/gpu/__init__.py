"""The CUDA engine: CuPy raw kernels fed by pinned, overlapped row streaming.

Importing this package never imports CuPy: :func:`has_gpu` and :class:`CudaEngine` import it when
asked, so the CPU path works where CuPy is absent. Importing it registers the engine factory
with :func:`dragon_gpu.engines.register_engine`, which ``--device N[,M]`` and ``auto`` use.

The kernels (``kernels/*.cu``) match :func:`dragon_gpu.engines.cpu.count_block` bit for bit.
"""

from __future__ import annotations

from .. import register_engine
from ._device import device_count, has_gpu, probe_device
from ._engine import MAX_BLOCK_NBYTES, CudaEngine, KernelLauncher
from ._plan import KernelSpec, kernel_for

__all__ = ["CudaEngine", "KernelLauncher", "KernelSpec", "MAX_BLOCK_NBYTES", "device_count",
           "has_gpu", "kernel_for", "probe_device"]


def _factory(devices: list[int]) -> CudaEngine:
    return CudaEngine(devices)


register_engine(_factory)
