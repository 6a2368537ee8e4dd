"""Inflating compressed strips, tiles and chunks on the GPU (``detect --decode``).

Which codecs go where:

* GPU (nvCOMP): TIFF deflate (8, 32946) and HDF5 gzip (zlib streams: the header is parsed on
  the host, the raw deflate body inflated on the GPU, the Adler-32 trailer checked on the GPU),
  TIFF and HDF5 zstd (frames as they are), HDF5 LZ4 (the filter's block table parsed on the
  host, the LZ4 blocks inflated on the GPU; ``--gpu-decoder dali`` uses DALI for these).
* CPU (today's readers, then a pinned copy): LZW, PackBits, LZMA, LZF, Blosc, uncompressed data
  and anything read through HDF5 itself.

Importing this package imports neither CuPy nor nvCOMP; the CPU engine never imports it.
"""

from __future__ import annotations

from ....choices import DECODE_MODES, GPU_DECODERS
from ....errors import UsageError
from ....io.codecs import by_name
from ._kernels import DECODE_KERNEL_FILES, DECODE_KERNELS
from ._plan import InputPlan, plan_input


__all__ = ["DECODE_KERNEL_FILES", "DECODE_KERNELS", "InputPlan", "plan_input", "prepare"]


def prepare(engine, readers, paths, decode: str = "auto", gpu_decoder: str = "nvcomp",
            memory: int = 1 << 30):
    """The engine that counts ``readers`` under ``--decode``, and what each input's decode is.

    Returns ``(engine, {"body": ..., "dye": ...})`` where each value is ``"cpu"``, ``"nvcomp"``
    or ``"dali"``.

    Raises
    ------
    UsageError
        ``--decode gpu`` where the engine is not CUDA or an input's codec stays on the CPU, or
        ``--gpu-decoder dali`` for a codec other than LZ4.
    """
    if decode not in DECODE_MODES:
        raise UsageError(f"--decode: expected auto, cpu or gpu, got {decode!r}")
    if gpu_decoder not in GPU_DECODERS:
        raise UsageError(f"--gpu-decoder: expected nvcomp or dali, got {gpu_decoder!r}")
    cpu = {"body": "cpu", "dye": "cpu"}
    if decode == "cpu":
        return engine, cpu
    from .._engine import CudaEngine

    if not isinstance(engine, CudaEngine):
        if decode == "gpu":
            raise UsageError(f"--decode gpu needs a usable GPU (the engine is {engine.name}); "
                             "use --decode auto or cpu")
        return engine, cpu
    plans, names = [], []
    for reader, path in zip(readers, paths):
        plan, why = plan_input(reader)
        if plan is None and decode == "gpu":
            raise UsageError(f"--decode gpu: {why}", str(path))
        name = "cpu"
        if plan is not None:
            dali = by_name(plan.codec).dali is not None  # DALI inflates LZ4 only
            name = gpu_decoder if dali else "nvcomp"
            if gpu_decoder == "dali" and not dali and decode == "gpu":
                raise UsageError(f"--gpu-decoder dali inflates LZ4 only; this file is "
                                 f"{plan.codec} (use --gpu-decoder nvcomp)", str(path))
            missing = _missing(name)
            if missing:
                if decode == "gpu":
                    raise UsageError(f"--decode gpu: {missing}", str(path))
                plan, name = None, "cpu"
        plans.append(plan)
        names.append(name)
    if all(p is None for p in plans):
        return engine, cpu
    from ._stream import DecodingCudaEngine  # imports CuPy's engine only: nvCOMP loads later

    return (DecodingCudaEngine(engine, plans, names, memory),
            {"body": names[0], "dye": names[1]})


def _missing(decoder: str) -> str:
    """Why ``decoder`` cannot run here (its package does not import), or ``""``."""
    from ....errors import GpuUnavailableError

    try:
        if decoder == "dali":
            from ._dali import load_dali

            load_dali()
        else:
            from ._nvcomp import load_nvcomp

            load_nvcomp()
    except GpuUnavailableError as exc:
        return exc.problem
    return ""
