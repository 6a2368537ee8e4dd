"""Aiming the dye-in-body share: a vessel gain searched on a sample of rows.

``healthy`` aims at 3-7% of the body lit, ``cancer`` at 14-22%; the share grows with the gain of
the vessel radii, so a monotone bisection on :data:`SAMPLE_ROWS` evenly spread rows finds it.
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Callable

import numpy as np

from .._bits import popcount
from ..errors import UsageError
from .raster import render_xor
from .scene import Scene

__all__ = ["CANCER_MIN", "HEALTHY_MAX", "SAMPLE_ROWS", "TARGETS", "Sampler", "aim", "aim_kind",
           "draw_kind", "sample_rows"]

#: Rows sampled to estimate the dye fraction while the vessel gain is searched.
SAMPLE_ROWS = 4096
#: Dye-in-body targets (share of the body) per kind: (low, high) of the drawn target.
TARGETS = {"healthy": (0.03, 0.07), "cancer": (0.14, 0.22)}
#: Hard limits a drawn pair must respect, or it is not produced.
HEALTHY_MAX = Fraction(8, 100)
CANCER_MIN = Fraction(12, 100)


def sample_rows(height: int, n: int = SAMPLE_ROWS) -> np.ndarray:
    """Evenly spread rows (all rows when the image has at most ``n``)."""
    n = min(n, height)
    return np.unique((np.arange(n, dtype=np.int64) * height) // n)


class Sampler:
    """Dye-in-body share of the body on sampled rows, as a function of the vessel gain."""

    def __init__(self, scene: Scene):
        self.scene = scene
        self.rows = sample_rows(scene.height)
        self.body = render_xor(self.rows.size, scene.width, *scene.body_intervals(self.rows))
        self.body_count = popcount(self.body)

    def share(self, gain: float) -> float:
        scene = self.scene.with_gain(gain)
        dye = render_xor(self.rows.size, scene.width, *scene.dye_intervals(self.rows))
        return popcount(self.body & dye) / max(self.body_count, 1)


def aim(sampler: Sampler, target: float, tol: float, ok: Callable[[float], bool]) -> float:
    """A gain whose sampled share is within ``tol`` of ``target`` (the share grows with the gain).

    Falls back to the closest gain that satisfies ``ok``; raises if none does (tiny images).
    """
    best = None

    def consider(g, s):
        nonlocal best
        if ok(s) and (best is None or abs(s - target) < abs(best[1] - target)):
            best = (g, s)

    lo, hi = None, None
    g = 1.0
    for _ in range(24):  # bracket the target
        s = sampler.share(g)
        consider(g, s)
        if abs(s - target) <= tol:
            return g
        if s < target:
            lo = (g, s)
            if hi is not None:
                break
            g *= 2.0
        else:
            hi = (g, s)
            if lo is not None:
                break
            g /= 2.0
        if g > 1e4 or g < 1e-4:
            break
    if lo is not None and hi is not None:
        a, b = lo[0], hi[0]
        for _ in range(40):
            g = math.sqrt(a * b)
            s = sampler.share(g)
            consider(g, s)
            if abs(s - target) <= tol:
                return g
            if s < target:
                a = g
            else:
                b = g
            if b / a < 1 + 1e-9:
                break
    if best is None:
        raise UsageError(f"cannot draw this pair at {sampler.scene.height} x "
                         f"{sampler.scene.width}: the image is too small to reach a dye share "
                         f"near {target:.3f}; use a larger size")
    return best[0]


def draw_kind(rng: np.random.Generator, kind: str, cancer_rate: float) -> str:
    """The kind actually drawn: ``typical`` is cancer with probability ``cancer_rate``."""
    if kind == "typical":
        return "cancer" if rng.random() < cancer_rate else "healthy"
    return kind


def aim_kind(sampler: Sampler, rng: np.random.Generator, drawn: str):
    """``(gain, target)`` for a healthy or cancer pair: a target share drawn in the kind's range
    and a gain that reaches it on the sampled rows."""
    lo_t, hi_t = TARGETS[drawn]
    target = float(rng.uniform(lo_t, hi_t))
    ok = ((lambda s: s > float(CANCER_MIN) + 0.01) if drawn == "cancer"
          else (lambda s: s < float(HEALTHY_MAX) - 0.01))
    return aim(sampler, target, 0.004, ok), target
