"""Counting engines behind one interface (:class:`Engine`), chosen by ``--device``."""

from __future__ import annotations

import re
import sys
from functools import partial
from typing import Callable

from ..errors import GpuUnavailableError, UsageError
from .base import Engine

__all__ = ["Engine", "parse_device", "select_engine"]

def parse_device(text: str) -> str | list[int]:
    """``"auto"``, ``"cpu"``, or a list of GPU ordinals from ``"N"`` / ``"N,M"``."""
    value = str(text).strip().lower()
    if value in ("auto", "cpu"):
        return value
    if not re.fullmatch(r"\d+(,\d+)*", value):
        raise UsageError(f"expected auto, cpu, N or N,M (GPU numbers), got {text!r}",
                         param="device")
    ids = [int(v) for v in value.split(",")]
    if len(set(ids)) != len(ids):
        raise UsageError(f"a GPU is named twice in {text!r}", param="device")
    return ids


def _gpu_engine(ids: list[int]) -> Engine:
    """The CUDA engine on GPUs ``ids``, or :class:`GpuUnavailableError` if none is usable."""
    try:
        from .gpu import CudaEngine  # imports no CuPy until the engine is built
    except ImportError as exc:
        raise GpuUnavailableError(f"the GPU engine is not available ({exc})",
                                  absent=True) from None
    return CudaEngine(ids)


def select_engine(device: str = "auto", require_gpu: bool = False,
                  warn: Callable[[str], None] | None = None) -> Engine:
    """The engine for ``--device``.

    ``auto`` uses GPU 0 when a usable GPU is present, else the CPU: silently where there is
    evidently no GPU (no CuPy, no driver, no device), with one ``warning:`` line on stderr where a
    GPU is there but does not work (a kernel that does not compile, an unwritable kernel cache...).
    Named GPUs that are not usable fall back to the CPU with that line, unless ``require_gpu``,
    which raises :class:`GpuUnavailableError` instead.
    """
    from .cpu import CpuEngine

    spec = parse_device(device)
    if spec == "cpu":
        if require_gpu:
            raise UsageError("{option:require_gpu} contradicts {option:device} cpu")
        return CpuEngine()
    ids = [0] if spec == "auto" else spec
    try:
        return _gpu_engine(ids)
    except GpuUnavailableError as exc:
        label = ",".join(map(str, ids))
        if require_gpu:
            raise GpuUnavailableError(f"GPU {label} not usable ({exc.problem}) and --require-gpu "
                                      "was given") from None
        if spec != "auto" or not getattr(exc, "absent", False):
            warn = warn or partial(print, file=sys.stderr)
            warn(f"dragon-gpu: warning: GPU {label} not usable ({exc.problem}); using the CPU")
        return CpuEngine()
