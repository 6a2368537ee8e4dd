"""The boundary kind: exactly 10% (``10 * dye_in_body == body``), reached by a small patch.

A counting pass measures the pair at an aimed gain; then a few body pixels are added at the
body's edge (so that the body is a multiple of 10) and a few dye pixels are lit inside the body
at deterministic, spread-out places. The patch is a value (:class:`~.scene.BoundaryPatch`) that
the writing pass renders with.
"""

from __future__ import annotations

import math
from types import MappingProxyType

import numpy as np

from ..errors import UsageError
from ..model import Counts
from .aim import Sampler, aim
from .scene import BoundaryPatch, Scene

__all__ = ["BOUNDARY_AIM", "patch_boundary"]

BOUNDARY_AIM = 0.097


def _count_pass(scene: Scene, segment_rows: int, workers: int, progress, total: int):
    """Exact counts and per-row eligible places of the whole pair, without writing anything."""
    from ..io.writers import ordered_map

    height = scene.height
    eligible = np.zeros(height, dtype=np.int64)

    def task(r0):
        rows = np.arange(r0, min(height, r0 + segment_rows), dtype=np.int64)
        body, dye, elig = scene.render(rows, want_candidates=True)
        return r0, rows.size, scene.block_counts(body, dye), elig

    counts = Counts()
    done = 0
    for r0, n, c, elig in ordered_map(task, range(0, height, segment_rows), workers):
        counts = counts + c
        eligible[r0:r0 + n] = elig
        done += n
        if progress is not None:
            progress(done, total)
    return counts, eligible


def _body_extra(scene: Scene, need: int):
    """``need`` body pixels just left of the body's first pixel in rows near the middle (each
    touches the body, so it stays one piece), and how many of them are dye already."""
    extra = {}
    dye_added = 0
    middle = int(np.argmax(scene.span_hi - scene.span_lo))
    order = [middle + d for k in range(scene.height) for d in ((k,) if k == 0 else (k, -k))]
    for row in order:
        if len(extra) == need:
            break
        if not 0 <= row < scene.height or scene.span_lo[row] < 1 or \
                scene.span_hi[row] <= scene.span_lo[row]:
            continue
        col = int(scene.span_lo[row]) - 1
        _, dye, _ = scene.render(np.array([row]))
        extra[row] = col
        dye_added += int((dye[col >> 3] >> (7 - (col & 7))) & 1)
    if len(extra) != need:
        raise UsageError("cannot make the body a multiple of 10 pixels: the image is too small")
    return extra, dye_added


def _spread(delta: int, eligible: np.ndarray) -> np.ndarray:
    """``delta`` split over the rows in proportion to their eligible places (largest
    remainders, ties by row)."""
    height = eligible.size
    quota = np.zeros(height, dtype=np.int64)
    if delta:
        total_places = int(eligible.sum())
        share = delta * eligible
        quota = share // total_places
        rest = delta - int(quota.sum())
        remainder = share % total_places
        order = np.lexsort((np.arange(height), -remainder))[:rest]
        quota[order] += 1
    return quota


def patch_boundary(scene: Scene, sampler: Sampler, segment_rows: int, workers: int, progress,
                   total: int) -> Scene:
    """``scene`` at a vessel gain and with a patch that make ``10 * dye_in_body == body``."""
    target = BOUNDARY_AIM
    for _attempt in range(6):
        gain = aim(sampler, target, 0.001, lambda s: 0.05 < s < 0.1)
        candidates = int(math.ceil(0.01 * scene.width)) + 8
        trial = scene.with_gain(gain).with_patch(BoundaryPatch(candidates=candidates))
        counts, eligible = _count_pass(trial, segment_rows, workers, progress, total)
        extra, dye_added = _body_extra(trial, (-counts.body) % 10)
        body = counts.body + len(extra)
        dye_in_body = counts.dye_in_body + dye_added
        delta = body // 10 - dye_in_body
        eligible[list(extra)] = 0
        if delta < 0:
            target -= (dye_in_body / body - 0.1) + 0.002
            continue
        if delta > int(eligible.sum()):
            target += 0.5 * (0.1 - dye_in_body / body)
            continue
        info = {"boundary_body_added": len(extra), "boundary_dye_lit": int(delta)}
        return trial.with_patch(BoundaryPatch(extra, _spread(delta, eligible), candidates,
                                              MappingProxyType(info)))
    raise UsageError("could not reach exactly 10% for the boundary kind; try another seed")
