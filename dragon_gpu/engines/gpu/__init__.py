"""The CUDA engine: CuPy raw kernels fed by pinned, overlapped row streaming.

Importing this package never imports CuPy: :func:`has_gpu` and :class:`CudaEngine` import it when
asked, so the CPU path works where CuPy is absent. :func:`dragon_gpu.engines.select_engine`
builds :class:`CudaEngine` for ``--device N[,M]`` and ``auto``.

The kernels (``kernels/*.cu``) match :func:`dragon_gpu.engines.cpu.count_block` bit for bit.
"""

from __future__ import annotations

from ._device import device_count, has_gpu, probe_device
from ._engine import MAX_BLOCK_NBYTES, CudaEngine, KernelLauncher
from ._plan import KernelSpec, kernel_for

__all__ = ["CudaEngine", "KernelLauncher", "KernelSpec", "MAX_BLOCK_NBYTES", "device_count",
           "has_gpu", "kernel_for", "probe_device"]
