"""The body: one irregular blob of row intervals (main blob, lobes), minus capsule holes.

Each blob row is a single interval ``[lo(r), hi(r))`` with smooth random edges: a random
superellipse-like profile times sums of random low-frequency sinusoids, with bays pushed into its
sides. Each blob is cut where consecutive rows stop touching, each lobe overlaps the main blob,
and each hole is checked, row by row at the pixel level, to leave every remaining piece touching
the row above: the body is one 8-connected component by construction.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .geometry import Capsules, capsule_spans
from .raster import merge_intervals

__all__ = ["build_body"]


def _smooth_wave(rng, n: int, amp: float, fmin: float, fmax: float):
    """Parameters of a sum of ``n`` sinusoids of t in [-1, 1] with decreasing amplitudes."""
    amps = amp * rng.uniform(0.5, 1.0, n) / np.arange(1, n + 1) ** 0.7
    freqs = rng.uniform(fmin, fmax, n)
    phases = rng.uniform(0, 2 * np.pi, n)
    return amps, freqs, phases


def _wave(t, params):
    amps, freqs, phases = params
    out = np.zeros_like(t)
    for a, f, p in zip(amps, freqs, phases):
        out += a * np.sin(np.pi * f * (t + 1) + p)
    return out


def _bump(s):
    return np.where(np.abs(s) < 1, (1 - s * s) ** 2, 0.0)


@dataclass(frozen=True)
class _Blob:
    """Random shape parameters of one blob (drawn once, evaluated at any scale)."""

    v_mid: float
    v_half: float
    c0: float
    hw: float
    alpha: float
    drift: tuple
    wig_l: tuple
    wig_r: tuple
    bays_l: list
    bays_r: list

    @classmethod
    def draw(cls, rng, v_mid, v_half, c0, hw, wiggle, nbays):
        def bays():
            out = []
            for _ in range(int(rng.integers(0, nbays + 1))):
                out.append((rng.uniform(-0.6, 0.6), rng.uniform(0.1, 0.25), rng.uniform(0.25, 0.5)))
            return out

        return cls(v_mid, v_half, c0, hw, rng.uniform(1.6, 2.6),
                   _smooth_wave(rng, 3, 0.25 * hw, 0.5, 2.0),
                   _smooth_wave(rng, 4, wiggle, 1.0, 5.0), _smooth_wave(rng, 4, wiggle, 1.0, 5.0),
                   bays(), bays())

    def rows(self, height: int, width: int, scale: float = 1.0):
        """Pixel intervals ``(lo, hi)`` of every row, cut to one 8-connected piece."""
        v = (np.arange(height) + 0.5) / height
        t = (v - self.v_mid) / self.v_half
        inside = np.abs(t) < 1
        tt = np.clip(np.abs(t), 0, 1)
        profile = (1 - tt ** self.alpha) ** (1 / self.alpha)
        hw = self.hw * scale
        centre = self.c0 + _wave(t, self.drift) * scale
        left = hw * profile * np.maximum(1 + _wave(t, self.wig_l), 0.45)
        right = hw * profile * np.maximum(1 + _wave(t, self.wig_r), 0.45)
        for tc, w, depth in self.bays_l:
            left = left * (1 - depth * _bump((t - tc) / w))
        for tc, w, depth in self.bays_r:
            right = right * (1 - depth * _bump((t - tc) / w))
        lo = np.ceil((centre - left) * width - 0.5)
        hi = np.floor((centre + right) * width - 0.5) + 1
        lo = np.clip(lo, 0, width).astype(np.int64)
        hi = np.clip(hi, 0, width).astype(np.int64)
        empty = ~inside | (hi <= lo)
        lo[empty] = 0
        hi[empty] = 0
        return _keep_connected(lo, hi)


def _keep_connected(lo: np.ndarray, hi: np.ndarray):
    """Keep the rows 8-connected to the widest row: cut where consecutive rows stop touching."""
    nonempty = hi > lo
    if not nonempty.any():
        return lo, hi
    mid = int(np.argmax(hi - lo))
    touch = nonempty[:-1] & nonempty[1:] & (lo[1:] <= hi[:-1]) & (lo[:-1] <= hi[1:])
    up = np.flatnonzero(~touch[:mid])
    top = int(up[-1]) + 1 if up.size else 0
    down = np.flatnonzero(~touch[mid:])
    bottom = mid + int(down[0]) if down.size else lo.size - 1
    lo, hi = lo.copy(), hi.copy()
    lo[:top] = hi[:top] = 0
    lo[bottom + 1:] = hi[bottom + 1:] = 0
    return lo, hi


def _union_area(lo: np.ndarray, hi: np.ndarray, width: int) -> int:
    k, h = lo.shape
    pos = np.tile(np.arange(h, dtype=np.int64), k)
    _, a, b = merge_intervals(pos, lo.ravel(), hi.ravel(), width)
    return int((b - a).sum())


def build_body(rng, height: int, width: int):
    """Main blob + lobes as row tables scaled to a drawn coverage, then holes."""
    coverage = rng.uniform(0.32, 0.5)
    v_half = rng.uniform(0.36, 0.45)
    main = _Blob.draw(rng, rng.uniform(0.47, 0.53), v_half, rng.uniform(0.45, 0.55),
                            0.25, rng.uniform(0.12, 0.22), 2)
    nlobes = int(rng.integers(1, 4))
    lobe_draws = []
    for _ in range(nlobes):
        lobe_draws.append(dict(anchor=rng.uniform(-0.6, 0.6), side=rng.choice([-1, 1]),
                               v_half=rng.uniform(0.08, 0.16), hw=rng.uniform(0.06, 0.12),
                               out=rng.uniform(0.1, 0.7), params_rng=int(rng.integers(1 << 62))))

    def assemble(scale):
        lo0, hi0 = main.rows(height, width, scale)
        los, his = [lo0], [hi0]
        for d in lobe_draws:
            row = int(np.clip((main.v_mid + d["anchor"] * main.v_half) * height, 0, height - 1))
            if hi0[row] <= lo0[row]:
                continue
            edge = (hi0[row] if d["side"] > 0 else lo0[row]) / width
            hw = d["hw"] * scale
            c0 = edge + d["side"] * d["out"] * hw
            lrng = np.random.default_rng(d["params_rng"])
            lobe = _Blob.draw(lrng, (row + 0.5) / height, d["v_half"],
                                    float(np.clip(c0, 0.03 + hw, 0.97 - hw)), hw,
                                    lrng.uniform(0.08, 0.15), 0)
            llo, lhi = lobe.rows(height, width)
            overlap = np.minimum(lhi, hi0) - np.maximum(llo, lo0)
            if (overlap > 1).sum() < 2:  # a lobe must share rows with the main blob
                continue
            los.append(llo)
            his.append(lhi)
        return np.stack(los), np.stack(his)

    scale = 1.0
    for _ in range(8):
        lo, hi = assemble(scale)
        got = _union_area(lo, hi, width) / (height * width)
        if abs(got - coverage) < 0.005:
            break
        scale *= (coverage / max(got, 1e-6)) ** 0.9
        scale = min(scale, 1.8)
    holes = _place_holes(rng, lo, hi, height, width)
    return lo, hi, holes, {"coverage_target": round(coverage, 4), "lobes": int(lo.shape[0] - 1),
                           "holes": len(holes)}


def _place_holes(rng, lo, hi, height, width) -> Capsules:
    """A few capsule holes strictly inside the main blob that keep the body in one piece."""
    size = math.sqrt(height * width)
    main_lo, main_hi = lo[0], hi[0]
    rows_main = np.flatnonzero(main_hi > main_lo)
    accepted: list[tuple[float, float, float, float, float]] = []
    taken: list[tuple[int, int]] = []
    if rows_main.size < 16:
        return Capsules.empty()
    top, bottom = int(rows_main[0]), int(rows_main[-1])
    for _ in range(int(rng.integers(0, 4))):
        for _attempt in range(30):
            row = rng.uniform(top + 0.2 * (bottom - top), top + 0.8 * (bottom - top))
            i = int(row)
            if main_hi[i] - main_lo[i] < 8:
                continue
            col = rng.uniform(main_lo[i] + 0.25 * (main_hi[i] - main_lo[i]),
                              main_lo[i] + 0.75 * (main_hi[i] - main_lo[i]))
            r = rng.uniform(0.008, 0.03) * size
            length = rng.uniform(0, 3) * r
            ang = rng.uniform(0, np.pi)
            cap = (row - 0.5 * length * np.sin(ang), col - 0.5 * length * np.cos(ang),
                   row + 0.5 * length * np.sin(ang), col + 0.5 * length * np.cos(ang), r)
            if _hole_fits(cap, lo, hi, width, taken):
                accepted.append(cap)
                first, last = Capsules.from_rows([cap]).row_range()
                taken.append((int(first[0]) - 1, int(last[0]) + 1))
                break
    return Capsules.from_rows(accepted)


def _hole_fits(cap, lo, hi, width, taken) -> bool:
    """Pixel-exact check that cutting ``cap`` out of the main blob keeps everything connected."""
    caps = Capsules.from_rows([cap])
    first, last = (int(v[0]) for v in caps.row_range())
    height = lo.shape[1]
    if first - 1 < 0 or last + 1 >= height:
        return False
    if any(not (last + 1 < t0 or first - 1 > t1) for t0, t1 in taken):
        return False
    rows = np.arange(first - 1, last + 2)
    a, b = capsule_spans(caps, np.zeros(rows.size, dtype=np.int64), rows, width)
    if not (b > a).any():
        return False
    prev = None
    for i, row in enumerate(rows.tolist()):
        mlo, mhi = int(lo[0, row]), int(hi[0, row])
        if mhi <= mlo:
            return False
        if b[i] > a[i]:
            if a[i] < mlo + 1 or b[i] > mhi - 1:
                return False
            for k in range(1, lo.shape[0]):  # stay away from the lobes
                if hi[k, row] > lo[k, row] and lo[k, row] <= b[i] and a[i] <= hi[k, row]:
                    return False
            pieces = [(mlo, int(a[i])), (int(b[i]), mhi)]
        else:
            pieces = [(mlo, mhi)]
        if (i == 0 or i == rows.size - 1) and len(pieces) != 1:
            return False
        if prev is not None:
            # Every piece must touch a piece of the row above (8-connectivity).
            for p0, p1 in pieces:
                if not any(q0 <= p1 and p0 <= q1 for q0, q1 in prev):
                    return False
        prev = pieces
    return True
