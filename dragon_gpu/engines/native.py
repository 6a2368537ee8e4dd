"""The CPU engine's compiled counting kernel, where it was built.

``_cpu_count.c`` counts a pair of 8- or 16-bit planes in one pass (AVX2 or SSE2 vectors, chosen
at import), with the GIL released; NumPy needs five passes and two boolean temporaries for the
same counts. It also popcounts pairs of packed 1-bit rows, padding bits left out. It is a C extension that ``pip install`` compiles when a C compiler and the Python
headers are present. Without it (no compiler, an unusual platform) every count is NumPy's,
exactly equal and slower: :func:`count_planes` answers None and the caller counts with NumPy.

``DRAGON_GPU_CPU_COUNT=numpy`` in the environment turns the kernel off (to compare the two).
"""

from __future__ import annotations

import os

import numpy as np

from ..model import Counts

#: the environment variable that turns the compiled kernel off (value ``numpy``).
ENV = "DRAGON_GPU_CPU_COUNT"

try:
    from . import _cpu_count as _kernel
except ImportError:  # not built here: NumPy counts everything
    _kernel = None

if os.environ.get(ENV, "").strip().lower() == "numpy":
    _kernel = None

_BITS = {np.dtype(np.uint8): 8, np.dtype(np.uint16): 16}


def available() -> bool:
    """Whether the compiled kernel counts here."""
    return _kernel is not None


def kernel() -> str:
    """What counts planes on the CPU: ``"compiled (avx2)"``, ``"compiled (sse2)"``, ... or
    ``"numpy"``."""
    return f"compiled ({_kernel.vectors()})" if _kernel is not None else "numpy"


def _rows(a: np.ndarray) -> bool:
    """Whether the kernel can walk ``a``: 1-D or 2-D, each row contiguous."""
    return a.ndim in (1, 2) and a.strides[-1] == a.itemsize


def count_planes(body: np.ndarray, body_enc, dye: np.ndarray, dye_enc) -> Counts | None:
    """Counts of two planes of the same shape under their encodings' rules, or None when the
    kernel cannot take them (not built, rows not contiguous, a dtype other than native uint8
    or uint16): the caller then counts with NumPy."""
    if _kernel is None or body.shape != dye.shape:
        return None
    if body.size == 0:
        return Counts()
    if not (_rows(body) and _rows(dye)):
        return None
    bb, db = _BITS.get(body.dtype), _BITS.get(dye.dtype)
    if bb is None or db is None:
        return None
    br, dr = body_enc.rule, dye_enc.rule
    nb, both, nd = _kernel.count_pair(body, bb, br.threshold, br.high,
                                      dye, db, dr.threshold, dr.high)
    return Counts(body=nb, dye_in_body=both, dye=nd)


def count_bits(body: np.ndarray, dye: np.ndarray, width: int) -> tuple[int, int, int] | None:
    """Set bits of two blocks of packed rows (uint8, ``ceil(width / 8)`` bytes a row) over their
    first ``width`` pixels, of each and of their AND; None when the kernel cannot take them."""
    if _kernel is None or body.shape != dye.shape or not (body.dtype == dye.dtype == np.uint8):
        return None
    if body.size == 0:
        return 0, 0, 0
    if not (_rows(body) and _rows(dye)):
        return None
    return _kernel.count_bits(body, dye, width)
