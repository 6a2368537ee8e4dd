"""dragon-gpu: exact, streaming dye-in-body counts for gigapixel image pairs, on GPU or CPU.

The public API imports nothing heavy: CuPy, Dask and h5py load only when used.
"""

from __future__ import annotations

from ._version import __version__

__all__ = ["__version__", "Counts", "Verdict", "decide", "detect", "DetectOptions", "DetectResult",
           "batch"]


def __getattr__(name):
    if name in ("Counts", "Verdict", "RowRange"):
        from . import model

        return getattr(model, name)
    if name == "decide":
        from .verdict import decide

        return decide
    if name in ("detect", "DetectOptions", "DetectResult"):
        from . import pipeline

        return getattr(pipeline, name)
    if name == "batch":
        from .batching import batch

        return batch
    raise AttributeError(f"module 'dragon_gpu' has no attribute {name!r}")
