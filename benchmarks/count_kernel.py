"""The CPU counting kernel alone: one pair of planes counted, NumPy against each vector level.

Counts a body and a dye plane in memory (no decoding) with the engine's plane counter
(:func:`dragon_gpu.engines.cpu._count_planes`): with NumPy (the compiled kernel set aside), and
with the compiled kernel at every vector level this CPU runs (scalar, SSE2, AVX2), on one core.
Prints the best of ``--repeat`` calls in microseconds and the bytes of both planes read per
second, and checks that every variant gives the same counts::

    python benchmarks/count_kernel.py
    python benchmarks/count_kernel.py --repeat 50

The shapes: a 512 x 512 tile pair (8 and 16 bits: both planes fit in L2) and a 256 x 40000
strip pair (20 MB: from L3 and memory).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from _common import machine

SHAPES = (("512 x 512 u8 tiles", (512, 512), np.uint8),
          ("512 x 512 u16 tiles", (512, 512), np.uint16),
          ("256 x 40000 u8 strips", (256, 40000), np.uint8))
LEVELS = ("scalar", "sse2", "avx2")


def _planes(shape, dtype, seed=1):
    rng = np.random.default_rng(seed)
    top = np.iinfo(dtype).max
    return (rng.integers(0, top, shape, dtype=dtype, endpoint=True),
            rng.integers(0, top, shape, dtype=dtype, endpoint=True))


def _best(fn, repeat: int) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return best, out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=30, help="calls per variant (best kept)")
    args = parser.parse_args(argv)

    from dragon_gpu.engines import cpu, native
    from dragon_gpu.io.base import Encoding, PixelRule

    kernel = native._kernel
    levels = LEVELS[:LEVELS.index(kernel.vectors()) + 1] if kernel is not None else ()
    print(machine())
    print("| planes | variant | best us | GB/s of both planes | counts |")
    print("|---|---|---:|---:|---|")
    real = native.count_planes
    chosen = kernel.vectors() if kernel is not None else None
    try:
        for label, shape, dtype in SHAPES:
            body, dye = _planes(shape, dtype)
            t = 1 << (8 * body.itemsize - 1)
            benc = Encoding(False, shape[1], body.dtype, PixelRule(t, False, "value < t"))
            denc = Encoding(False, shape[1], dye.dtype, PixelRule(t, True, "value >= t"))
            seen = set()
            variants = [("numpy", None)] + [(f"compiled ({lv})", lv) for lv in levels]
            for name, level in variants:
                if level is None:
                    native.count_planes = lambda *a: None
                else:
                    native.count_planes = real
                    kernel._set_vectors(level)
                sec, c = _best(lambda: cpu._count_planes(body, benc, dye, denc), args.repeat)
                counts = (c.body, c.dye_in_body, c.dye)
                seen.add(counts)
                gbs = 2 * body.nbytes / sec / 1e9
                print(f"| {label} | {name} | {sec * 1e6:.1f} | {gbs:.1f} | {counts} |")
            if len(seen) != 1:
                raise SystemExit(f"{label}: the variants disagree: {sorted(seen)}")
    finally:
        native.count_planes = real
        if chosen is not None:
            kernel._set_vectors(chosen)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
